#pragma once
// eMultivariateNormal (symm_learning.nn.eMultivariateNormal): a Gaussian head whose mean is equivariant and
// whose covariance commutes with the group. LibTorch has no distributions, so the head returns a
// MultivariateNormal of its own: mean, covariance, log_prob, rsample, sample and entropy.
#include <vector>

#include "symm/nn/module.h"

namespace symm::nn {

/// N(μ, Σ) with Σ = U diag(λ) Uᵀ for an orthogonal U (the identity when undefined: a diagonal Σ). Batched over
/// the leading dimensions of loc (..., n) and eigenvalues (..., n); U is (n, n), shared.
class MultivariateNormal {
 public:
  MultivariateNormal(torch::Tensor loc, torch::Tensor eigenvalues, torch::Tensor eigenvectors = {});

  const torch::Tensor& mean() const { return loc_; }
  /// λ, the variances along the columns of U.
  const torch::Tensor& eigenvalues() const { return eigenvalues_; }
  /// Σ (..., n, n).
  torch::Tensor covariance_matrix() const;
  /// The diagonal of Σ (..., n).
  torch::Tensor variance() const;
  /// log p(value) for value (..., n) broadcasting against the batch: (...).
  torch::Tensor log_prob(const torch::Tensor& value) const;
  /// μ + U (√λ ⊙ ε), ε ~ N(0, I): sample_shape + batch + (n), differentiable in μ and λ.
  torch::Tensor rsample(at::IntArrayRef sample_shape = {}) const;
  /// rsample without gradients.
  torch::Tensor sample(at::IntArrayRef sample_shape = {}) const;
  /// ½ Σ_j log(2πe λ_j): (...).
  torch::Tensor entropy() const;

 private:
  torch::Tensor loc_, eigenvalues_, eigenvectors_;
};

struct eMultivariateNormalOptions {
  eMultivariateNormalOptions(Representation out_rep) : out_rep_(std::move(out_rep)) {}
  /// Representation ρ_Y of the Gaussian's values.
  TORCH_ARG(Representation, out_rep);
  /// One variance per irrep copy, Σ diagonal in the irrep-spectral basis; the only form implemented (as in
  /// symm_learning, which refuses false).
  TORCH_ARG(bool, diagonal) = true;
};

/// Input (..., in_rep.size) = [μ (out_rep.size) | log-variances (one per irrep copy of out_rep)], in_rep =
/// out_rep ⊕ #copies·trivial. The Gaussian is N(μ, Q diag(v) Qᵀ) with v the exponentiated log-variance of each
/// coordinate's copy plus 1e-6 and Q out_rep's change of basis: ρ_Y(g) Σ = Σ ρ_Y(g) for every g and
/// every representation, so p(ρ_Y(g) y | ρ_in(g) u) = p(y | u).
/// symm_learning 0.8.1 computes diag(Q⊙Q · v) instead, the diagonal of this Σ in the original basis: the same
/// where Q permutes (signed) coordinates, and not equivariant for every representation.
class eMultivariateNormalImpl : public torch::nn::Cloneable<eMultivariateNormalImpl>, public eModule {
 public:
  explicit eMultivariateNormalImpl(Representation out_rep)
      : eMultivariateNormalImpl(eMultivariateNormalOptions(std::move(out_rep))) {}
  explicit eMultivariateNormalImpl(eMultivariateNormalOptions options);
  void reset() override;
  /// Nothing is learned: there are no parameters to draw.
  void reset_parameters() {}
  MultivariateNormal forward(const torch::Tensor& input);
  /// Number of covariance parameters: the irrep copies of out_rep.
  int64_t n_cov_params() const { return static_cast<int64_t>(options.out_rep().irreps().size()); }
  void pretty_print(std::ostream& stream) const override;
  const Representation& in_rep() const override { return in_rep_; }
  const Representation& out_rep() const override { return options.out_rep(); }

  eMultivariateNormalOptions options;

 private:
  Representation in_rep_;
  Constants constants_;  // Q (n, n), copy index of each spectral coordinate (n) int64
};
TORCH_MODULE(eMultivariateNormal);

}  // namespace symm::nn
