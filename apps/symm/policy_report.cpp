#include "policy_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

namespace symm::app {

namespace {

std::string fixed(double v, int digits = 1) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

const std::map<std::string, std::string> kColours{{"equivariant", "#1f77b4"}, {"baseline", "#d62728"}, {"expert", "#2ca02c"}};

std::string svg_open(double width, double height) {
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height << "\" viewBox=\"0 0 " << width
    << " " << height << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  return s.str();
}

}  // namespace

std::string success_svg(const std::vector<PolicyResult>& results, const std::string& title) {
  const double width = 640, height = 440, left = 70, right = 170, top = 50, bottom = 60;
  const double plot_w = width - left - right, plot_h = height - top - bottom;
  std::map<std::string, std::vector<std::pair<double, double>>> lines;
  double x_lo = INFINITY, x_hi = -INFINITY;
  for (const auto& r : results) {
    const double x = std::log10(static_cast<double>(r.demos));
    lines[r.model].emplace_back(x, r.success);
    x_lo = std::min(x_lo, x), x_hi = std::max(x_hi, x);
  }
  if (lines.empty()) x_lo = 0, x_hi = 1;
  if (x_hi - x_lo < 0.5) x_lo -= 0.25, x_hi += 0.25;
  const double pad = 0.05 * (x_hi - x_lo);
  x_lo -= pad, x_hi += pad;
  auto px = [&](double x) { return left + (x - x_lo) / (x_hi - x_lo) * plot_w; };
  auto py = [&](double y) { return top + (1 - y) * plot_h; };
  std::ostringstream s;
  s << svg_open(width, height);
  s << "<text x=\"" << left + plot_w / 2 << "\" y=\"28\" text-anchor=\"middle\" font-size=\"15\">" << title << "</text>\n";
  for (int i = 0; i <= 10; ++i) {
    const double y = py(i / 10.0);
    s << "<line x1=\"" << left << "\" y1=\"" << fixed(y) << "\" x2=\"" << left + plot_w << "\" y2=\"" << fixed(y) << "\" stroke=\""
      << (i % 5 == 0 ? "#bbb" : "#eee") << "\"/>\n";
    if (i % 2 == 0) s << "<text x=\"" << left - 8 << "\" y=\"" << fixed(y + 4) << "\" text-anchor=\"end\">" << fixed(i / 10.0) << "</text>\n";
  }
  std::map<int64_t, bool> ticks;
  for (const auto& r : results) ticks[r.demos] = true;
  for (const auto& [n, unused] : ticks) {
    const double x = px(std::log10(static_cast<double>(n)));
    s << "<line x1=\"" << fixed(x) << "\" y1=\"" << top << "\" x2=\"" << fixed(x) << "\" y2=\"" << top + plot_h << "\" stroke=\"#eee\"/>\n";
    s << "<text x=\"" << fixed(x) << "\" y=\"" << top + plot_h + 18 << "\" text-anchor=\"middle\">" << n << "</text>\n";
  }
  s << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << plot_w << "\" height=\"" << plot_h
    << "\" fill=\"none\" stroke=\"black\"/>\n";
  s << "<text x=\"" << left + plot_w / 2 << "\" y=\"" << height - 18 << "\" text-anchor=\"middle\">demonstrations (log scale)</text>\n";
  s << "<text transform=\"translate(22 " << top + plot_h / 2 << ") rotate(-90)\" text-anchor=\"middle\">success rate (held-out draws)</text>\n";
  int legend = 0;
  for (auto& [model, pts] : lines) {
    std::sort(pts.begin(), pts.end());
    const auto it = kColours.find(model);
    const std::string colour = it == kColours.end() ? "#555" : it->second;
    s << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"2\" points=\"";
    for (const auto& [x, y] : pts) s << fixed(px(x)) << "," << fixed(py(y)) << " ";
    s << "\"/>\n";
    for (const auto& [x, y] : pts) s << "<circle cx=\"" << fixed(px(x)) << "\" cy=\"" << fixed(py(y)) << "\" r=\"4\" fill=\"" << colour << "\"/>\n";
    const double ly = top + 20 + 22 * legend++;
    s << "<line x1=\"" << left + plot_w + 15 << "\" y1=\"" << ly << "\" x2=\"" << left + plot_w + 40 << "\" y2=\"" << ly
      << "\" stroke=\"" << colour << "\" stroke-width=\"2\"/>\n<text x=\"" << left + plot_w + 46 << "\" y=\"" << ly + 4 << "\">"
      << model << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

std::string rollouts_svg(const PolicyTask& task, const std::vector<PolicyResult>& results, int64_t demos,
                         const std::vector<std::vector<Vec2>>& expert_paths, const std::vector<Draw>& draws) {
  std::vector<const PolicyResult*> panels;
  for (const auto& r : results)
    if (r.demos == demos) panels.push_back(&r);
  const double side = 300, margin = 30, top = 50;
  const double width = margin + (side + margin) * std::max<size_t>(1, panels.size() + 1), height = top + side + 40;
  const char* palette[] = {"#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f"};
  std::ostringstream s;
  s << svg_open(width, height);
  s << "<text x=\"" << width / 2 << "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">Closed-loop rollouts on held-out draws, "
    << demos << " demonstrations (circle: start, square: goal)</text>\n";
  auto panel = [&](int index, const std::string& label, const std::vector<std::vector<Vec2>>& paths) {
    const double x0 = margin + index * (side + margin);
    auto px = [&](double x) { return x0 + (x + 1) / 2 * side; };
    auto py = [&](double y) { return top + (1 - y) / 2 * side; };
    s << "<rect x=\"" << x0 << "\" y=\"" << top << "\" width=\"" << side << "\" height=\"" << side << "\" fill=\"#fafafa\" stroke=\"black\"/>\n";
    s << "<text x=\"" << x0 + side / 2 << "\" y=\"" << top + side + 20 << "\" text-anchor=\"middle\">" << label << "</text>\n";
    for (const auto& o : task.obstacles)
      s << "<circle cx=\"" << fixed(px(o.centre[0])) << "\" cy=\"" << fixed(py(o.centre[1])) << "\" r=\"" << fixed(o.radius / 2 * side)
        << "\" fill=\"#999\"/>\n";
    for (size_t i = 0; i < paths.size() && i < draws.size(); ++i) {
      const std::string colour = palette[i % 6];
      s << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"1.5\" points=\"";
      for (const auto& p : paths[i]) s << fixed(px(p[0])) << "," << fixed(py(p[1])) << " ";
      s << "\"/>\n";
      s << "<circle cx=\"" << fixed(px(draws[i].start[0])) << "\" cy=\"" << fixed(py(draws[i].start[1])) << "\" r=\"4\" fill=\"" << colour << "\"/>\n";
      s << "<rect x=\"" << fixed(px(draws[i].goal[0]) - 4) << "\" y=\"" << fixed(py(draws[i].goal[1]) - 4) << "\" width=\"8\" height=\"8\" fill=\""
        << colour << "\"/>\n";
    }
  };
  panel(0, "expert", expert_paths);
  for (size_t i = 0; i < panels.size(); ++i)
    panel(static_cast<int>(i + 1), panels[i]->model + " (success " + fixed(panels[i]->success, 2) + ")", panels[i]->rollouts);
  s << "</svg>\n";
  return s.str();
}

}  // namespace symm::app
