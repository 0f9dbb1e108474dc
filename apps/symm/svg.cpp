#include "svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

namespace symm::app {

namespace {

constexpr double kWidth = 640, kHeight = 440, kLeft = 80, kRight = 170, kTop = 50, kBottom = 60;
constexpr double kPlotW = kWidth - kLeft - kRight, kPlotH = kHeight - kTop - kBottom;

// A decade tick: 1000, 10, 1, 0.1, 0.001, 1e-05.
std::string decade_label(double exponent) {
  const int e = static_cast<int>(std::lround(exponent));
  if (e >= 0 && e <= 5) return std::to_string(static_cast<long long>(std::llround(std::pow(10.0, e))));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", std::pow(10.0, e));
  return buf;
}

}  // namespace

std::string svg_fixed(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string svg_open(double width, double height) {
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height << "\" viewBox=\"0 0 " << width
    << " " << height << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  return s.str();
}

std::string model_colour(const std::string& model) {
  static const std::map<std::string, std::string> colours{{"equivariant", "#1f77b4"}, {"baseline", "#d62728"}, {"expert", "#2ca02c"}};
  const auto it = colours.find(model);
  return it == colours.end() ? "#555" : it->second;
}

LineChart::LineChart(std::string title, std::string x_label, std::string y_label, double x_lo, double x_hi, double y_lo, double y_hi)
    : title_(std::move(title)), x_label_(std::move(x_label)), y_label_(std::move(y_label)), x_lo_(x_lo), x_hi_(x_hi), y_lo_(y_lo), y_hi_(y_hi) {}

double LineChart::px(double x) const { return kLeft + (x - x_lo_) / (x_hi_ - x_lo_) * kPlotW; }
double LineChart::py(double y) const { return kTop + (y_hi_ - y) / (y_hi_ - y_lo_) * kPlotH; }

void LineChart::x_grid(double x, const std::string& label, bool major) {
  const std::string at = svg_fixed(px(x));
  grid_ << "<line x1=\"" << at << "\" y1=\"" << kTop << "\" x2=\"" << at << "\" y2=\"" << kTop + kPlotH << "\" stroke=\""
        << (major ? "#bbb" : "#eee") << "\"/>\n";
  if (!label.empty()) grid_ << "<text x=\"" << at << "\" y=\"" << kTop + kPlotH + 18 << "\" text-anchor=\"middle\">" << label << "</text>\n";
}

void LineChart::y_grid(double y, const std::string& label, bool major) {
  grid_ << "<line x1=\"" << kLeft << "\" y1=\"" << svg_fixed(py(y)) << "\" x2=\"" << kLeft + kPlotW << "\" y2=\"" << svg_fixed(py(y))
        << "\" stroke=\"" << (major ? "#bbb" : "#eee") << "\"/>\n";
  if (!label.empty())
    grid_ << "<text x=\"" << kLeft - 8 << "\" y=\"" << svg_fixed(py(y) + 4) << "\" text-anchor=\"end\">" << label << "</text>\n";
}

void LineChart::log_decades_x() {
  for (double d = std::ceil(x_lo_ - 1e-9); d <= x_hi_ + 1e-9; d += 1)
    for (int m = 1; m < 10 && d + std::log10(m) <= x_hi_ + 1e-9; ++m) x_grid(d + std::log10(m), m == 1 ? decade_label(d) : "", m == 1);
}

void LineChart::log_decades_y() {
  for (double d = std::ceil(y_lo_ - 1e-9); d <= y_hi_ + 1e-9; d += 1)
    for (int m = 1; m < 10 && d + std::log10(m) <= y_hi_ + 1e-9; ++m) y_grid(d + std::log10(m), m == 1 ? decade_label(d) : "", m == 1);
}

void LineChart::error_bar(const std::string& name, double x, double y_lo, double y_hi) {
  const std::string colour = model_colour(name), at = svg_fixed(px(x)), lo = svg_fixed(py(y_lo)), hi = svg_fixed(py(y_hi));
  lines_ << "<g class=\"error-bar\"><line x1=\"" << at << "\" y1=\"" << lo << "\" x2=\"" << at << "\" y2=\"" << hi << "\" stroke=\"" << colour
         << "\" stroke-width=\"1.5\"/>";
  for (const auto& y : {lo, hi})
    lines_ << "<line x1=\"" << svg_fixed(px(x) - 5) << "\" y1=\"" << y << "\" x2=\"" << svg_fixed(px(x) + 5) << "\" y2=\"" << y
           << "\" stroke=\"" << colour << "\" stroke-width=\"1.5\"/>";
  lines_ << "</g>\n";
}

void LineChart::line(const std::string& name, std::vector<std::pair<double, double>> points) {
  std::sort(points.begin(), points.end());
  const std::string colour = model_colour(name);
  lines_ << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"2\" points=\"";
  for (const auto& [x, y] : points) lines_ << svg_fixed(px(x)) << "," << svg_fixed(py(y)) << " ";
  lines_ << "\"/>\n";
  for (const auto& [x, y] : points)
    lines_ << "<circle cx=\"" << svg_fixed(px(x)) << "\" cy=\"" << svg_fixed(py(y)) << "\" r=\"4\" fill=\"" << colour << "\"/>\n";
  const double ly = kTop + 20 + 22 * legend_++;
  lines_ << "<line x1=\"" << kLeft + kPlotW + 15 << "\" y1=\"" << ly << "\" x2=\"" << kLeft + kPlotW + 40 << "\" y2=\"" << ly
         << "\" stroke=\"" << colour << "\" stroke-width=\"2\"/>\n<text x=\"" << kLeft + kPlotW + 46 << "\" y=\"" << ly + 4 << "\">"
         << name << "</text>\n";
}

std::string LineChart::svg() const {
  std::ostringstream s;
  s << svg_open(kWidth, kHeight);
  s << "<text x=\"" << kLeft + kPlotW / 2 << "\" y=\"28\" text-anchor=\"middle\" font-size=\"15\">" << title_ << "</text>\n";
  s << grid_.str();
  s << "<rect x=\"" << kLeft << "\" y=\"" << kTop << "\" width=\"" << kPlotW << "\" height=\"" << kPlotH << "\" fill=\"none\" stroke=\"black\"/>\n";
  s << "<text x=\"" << kLeft + kPlotW / 2 << "\" y=\"" << kHeight - 18 << "\" text-anchor=\"middle\">" << x_label_ << "</text>\n";
  s << "<text transform=\"translate(22 " << kTop + kPlotH / 2 << ") rotate(-90)\" text-anchor=\"middle\">" << y_label_ << "</text>\n";
  s << lines_.str();
  s << "</svg>\n";
  return s.str();
}

}  // namespace symm::app
