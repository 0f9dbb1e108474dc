#pragma once
// How finely an at::parallel_for splits its range. With grain 1, attention's (batch, head) loop and the
// isotypic RMS pass opened a parallel region, and its barrier, on every call, down to a few hundred
// multiply-adds per task: on the 2-core machine with one busy process beside it, a descheduled worker
// stalled each barrier and the layer ran up to 15x slower than on one thread (issue 26).
#include <algorithm>
#include <cstdint>

namespace symm::nn::detail {

/// The least work a task is worth its barrier for, in multiply-adds (about 10 µs on one core).
constexpr int64_t kMinTaskWork = int64_t(1) << 15;

/// The grain of a parallel_for over items of `work_per_item` multiply-adds each: ranges below it run inline
/// on the caller, and every task but the last of a range takes at least that many items.
constexpr int64_t parallel_grain(int64_t work_per_item) {
  return std::max<int64_t>(1, kMinTaskWork / std::max<int64_t>(1, work_per_item));
}

}  // namespace symm::nn::detail
