#include "symm/nn/distributions.h"

#include <cmath>

namespace symm::nn {

namespace {
constexpr double kLog2Pi = 1.8378770664093453;  // log(2π)
}

MultivariateNormal::MultivariateNormal(torch::Tensor loc, torch::Tensor eigenvalues, torch::Tensor eigenvectors)
    : loc_(std::move(loc)), eigenvalues_(std::move(eigenvalues)), eigenvectors_(std::move(eigenvectors)) {
  TORCH_CHECK(loc_.dim() >= 1 && loc_.sizes() == eigenvalues_.sizes(), "MultivariateNormal: expected loc and eigenvalues of "
              "the same shape (..., n), got ", loc_.sizes(), " and ", eigenvalues_.sizes());
  const auto n = loc_.size(-1);
  TORCH_CHECK(!eigenvectors_.defined() || (eigenvectors_.dim() == 2 && eigenvectors_.size(0) == n && eigenvectors_.size(1) == n),
              "MultivariateNormal: expected eigenvectors (", n, ", ", n, "), got ", eigenvectors_.sizes());
}

torch::Tensor MultivariateNormal::covariance_matrix() const {
  const auto d = torch::diag_embed(eigenvalues_);
  return eigenvectors_.defined() ? torch::matmul(torch::matmul(eigenvectors_, d), eigenvectors_.t()) : d;
}

torch::Tensor MultivariateNormal::variance() const {
  return eigenvectors_.defined() ? torch::matmul(eigenvalues_, eigenvectors_.pow(2).t()) : eigenvalues_;
}

torch::Tensor MultivariateNormal::log_prob(const torch::Tensor& value) const {
  TORCH_CHECK(value.dim() >= 1 && value.size(-1) == loc_.size(-1), "MultivariateNormal::log_prob: expected a value of shape "
              "(..., ", loc_.size(-1), "), got ", value.sizes());
  auto z = value - loc_;
  if (eigenvectors_.defined()) z = torch::matmul(z, eigenvectors_);  // Uᵀ(y − μ), as rows
  const auto mahalanobis = (z.pow(2) / eigenvalues_).sum(-1);
  return -0.5 * (mahalanobis + eigenvalues_.log().sum(-1) + double(loc_.size(-1)) * kLog2Pi);
}

torch::Tensor MultivariateNormal::rsample(at::IntArrayRef sample_shape) const {
  std::vector<int64_t> shape(sample_shape.begin(), sample_shape.end());
  shape.insert(shape.end(), loc_.sizes().begin(), loc_.sizes().end());
  auto step = torch::randn(shape, loc_.options()) * eigenvalues_.sqrt();
  if (eigenvectors_.defined()) step = torch::matmul(step, eigenvectors_.t());
  return loc_ + step;
}

torch::Tensor MultivariateNormal::sample(at::IntArrayRef sample_shape) const {
  torch::NoGradGuard no_grad;
  return rsample(sample_shape);
}

torch::Tensor MultivariateNormal::entropy() const {
  return 0.5 * (eigenvalues_.log().sum(-1) + double(loc_.size(-1)) * (1.0 + kLog2Pi));
}

eMultivariateNormalImpl::eMultivariateNormalImpl(eMultivariateNormalOptions options_) : options(std::move(options_)) {
  reset();
}

void eMultivariateNormalImpl::reset() {
  TORCH_CHECK(options.diagonal(), "eMultivariateNormal: only diagonal covariances (diagonal=true, one variance per irrep "
              "copy) are implemented, got diagonal=false");
  const auto& rep = options.out_rep();
  TORCH_CHECK(rep.size() > 0, "eMultivariateNormal: out_rep is empty");
  in_rep_ = direct_sum(rep, Representation::trivial(rep.group(), static_cast<int>(n_cov_params())));
  std::vector<int64_t> copy;  // the irrep copy of each spectral coordinate
  for (size_t i = 0; i < rep.irreps().size(); ++i)
    copy.insert(copy.end(), rep.group()->irrep(rep.irreps()[i]).dim, static_cast<int64_t>(i));
  constants_ = Constants({to_tensor(rep.change_of_basis()), torch::tensor(copy, torch::kInt64)});
}

MultivariateNormal eMultivariateNormalImpl::forward(const torch::Tensor& input) {
  const int64_t n = options.out_rep().size();
  TORCH_CHECK(input.dim() >= 1 && input.size(-1) == in_rep_.size(), "eMultivariateNormal: expected input of shape (..., ",
              in_rep_.size(), ") (mean ", n, " + log-variances ", n_cov_params(), " for ", options.out_rep().name(),
              "), got ", input.sizes());
  TORCH_CHECK(input.is_floating_point(), "eMultivariateNormal: expected a floating-point input, got ", input.scalar_type());
  const auto& c = constants_.get(input);
  const auto log_var = input.narrow(-1, n, n_cov_params());
  // One variance per irrep copy, shared by the copy's coordinates in the spectral basis.
  const auto v = log_var.index_select(-1, c[1]).exp() + 1e-6;
  return MultivariateNormal(input.narrow(-1, 0, n), v, c[0]);
}

void eMultivariateNormalImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::eMultivariateNormal(out=" << options.out_rep().name() << ", in=" << in_rep_.name()
         << ", n_cov_params=" << n_cov_params() << ", diagonal=true)";
}

}  // namespace symm::nn
