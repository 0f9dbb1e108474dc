#pragma once
// Statistics of samples of a representation with the symmetry imposed (symm_learning.stats): the mean
// projected onto the invariant subspace, the variance constant on each irreducible copy, and covariances
// projected onto Hom_G. On torch tensors, differentiable, on the samples' device and dtype.
#include <tuple>

#include <torch/torch.h>

#include "symm/group/representation.h"

namespace symm::stats {

using symm::group::Representation;

/// P_inv = Q S Qᵀ, the orthogonal projector onto the invariant subspace of rep. (D, D).
torch::Tensor invariant_orthogonal_projector(const Representation& rep,
                                             const torch::TensorOptions& options = torch::kFloat64);

/// P_inv · (1/N) Σ_n x_n for x (N, D) or (N, D, T); a time axis is folded into the samples. (D,).
torch::Tensor mean(const torch::Tensor& x, const Representation& rep);

/// The variance of each coordinate under the covariance that is constant on every irreducible copy: in the
/// irrep-spectral basis v_j = Σ_n (Qᵀ(x_n − c))_j² / (N − 1), averaged over the coordinates of each copy, and
/// back as Q⊙Q · v. c is `center` when defined, else mean(x, rep). (D,). Needs N ≥ 2.
torch::Tensor var(const torch::Tensor& x, const Representation& rep, const torch::Tensor& center = {});

/// (var(x, rep, mean(x, rep)), mean(x, rep)).
std::tuple<torch::Tensor, torch::Tensor> var_mean(const torch::Tensor& x, const Representation& rep);

/// The cross-covariance C_yx (D_y, D_x) of x (N, D_x) and y (N, D_y) projected onto Hom_G(rep_x, rep_y):
/// centred by the invariant means over N − 1, or (uncentered) the second moment over N.
torch::Tensor cov(const torch::Tensor& x, const torch::Tensor& y, const Representation& rep_x,
                  const Representation& rep_y, bool uncentered = false);

}  // namespace symm::stats
