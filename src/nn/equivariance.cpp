#include "symm/nn/equivariance.h"

#include <algorithm>

#include "symm/group/random.h"

namespace symm::nn {

torch::Tensor rep_matrix(const Representation& rep, int g, const torch::TensorOptions& options) {
  return to_tensor(rep(g)).to(options);
}

torch::Tensor act(const Representation& rep, int g, const torch::Tensor& x) {
  return torch::matmul(x, rep_matrix(rep, g, x.options()).t());
}

std::vector<int> elements_to_check(const symm::group::Group& g, int max_elements, uint64_t seed) {
  std::vector<int> out;
  if (g.order() <= max_elements) {
    for (int i = 0; i < g.order(); ++i) out.push_back(i);
    return out;
  }
  out.push_back(0);
  for (int s : g.generators())
    if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  symm::group::Rng rng(seed);
  while (static_cast<int>(out.size()) < max_elements) {
    const int e = std::min(g.order() - 1, static_cast<int>(rng.uniform(0, g.order())));
    if (std::find(out.begin(), out.end(), e) == out.end()) out.push_back(e);
  }
  return out;
}

EquivarianceError equivariance_error(const std::function<torch::Tensor(const torch::Tensor&)>& f,
                                     const Representation& in, const Representation& out, const torch::Tensor& x,
                                     const std::vector<int>& elements) {
  torch::NoGradGuard no_grad;
  const auto y = f(x);
  const double scale = std::max(y.abs().max().item<double>(), 1e-30);
  EquivarianceError err;
  for (int g : elements) {
    const double diff = (f(act(in, g, x)) - act(out, g, y)).abs().max().item<double>();
    if (diff > err.max_absolute) {
      err.max_absolute = diff;
      err.worst_element = g;
    }
  }
  err.max_relative = err.max_absolute / scale;
  return err;
}

}  // namespace symm::nn
