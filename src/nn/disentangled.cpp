#include "symm/nn/disentangled.h"

#include <algorithm>
#include <numeric>

namespace symm::nn {

Change2DisentangledBasisImpl::Change2DisentangledBasisImpl(Change2DisentangledBasisOptions options_)
    : options(std::move(options_)) {
  reset();
}

void Change2DisentangledBasisImpl::reset() {
  const auto& rep = options.in_rep();
  TORCH_CHECK(rep.group(), "Change2DisentangledBasis: in_rep must be set");
  const auto& irreps = rep.irreps();
  // Column offset of each copy in Q, then the copies stably sorted by irrep.
  std::vector<int> offset(irreps.size() + 1, 0);
  for (size_t i = 0; i < irreps.size(); ++i) offset[i + 1] = offset[i] + rep.group()->irrep(irreps[i]).dim;
  std::vector<size_t> order(irreps.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return irreps[a] < irreps[b]; });
  const Eigen::MatrixXd& q = rep.change_of_basis();
  Eigen::MatrixXd qp(q.rows(), q.cols());
  std::vector<int> sorted;
  int col = 0;
  for (size_t i : order) {
    const int d = offset[i + 1] - offset[i];
    qp.middleCols(col, d) = q.middleCols(offset[i], d);
    col += d;
    sorted.push_back(irreps[i]);
  }
  const Eigen::MatrixXd m = qp.transpose();
  out_rep_ = Representation(rep.group(), sorted, Eigen::MatrixXd::Identity(rep.size(), rep.size()), rep.name() + " (isotypic)");
  identity_ = m.isIdentity(1e-12);
  constants_ = Constants({to_tensor(m)});
  linear = options.learnable()
               ? register_module("linear", torch::nn::Linear(torch::nn::LinearOptions(rep.size(), rep.size()).bias(false)))
               : torch::nn::Linear(nullptr);
  reset_parameters();
}

void Change2DisentangledBasisImpl::reset_parameters() {
  if (!linear) return;
  torch::NoGradGuard no_grad;
  linear->weight.copy_(change_of_basis());
}

torch::Tensor Change2DisentangledBasisImpl::change_of_basis() const { return constants_.get(torch::kCPU, torch::kFloat64)[0]; }

torch::Tensor Change2DisentangledBasisImpl::forward(const torch::Tensor& x) {
  check_features("Change2DisentangledBasis", x, options.in_rep().size());
  if (linear) return linear(x);
  if (identity_) return x;
  return torch::matmul(x, constants_.get(x)[0].t());
}

void Change2DisentangledBasisImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::Change2DisentangledBasis(in=" << options.in_rep().name()
         << ", learnable=" << (options.learnable() ? "true" : "false") << ", identity=" << (identity_ ? "true" : "false") << ")";
}

}  // namespace symm::nn
