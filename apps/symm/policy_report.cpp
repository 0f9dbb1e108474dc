#include "policy_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "svg.h"

namespace symm::app {

std::string success_svg(const std::vector<PolicyResult>& results, const std::string& title) {
  std::map<std::pair<std::string, int64_t>, std::vector<double>> by_point;  // (model, demos) → success per seed
  std::set<int64_t> demos;
  for (const auto& r : results) by_point[{r.model, r.demos}].push_back(r.success), demos.insert(r.demos);
  double x_lo = demos.empty() ? 0 : std::log10(static_cast<double>(*demos.begin()));
  double x_hi = demos.empty() ? 1 : std::log10(static_cast<double>(*demos.rbegin()));
  if (x_hi - x_lo < 0.5) x_lo -= 0.25, x_hi += 0.25;
  const double pad = 0.05 * (x_hi - x_lo);
  LineChart chart(title, "demonstrations (log scale)", "success rate (held-out draws)", x_lo - pad, x_hi + pad, 0, 1);
  for (int i = 0; i <= 10; ++i) chart.y_grid(i / 10.0, i % 2 == 0 ? svg_fixed(i / 10.0) : "", i % 5 == 0);
  for (const int64_t n : demos) chart.x_grid(std::log10(static_cast<double>(n)), std::to_string(n), false);
  std::map<std::string, std::vector<std::pair<double, double>>> lines;
  for (const auto& [key, v] : by_point) {
    double mean = 0, var = 0;
    for (double x : v) mean += x;
    mean /= static_cast<double>(v.size());
    for (double x : v) var += (x - mean) * (x - mean);
    const double sd = v.size() > 1 ? std::sqrt(var / static_cast<double>(v.size() - 1)) : 0.0;
    const double x = std::log10(static_cast<double>(key.second));
    lines[key.first].emplace_back(x, mean);
    if (v.size() > 1) chart.error_bar(key.first, x, std::max(0.0, mean - sd), std::min(1.0, mean + sd));
  }
  for (auto& [model, points] : lines) chart.line(model, points);
  return chart.svg();
}

std::string rollouts_svg(const PolicyTask& task, const std::vector<PolicyResult>& results, int64_t demos, uint64_t seed,
                         const std::vector<std::vector<Vec2>>& expert_paths, const std::vector<Draw>& draws) {
  std::vector<const PolicyResult*> panels;
  for (const auto& r : results)
    if (r.demos == demos && r.seed == seed) panels.push_back(&r);
  const double side = 300, margin = 30, top = 50;
  const double width = margin + (side + margin) * std::max<size_t>(1, panels.size() + 1), height = top + side + 40;
  const char* palette[] = {"#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f"};
  std::ostringstream s;
  s << svg_open(width, height);
  s << "<text x=\"" << width / 2 << "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">Closed-loop rollouts on held-out draws, "
    << demos << " demonstrations (circle: start, square: goal; solid, ring: reached; dashed, cross: failed)</text>\n";
  auto panel = [&](int index, const std::string& label, const std::vector<std::vector<Vec2>>& paths, const std::vector<bool>& reached) {
    const double x0 = margin + index * (side + margin);
    auto px = [&](double x) { return x0 + (x + 1) / 2 * side; };
    auto py = [&](double y) { return top + (1 - y) / 2 * side; };
    s << "<rect x=\"" << x0 << "\" y=\"" << top << "\" width=\"" << side << "\" height=\"" << side << "\" fill=\"#fafafa\" stroke=\"black\"/>\n";
    s << "<text x=\"" << x0 + side / 2 << "\" y=\"" << top + side + 20 << "\" text-anchor=\"middle\">" << label << "</text>\n";
    for (const auto& o : task.obstacles)
      s << "<circle cx=\"" << svg_fixed(px(o.centre[0])) << "\" cy=\"" << svg_fixed(py(o.centre[1])) << "\" r=\"" << svg_fixed(o.radius / 2 * side)
        << "\" fill=\"#999\"/>\n";
    for (size_t i = 0; i < paths.size() && i < draws.size(); ++i) {
      const std::string colour = palette[i % 6];
      const bool ok = i >= reached.size() || reached[i];
      s << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"1.5\"" << (ok ? "" : " stroke-dasharray=\"5,3\"")
        << " points=\"";
      for (const auto& p : paths[i]) s << svg_fixed(px(p[0])) << "," << svg_fixed(py(p[1])) << " ";
      s << "\"/>\n";
      const double ex = px(paths[i].back()[0]), ey = py(paths[i].back()[1]);
      if (ok)
        s << "<circle cx=\"" << svg_fixed(ex) << "\" cy=\"" << svg_fixed(ey) << "\" r=\"7\" fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"1.5\"/>\n";
      else
        s << "<path d=\"M" << svg_fixed(ex - 6) << "," << svg_fixed(ey - 6) << " L" << svg_fixed(ex + 6) << "," << svg_fixed(ey + 6) << " M"
          << svg_fixed(ex - 6) << "," << svg_fixed(ey + 6) << " L" << svg_fixed(ex + 6) << "," << svg_fixed(ey - 6)
          << "\" stroke=\"black\" stroke-width=\"2.5\"/>\n";
      s << "<circle cx=\"" << svg_fixed(px(draws[i].start[0])) << "\" cy=\"" << svg_fixed(py(draws[i].start[1])) << "\" r=\"4\" fill=\"" << colour << "\"/>\n";
      s << "<rect x=\"" << svg_fixed(px(draws[i].goal[0]) - 4) << "\" y=\"" << svg_fixed(py(draws[i].goal[1]) - 4) << "\" width=\"8\" height=\"8\" fill=\""
        << colour << "\"/>\n";
    }
  };
  panel(0, "expert", expert_paths, {});
  for (size_t i = 0; i < panels.size(); ++i)
    panel(static_cast<int>(i + 1), panels[i]->model + " (success " + svg_fixed(panels[i]->success, 2) + ")", panels[i]->rollouts,
          panels[i]->rollout_success);
  s << "</svg>\n";
  return s.str();
}

}  // namespace symm::app
