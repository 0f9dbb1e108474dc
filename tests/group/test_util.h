#pragma once
// Helpers shared by the group tests.
#include <cstdint>

#include <Eigen/Dense>

#include "symm/group/random.h"

namespace symm::test {

/// An r × c matrix of standard normal entries, reproducible from the seed.
inline Eigen::MatrixXd random_matrix(Eigen::Index r, Eigen::Index c, std::uint64_t seed) {
  symm::group::Rng rng(seed);
  Eigen::MatrixXd a(r, c);
  for (Eigen::Index i = 0; i < a.size(); ++i) a.data()[i] = rng.normal();
  return a;
}

}  // namespace symm::test
