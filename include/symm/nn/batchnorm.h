#pragma once
// eBatchNorm1d: batch normalisation that commutes with the group. The statistics are the symmetric ones:
// the mean is projected onto Fix(ρ) and there is one variance per irrep copy (the mean square of the copy's
// isotypic coordinates over its d_k components), so y = Q·diag(1/√(σ²+ε))·Qᵀ(x − μ) commutes with ρ(g).
// Train/eval semantics, momentum and running statistics as torch's BatchNorm1d; the affine map is an eAffine
// (one scale per irrep copy, bias in Fix(ρ)).
#include "symm/nn/affine.h"

namespace symm::nn {

struct eBatchNorm1dOptions {
  eBatchNorm1dOptions(Representation in_rep) : in_rep_(std::move(in_rep)) {}
  /// Representation of the channels.
  TORCH_ARG(Representation, in_rep);
  TORCH_ARG(double, eps) = 1e-5;
  /// Weight of the batch in the running statistics; nullopt: the cumulative average, as torch's None.
  TORCH_ARG(c10::optional<double>, momentum) = 0.1;
  /// Whether to follow with a learnable eAffine.
  TORCH_ARG(bool, affine) = true;
  /// Keep running statistics and normalise with them in eval (else the batch's are used in eval too).
  TORCH_ARG(bool, track_running_stats) = true;
};

class eBatchNorm1dImpl : public torch::nn::Cloneable<eBatchNorm1dImpl>, public eModule {
 public:
  explicit eBatchNorm1dImpl(Representation in_rep) : eBatchNorm1dImpl(eBatchNorm1dOptions(std::move(in_rep))) {}
  explicit eBatchNorm1dImpl(eBatchNorm1dOptions options);
  void reset() override;
  void reset_parameters();
  void reset_running_stats();
  /// x (B, C) or (B, C, T) with C = in_rep.size(), as torch's BatchNorm1d; the statistics are taken over B
  /// (and T).
  torch::Tensor forward(const torch::Tensor& x);
  /// Number of irrep copies (entries of running_var).
  int64_t num_copies() const { return static_cast<int64_t>(options.in_rep().irreps().size()); }
  void pretty_print(std::ostream& stream) const override;
  const Representation& in_rep() const override { return options.in_rep(); }
  const Representation& out_rep() const override { return options.in_rep(); }

  eBatchNorm1dOptions options;
  /// The learnable affine map; empty without affine.
  eAffine affine{nullptr};
  /// Running mean (C), in Fix(ρ); running variance per irrep copy (copies); batches seen. Undefined without
  /// track_running_stats.
  torch::Tensor running_mean, running_var, num_batches_tracked;

 private:
  // Q (C, C), its diagonal blocks (k, b, b) (k = 1: Q), the dimension of each copy (copies), 1 on the columns of Q
  // of trivial copies (C): batch_norm_train's constants
  Constants constants_;
  torch::Tensor copy_of_;  // int64 (C): irrep copy of each column of Q
};
TORCH_MODULE(eBatchNorm1d);

}  // namespace symm::nn
