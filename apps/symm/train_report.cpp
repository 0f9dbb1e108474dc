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

#include "svg.h"

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

std::string short_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

}  // namespace

std::string loss_curve_svg(const std::vector<RunResult>& results, const std::string& title) {
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
  LineChart chart(title, "training sequences (log scale)", "test MSE (log scale)", x_lo, x_hi, y_lo, y_hi);
  chart.log_decades_x();
  chart.log_decades_y();
  for (auto& [model, points] : lines) chart.line(model, points);
  return chart.svg();
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
