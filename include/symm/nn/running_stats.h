#pragma once
// EMAStats and eEMAStats (symm_learning.nn.EMAStats, eEMAStats): exponential moving averages of the means,
// covariances and cross-covariance of two streams x (N, D_x) and y (N, D_y). Training forwards update them,
// eval forwards leave them; the data pass through unchanged. The equivariant one keeps invariant means and
// covariances in Hom_G, stored as Hom_G coefficients.
//
// After a training forward the statistics carry the gradient of the current batch (the previous state is
// detached: S_t = (1 − α)·detach(S_{t−1}) + α·S_batch), so a loss may use them; the buffers are updated in
// place, so compute such a loss's backward before the next training forward.
#include <optional>
#include <tuple>

#include "symm/nn/module.h"
#include "symm/stats/linalg.h"

namespace symm::nn {

struct EMAStatsOptions {
  EMAStatsOptions(int64_t dim_x) : dim_x_(dim_x) {}
  /// Features of x.
  TORCH_ARG(int64_t, dim_x);
  /// Features of y; dim_x when unset.
  TORCH_ARG(std::optional<int64_t>, dim_y) = std::nullopt;
  /// α in (0, 1]: the weight of the newest batch.
  TORCH_ARG(double, momentum) = 0.1;
  /// Kept for symm_learning's signature; the statistics do not use it.
  TORCH_ARG(double, eps) = 1e-6;
  /// Centre a batch's covariances at the running means (after the first batch) rather than its own means.
  TORCH_ARG(bool, center_with_running_mean) = true;
};

/// Batch statistics: means, and covariances over N − 1 (N ≥ 2 in training).
class EMAStatsImpl : public torch::nn::Cloneable<EMAStatsImpl> {
 public:
  explicit EMAStatsImpl(int64_t dim_x) : EMAStatsImpl(EMAStatsOptions(dim_x)) {}
  explicit EMAStatsImpl(EMAStatsOptions options);
  void reset() override;
  /// Means to 0, covariances to the identity (cross-covariance 0), no batch tracked.
  void reset_parameters();
  /// Updates the statistics in training; returns (x, y).
  std::tuple<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x, const torch::Tensor& y);
  const torch::Tensor& mean_x() const { return running_mean_x; }
  const torch::Tensor& mean_y() const { return running_mean_y; }
  const torch::Tensor& cov_xx() const { return running_cov_xx; }
  const torch::Tensor& cov_yy() const { return running_cov_yy; }
  /// (D_x, D_y).
  const torch::Tensor& cov_xy() const { return running_cov_xy; }
  void pretty_print(std::ostream& stream) const override;

  EMAStatsOptions options;
  torch::Tensor num_batches_tracked;              // int64 scalar
  torch::Tensor running_mean_x, running_mean_y;   // (D_x), (D_y)
  torch::Tensor running_cov_xx, running_cov_yy;   // (D_x, D_x), (D_y, D_y)
  torch::Tensor running_cov_xy;                   // (D_x, D_y)
};
TORCH_MODULE(EMAStats);

struct eEMAStatsOptions {
  eEMAStatsOptions(Representation x_rep) : x_rep_(std::move(x_rep)) {}
  TORCH_ARG(Representation, x_rep);
  /// x_rep when unset; must be of the same group.
  TORCH_ARG(std::optional<Representation>, y_rep) = std::nullopt;
  TORCH_ARG(double, momentum) = 0.1;
  /// Kept for symm_learning's signature; the statistics do not use it.
  TORCH_ARG(double, eps) = 1e-6;
  TORCH_ARG(bool, center_with_running_mean) = true;
};

/// Batch statistics: the invariant means (symm::stats::mean) and the second moments about the centre over N,
/// projected onto Hom_G (as symm_learning's eEMAStats; EMAStats divides by N − 1). C_xx ∈ End_G(ρ_x), C_yy ∈
/// End_G(ρ_y), C_xy (D_x, D_y) ∈ Hom_G(ρ_y, ρ_x), each stored as coefficients in its HomBasis.
class eEMAStatsImpl : public torch::nn::Cloneable<eEMAStatsImpl>, public eModule {
 public:
  explicit eEMAStatsImpl(Representation x_rep) : eEMAStatsImpl(eEMAStatsOptions(std::move(x_rep))) {}
  explicit eEMAStatsImpl(eEMAStatsOptions options);
  void reset() override;
  void reset_parameters();
  std::tuple<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x, const torch::Tensor& y);
  const torch::Tensor& mean_x() const { return running_mean_x; }
  const torch::Tensor& mean_y() const { return running_mean_y; }
  /// Dense covariances from the coefficients: synthesised per call in training, cached in eval.
  torch::Tensor cov_xx();
  torch::Tensor cov_yy();
  torch::Tensor cov_xy();
  void pretty_print(std::ostream& stream) const override;
  const Representation& in_rep() const override { return options.x_rep(); }
  const Representation& out_rep() const override { return y_rep_; }
  const Representation& y_rep() const { return y_rep_; }

  eEMAStatsOptions options;
  torch::Tensor num_batches_tracked;
  torch::Tensor running_mean_x, running_mean_y;
  /// Coefficients of C_xx, C_yy and C_xy in their Hom_G bases.
  torch::Tensor running_cov_xx_dof, running_cov_yy_dof, running_cov_xy_dof;

 private:
  torch::Tensor dense(const symm::stats::HomProjector& basis, const torch::Tensor& dof, EvalCache& cache);

  Representation y_rep_;
  std::shared_ptr<const symm::stats::HomProjector> xx_, yy_, xy_;
  EvalCache cache_xx_, cache_yy_, cache_xy_;
};
TORCH_MODULE(eEMAStats);

}  // namespace symm::nn
