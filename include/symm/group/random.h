#pragma once
// A seeded generator whose draws are the same on every platform (std distributions are not).
#include <cmath>
#include <cstdint>
#include <random>

namespace symm::group {

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : engine_(seed) {}
  double uniform(double lo, double hi) { return lo + (hi - lo) * ((engine_() >> 11) * 0x1.0p-53); }
  double normal() {  // Box–Muller
    const double u = uniform(0.0, 1.0), v = uniform(0.0, 1.0);
    return std::sqrt(-2.0 * std::log(1.0 - u)) * std::cos(6.283185307179586 * v);
  }

 private:
  std::mt19937_64 engine_;
};

}  // namespace symm::group
