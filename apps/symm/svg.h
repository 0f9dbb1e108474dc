#pragma once
// SVG pieces of the jobs' reports: a line chart with one coloured line and legend entry per model (test
// error or success against the training-set size), and what other drawings share with it.
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace symm::app {

/// v with `digits` digits after the point: coordinates and axis labels.
std::string svg_fixed(double v, int digits = 1);

/// The opening <svg> tag of a width × height drawing on a white background (close it with "</svg>\n").
std::string svg_open(double width, double height);

/// The colour of a model's lines: equivariant blue, baseline red, expert green, anything else grey.
std::string model_colour(const std::string& model);

/// A 640 × 440 line chart over the plot coordinates [x_lo, x_hi] × [y_lo, y_hi]; a logarithmic axis is drawn by
/// passing log10 of the values (log_decades_* then labels the decades).
class LineChart {
 public:
  LineChart(std::string title, std::string x_label, std::string y_label, double x_lo, double x_hi, double y_lo, double y_hi);

  /// A vertical (x_grid) or horizontal (y_grid) grid line, darker when major, labelled unless the label is empty.
  void x_grid(double x, const std::string& label, bool major);
  void y_grid(double y, const std::string& label, bool major);
  /// Grid lines at the decades of a log10 axis (labelled 1000, 10, 0.1, 1e-05) and light ones at 2..9 between.
  void log_decades_x();
  void log_decades_y();
  /// One model's line through the points (sorted by x), with markers and a legend entry in model_colour(name).
  void line(const std::string& name, std::vector<std::pair<double, double>> points);
  /// A vertical bar from y_lo to y_hi at x, with caps, in the model's colour (a spread over seeds).
  void error_bar(const std::string& name, double x, double y_lo, double y_hi);

  std::string svg() const;

 private:
  double px(double x) const;
  double py(double y) const;

  std::string title_, x_label_, y_label_;
  double x_lo_, x_hi_, y_lo_, y_hi_;
  std::ostringstream grid_, lines_;
  int legend_ = 0;
};

}  // namespace symm::app
