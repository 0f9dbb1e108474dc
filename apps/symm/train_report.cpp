#include "train_report.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>

namespace symm::app {

namespace fs = std::filesystem;

void write_file_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << text;
    f.flush();
    if (!f) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw std::runtime_error("cannot write " + path);
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw std::runtime_error("cannot write " + path + ": " + ec.message());
  }
}

void ensure_writable_directory(const std::string& dir, const std::string& option) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    throw std::invalid_argument(option + " " + dir + ": exists and is not a directory");
  fs::create_directories(dir, ec);
  if (ec) throw std::invalid_argument(option + " " + dir + ": cannot create the directory (" + ec.message() + ")");
  const fs::path probe = fs::path(dir) / ".symm-write-test";
  {
    std::ofstream f(probe);
    f << "x";
    f.flush();
    if (!f) {
      fs::remove(probe, ec);
      throw std::invalid_argument(option + " " + dir + ": the directory is not writable");
    }
  }
  fs::remove(probe, ec);
}

std::string format_number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

namespace {

std::string fixed(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string short_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

// A decade tick: 1000, 10, 1, 0.1, 0.001, 1e-05.
std::string decade_label(double exponent) {
  const int e = static_cast<int>(std::lround(exponent));
  if (e >= 0 && e <= 5) return std::to_string(static_cast<long long>(std::llround(std::pow(10.0, e))));
  return short_number(std::pow(10.0, e));
}

}  // namespace

std::string loss_curve_svg(const std::vector<RunResult>& results, const std::string& title) {
  const double width = 640, height = 440, left = 80, right = 170, top = 50, bottom = 60;
  const double plot_w = width - left - right, plot_h = height - top - bottom;
  std::map<std::string, std::vector<std::pair<double, double>>> lines;
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  for (const auto& r : results) {
    if (!(r.test_mse > 0) || !std::isfinite(r.test_mse)) continue;
    const double x = std::log10(static_cast<double>(r.train_size)), y = std::log10(r.test_mse);
    lines[r.model].emplace_back(x, y);
    x_lo = std::min(x_lo, x), x_hi = std::max(x_hi, x), y_lo = std::min(y_lo, y), y_hi = std::max(y_hi, y);
  }
  if (lines.empty()) x_lo = 0, x_hi = 1, y_lo = -1, y_hi = 0;
  // Whole decades around the data, at least one.
  x_lo = std::floor(x_lo), x_hi = std::max(std::ceil(x_hi), x_lo + 1);
  y_lo = std::floor(y_lo), y_hi = std::max(std::ceil(y_hi), y_lo + 1);
  auto px = [&](double x) { return left + (x - x_lo) / (x_hi - x_lo) * plot_w; };
  auto py = [&](double y) { return top + (y_hi - y) / (y_hi - y_lo) * plot_h; };

  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height << "\" viewBox=\"0 0 "
    << width << " " << height << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s << "<text x=\"" << left + plot_w / 2 << "\" y=\"28\" text-anchor=\"middle\" font-size=\"15\">" << title << "</text>\n";
  // Grid and ticks: decades, with minor lines at 2..9.
  for (double d = x_lo; d <= x_hi + 1e-9; d += 1) {
    for (int m = 1; m < 10 && d + std::log10(m) <= x_hi + 1e-9; ++m) {
      const double x = px(d + std::log10(m));
      s << "<line x1=\"" << fixed(x, 1) << "\" y1=\"" << top << "\" x2=\"" << fixed(x, 1) << "\" y2=\"" << top + plot_h
        << "\" stroke=\"" << (m == 1 ? "#bbb" : "#eee") << "\"/>\n";
    }
    s << "<text x=\"" << fixed(px(d), 1) << "\" y=\"" << top + plot_h + 18 << "\" text-anchor=\"middle\">"
      << decade_label(d) << "</text>\n";
  }
  for (double d = y_lo; d <= y_hi + 1e-9; d += 1) {
    for (int m = 1; m < 10 && d + std::log10(m) <= y_hi + 1e-9; ++m) {
      const double y = py(d + std::log10(m));
      s << "<line x1=\"" << left << "\" y1=\"" << fixed(y, 1) << "\" x2=\"" << left + plot_w << "\" y2=\"" << fixed(y, 1)
        << "\" stroke=\"" << (m == 1 ? "#bbb" : "#eee") << "\"/>\n";
    }
    s << "<text x=\"" << left - 8 << "\" y=\"" << fixed(py(d) + 4, 1) << "\" text-anchor=\"end\">"
      << decade_label(d) << "</text>\n";
  }
  s << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << plot_w << "\" height=\"" << plot_h
    << "\" fill=\"none\" stroke=\"black\"/>\n";
  s << "<text x=\"" << left + plot_w / 2 << "\" y=\"" << height - 18
    << "\" text-anchor=\"middle\">training sequences (log scale)</text>\n";
  s << "<text transform=\"translate(22 " << top + plot_h / 2
    << ") rotate(-90)\" text-anchor=\"middle\">test MSE (log scale)</text>\n";
  const std::map<std::string, std::string> colours{{"equivariant", "#1f77b4"}, {"baseline", "#d62728"}};
  int legend = 0;
  for (auto& [model, pts] : lines) {
    std::sort(pts.begin(), pts.end());
    const auto it = colours.find(model);
    const std::string colour = it == colours.end() ? "#555" : it->second;
    s << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"2\" points=\"";
    for (const auto& [x, y] : pts) s << fixed(px(x), 1) << "," << fixed(py(y), 1) << " ";
    s << "\"/>\n";
    for (const auto& [x, y] : pts)
      s << "<circle cx=\"" << fixed(px(x), 1) << "\" cy=\"" << fixed(py(y), 1) << "\" r=\"4\" fill=\"" << colour << "\"/>\n";
    const double ly = top + 20 + 22 * legend++;
    s << "<line x1=\"" << left + plot_w + 15 << "\" y1=\"" << ly << "\" x2=\"" << left + plot_w + 40 << "\" y2=\"" << ly
      << "\" stroke=\"" << colour << "\" stroke-width=\"2\"/>\n";
    s << "<text x=\"" << left + plot_w + 46 << "\" y=\"" << ly + 4 << "\">" << model << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

Progress::Progress(std::string label, int64_t total_steps, int64_t plain_every)
    : label_(std::move(label)), total_(total_steps), plain_every_(plain_every), tty_(isatty(STDOUT_FILENO) != 0) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

void Progress::update(int64_t step, double train_loss, double val_loss, double lr, int64_t tokens_per_step) {
  if (first_step_ < 0) first_step_ = step - 1;
  if (val_loss >= 0) last_val_ = val_loss;
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double tokens_per_s = elapsed > 0 ? static_cast<double>((step - first_step_) * tokens_per_step) / elapsed : 0;
  const std::string val = last_val_ >= 0 ? short_number(last_val_) : "-";
  if (tty_) {
    if (step != total_ && std::chrono::duration<double>(now - last_draw_).count() < 0.1) return;
    last_draw_ = now;
    const int bar = 24, filled = static_cast<int>(bar * step / std::max<int64_t>(total_, 1));
    std::string b;
    for (int i = 0; i < bar; ++i) b += i < filled ? "#" : ".";
    std::cout << "\r  " << label_ << " [" << b << "] " << step << "/" << total_ << "  loss " << short_number(train_loss)
              << "  val " << val << "  " << static_cast<int64_t>(tokens_per_s) << " tok/s   " << std::flush;
  } else if (step % plain_every_ == 0 || step == total_) {
    std::cout << "  " << label_ << " step " << step << "/" << total_ << "  loss " << short_number(train_loss) << "  val "
              << val << "  lr " << short_number(lr) << "  " << static_cast<int64_t>(tokens_per_s) << " tok/s\n"
              << std::flush;
  }
}

void Progress::finish(const std::string& message) {
  if (tty_) std::cout << "\r\033[K";
  std::cout << "  " << label_ << ": " << message << "\n" << std::flush;
}

}  // namespace symm::app
