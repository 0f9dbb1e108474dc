#pragma once
// The learning-rate schedule of the jobs' runs.
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace symm::app {

/// Learning rate at step `step` (0-based) of `total`: a linear warm-up over the first 5% of the steps (it keeps
/// Adam's first updates small while its moment estimates settle), then a cosine decay to 5% of `peak`.
inline double warmup_cosine_lr(double peak, int64_t step, int64_t total) {
  const int64_t warmup = std::max<int64_t>(1, total / 20);
  if (step < warmup) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup);
  const double progress = static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, total - warmup));
  return peak * (0.05 + 0.95 * 0.5 * (1 + std::cos(M_PI * progress)));
}

}  // namespace symm::app
