#pragma once
// What `symm train` writes and prints: files written whole (temporary file, then rename), the metrics CSV,
// the log-log SVG plot of test error against training-set size, and the progress display.
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace symm::app {

/// Writes text to path through path + ".tmp" and a rename, so a reader never sees half a file. Throws
/// std::runtime_error naming the path on failure.
void write_file_atomically(const std::string& path, const std::string& text);

/// Creates dir (and parents) and checks that a file can be written in it; throws std::invalid_argument
/// naming `option` and the reason otherwise.
void ensure_writable_directory(const std::string& dir, const std::string& option);

/// Shortest round-trip text of a double ("nan" and "inf" as such).
std::string format_number(double v);

/// One finished training run, as the summary, the plot and the last line report it.
struct RunResult {
  std::string model;  // "equivariant" or "baseline"
  int64_t train_size = 0;
  double test_mse = 0, best_val_mse = 0;
  int64_t steps = 0, best_step = 0;
  int64_t parameters = 0;
  double seconds = 0;
  double equivariance_error = -1;  // equivariant runs only
  int64_t comm_bytes_per_step = 0;  // all-reduced by each process per step (0 in one process)
  int64_t dense_comm_bytes_per_step = 0;  // the same, were the equivariant coefficients dense weights
};

/// Test MSE against training-set size on log-log axes, one line per model, as an SVG document.
std::string loss_curve_svg(const std::vector<RunResult>& results, const std::string& title);

/// A progress bar with loss and throughput on a terminal, plain lines every `plain_every` steps elsewhere.
class Progress {
 public:
  Progress(std::string label, int64_t total_steps, int64_t plain_every);
  /// Reports step (1-based count of steps done), the last training loss and, when known, the validation loss.
  void update(int64_t step, double train_loss, double val_loss, double lr, int64_t tokens_per_step);
  /// Ends the bar (or prints the closing line).
  void finish(const std::string& message);

 private:
  std::string label_;
  int64_t total_;
  int64_t plain_every_;
  bool tty_;
  double last_val_ = -1;
  int64_t first_step_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace symm::app
