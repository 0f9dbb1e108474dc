#pragma once
// Groups the fuzz targets build are capped far below kMaxOrder: a larger group runs the same code for longer
// (the limits themselves are tested in tests/group/test_limits.cpp), and each fuzzed input must stay well
// under a second under the sanitizers.
namespace symm::fuzz {
constexpr int kMaxOrder = 64;
/// Accepted specs up to this order are also built (once each): building dominates the cost of an input.
constexpr int kMaxBuiltOrder = 24;
}
