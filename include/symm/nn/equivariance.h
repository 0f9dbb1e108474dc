#pragma once
// Measuring equivariance: max over group elements of |f(ρ_in(g)x) − ρ_out(g)f(x)|∞ / |f(x)|∞.
#include <functional>
#include <vector>

#include "symm/nn/module.h"

namespace symm::nn {

/// ρ(g) as a (D, D) tensor of the given dtype and device.
torch::Tensor rep_matrix(const Representation& rep, int g, const torch::TensorOptions& options);

/// Applies ρ(g) to the last axis of x.
torch::Tensor act(const Representation& rep, int g, const torch::Tensor& x);

/// Group elements to check: all when |G| <= max_elements, else the identity, the generators and a seeded
/// sample up to max_elements.
std::vector<int> elements_to_check(const symm::group::Group& g, int max_elements = 64, uint64_t seed = 0);

struct EquivarianceError {
  double max_relative = 0;  // max_g |f(gx) - g f(x)|∞ / |f(x)|∞
  double max_absolute = 0;
  int worst_element = 0;
};

/// Relative equivariance error of f over the given elements.
EquivarianceError equivariance_error(const std::function<torch::Tensor(const torch::Tensor&)>& f,
                                     const Representation& in, const Representation& out, const torch::Tensor& x,
                                     const std::vector<int>& elements);

}  // namespace symm::nn
