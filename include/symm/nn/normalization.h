#pragma once
// Equivariant normalisation: eRMSNorm and eLayerNorm. Both divide by a norm that ρ (orthogonal) leaves
// unchanged, then apply an eAffine.
#include "symm/nn/affine.h"

namespace symm::nn {

namespace detail {
class IsotypicLayout;
}

struct eRMSNormOptions {
  eRMSNormOptions(Representation in_rep) : in_rep_(std::move(in_rep)) {}
  TORCH_ARG(Representation, in_rep);
  /// Added to the mean square before the square root.
  TORCH_ARG(double, eps) = 1e-5;
  /// Follow the normalisation with a learnable eAffine (scales only, like torch's RMSNorm weight).
  TORCH_ARG(bool, equiv_affine) = true;
};

/// x / sqrt(mean(x²) + eps) over the last dimension, then an eAffine without bias.
class eRMSNormImpl : public torch::nn::Cloneable<eRMSNormImpl>, public eModule {
 public:
  explicit eRMSNormImpl(Representation in_rep) : eRMSNormImpl(eRMSNormOptions(std::move(in_rep))) {}
  explicit eRMSNormImpl(eRMSNormOptions options);
  void reset() override;
  void reset_parameters();
  torch::Tensor forward(const torch::Tensor& x);
  /// The normalisation alone, before the affine map: forward(x) = affine->forward(normalise(x)).
  torch::Tensor normalise(const torch::Tensor& x);
  /// The same on z (D, N) in `layout`, the isotypic layout of in_rep (the layers' isotypic execution).
  torch::Tensor normalise_isotypic(const torch::Tensor& z, const detail::IsotypicLayout& layout);
  torch::Tensor forward_isotypic(const torch::Tensor& z, const detail::IsotypicLayout& layout);
  void pretty_print(std::ostream& stream) const override;
  const Representation& in_rep() const override { return options.in_rep(); }
  const Representation& out_rep() const override { return options.in_rep(); }

  eRMSNormOptions options;
  /// The affine map after normalisation; empty without equiv_affine.
  eAffine affine{nullptr};
};
TORCH_MODULE(eRMSNorm);

struct eLayerNormOptions {
  eLayerNormOptions(Representation in_rep) : in_rep_(std::move(in_rep)) {}
  TORCH_ARG(Representation, in_rep);
  TORCH_ARG(double, eps) = 1e-5;
  TORCH_ARG(bool, equiv_affine) = true;
  /// Whether the affine map has an invariant bias.
  TORCH_ARG(bool, bias) = true;
};

/// Centres x along u, the unit invariant part of the all-ones direction (so for the trivial group this is
/// the mean), divides by sqrt(mean of the centred squares + eps), then eAffine. Equals
/// torch::nn::LayerNorm for C1 and is equivariant for every representation.
class eLayerNormImpl : public torch::nn::Cloneable<eLayerNormImpl>, public eModule {
 public:
  explicit eLayerNormImpl(Representation in_rep) : eLayerNormImpl(eLayerNormOptions(std::move(in_rep))) {}
  explicit eLayerNormImpl(eLayerNormOptions options);
  void reset() override;
  void reset_parameters();
  torch::Tensor forward(const torch::Tensor& x);
  /// The normalisation alone, before the affine map: forward(x) = affine->forward(normalise(x)).
  torch::Tensor normalise(const torch::Tensor& x);
  /// The same on z (D, N) in `layout`, the isotypic layout of in_rep (the layers' isotypic execution).
  torch::Tensor normalise_isotypic(const torch::Tensor& z, const detail::IsotypicLayout& layout);
  torch::Tensor forward_isotypic(const torch::Tensor& z, const detail::IsotypicLayout& layout);
  /// u on x's device and dtype (functional::layer_normalise's centre), or none.
  c10::optional<torch::Tensor> centre_vector(const torch::Tensor& x);
  void pretty_print(std::ostream& stream) const override;
  const Representation& in_rep() const override { return options.in_rep(); }
  const Representation& out_rep() const override { return options.in_rep(); }

  eLayerNormOptions options;
  eAffine affine{nullptr};

 private:
  Constants constants_;  // u, or empty when the all-ones direction has no invariant part
};
TORCH_MODULE(eLayerNorm);

}  // namespace symm::nn
