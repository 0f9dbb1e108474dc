#pragma once
// Seeds of the jobs' runs: the job's --seed and a stream number (a run, a data split, the evaluation noise)
// mixed by splitmix64's finaliser, so that two streams never start from related generator states.
#include <cstdint>

namespace symm::app {

/// A 62-bit seed for stream `stream` of the job seeded by `seed`.
inline uint64_t mix_seed(uint64_t seed, uint64_t stream) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ULL + (stream + 1) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 30)) * 0x94D049BB133111EBULL;
  return (z ^ (z >> 31)) & ((1ULL << 62) - 1);
}

}  // namespace symm::app
