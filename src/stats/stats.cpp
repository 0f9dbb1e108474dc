#include "symm/stats/stats.h"

#include "symm/nn/module.h"
#include "symm/stats/linalg.h"

namespace symm::stats {

namespace {

/// x (N, D) or (N, D, T) as samples (N·T, D): the time axis joins the sample axis.
torch::Tensor samples(const char* fn, const torch::Tensor& x, const Representation& rep) {
  TORCH_CHECK((x.dim() == 2 || x.dim() == 3) && x.size(1) == rep.size(), "symm::stats::", fn,
              ": expected x (N, D) or (N, D, T) with D = ", rep.size(), " for ", rep.name(), ", got ", x.sizes());
  return x.dim() == 2 ? x : x.transpose(1, 2).reshape({-1, x.size(1)});
}

}  // namespace

torch::Tensor invariant_orthogonal_projector(const Representation& rep, const torch::TensorOptions& options) {
  const Eigen::MatrixXd basis = rep.invariant_basis();
  return symm::nn::to_tensor(Eigen::MatrixXd(basis * basis.transpose())).to(options);
}

torch::Tensor mean(const torch::Tensor& x, const Representation& rep) {
  const auto flat = samples("mean", x, rep);
  return torch::matmul(invariant_orthogonal_projector(rep, flat.options()), flat.mean(0));
}

torch::Tensor var(const torch::Tensor& x, const Representation& rep, const torch::Tensor& center) {
  const auto flat = samples("var", x, rep);
  const auto n = flat.size(0);
  TORCH_CHECK(n >= 2, "symm::stats::var: needs at least 2 samples (it divides by N - 1), got ", n);
  const auto c = center.defined() ? center : mean(x, rep);
  TORCH_CHECK(c.dim() == 1 && c.size(0) == rep.size(), "symm::stats::var: expected center of shape (", rep.size(),
              "), got ", c.sizes());
  // In the irrep-spectral basis the variance of a copy's coordinates is one number: average them.
  const int64_t d = rep.size();
  Eigen::MatrixXd average = Eigen::MatrixXd::Zero(d, d);
  int64_t offset = 0;
  for (int k : rep.irreps()) {
    const int dk = rep.group()->irrep(k).dim;
    average.block(offset, offset, dk, dk).setConstant(1.0 / dk);
    offset += dk;
  }
  const auto q = symm::nn::to_tensor(rep.change_of_basis()).to(flat.options());
  const auto spectral = torch::matmul(flat - c, q);  // rows Qᵀ(x_n − c)
  const auto v = torch::matmul(symm::nn::to_tensor(average).to(flat.options()), spectral.pow(2).sum(0) / double(n - 1));
  return torch::matmul(q.pow(2), v);
}

std::tuple<torch::Tensor, torch::Tensor> var_mean(const torch::Tensor& x, const Representation& rep) {
  auto m = mean(x, rep);
  return {var(x, rep, m), m};
}

torch::Tensor cov(const torch::Tensor& x, const torch::Tensor& y, const Representation& rep_x, const Representation& rep_y,
                  bool uncentered) {
  TORCH_CHECK(x.dim() == 2 && y.dim() == 2 && x.size(1) == rep_x.size() && y.size(1) == rep_y.size() &&
                  x.size(0) == y.size(0),
              "symm::stats::cov: expected x (N, ", rep_x.size(), ") and y (N, ", rep_y.size(),
              ") with the same N, got x ", x.sizes(), " and y ", y.sizes());
  const auto n = x.size(0);
  TORCH_CHECK(n >= (uncentered ? 1 : 2), "symm::stats::cov: needs at least ", uncentered ? 1 : 2, " samples",
              uncentered ? "" : " (it divides by N - 1)", ", got ", n);
  const auto xe = uncentered ? x : x - mean(x, rep_x);
  const auto ye = uncentered ? y : y - mean(y, rep_y);
  const auto raw = torch::matmul(ye.t(), xe) / double(uncentered ? n : n - 1);
  return HomProjector(rep_x, rep_y).project(raw);
}

}  // namespace symm::stats
