#pragma once
// The Transformer's position-wise feed-forward block: eLinear → activation → dropout → eLinear, with the
// hidden features in whole regular copies in the permutation basis so the activation is equivariant.
#include "symm/nn/activation.h"
#include "symm/nn/affine.h"
#include "symm/nn/linear.h"

namespace symm::nn {

struct eFeedForwardOptions {
  eFeedForwardOptions(Representation in_rep, int64_t dim_feedforward) : in_rep_(std::move(in_rep)), dim_feedforward_(dim_feedforward) {}
  TORCH_ARG(Representation, in_rep);
  /// Hidden width; rounded up to whole regular copies of the group.
  TORCH_ARG(int64_t, dim_feedforward);
  TORCH_ARG(Activation, activation) = Activation::gelu();
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(bool, bias) = true;
  TORCH_ARG(std::string, init_scheme) = "xavier_uniform";
};

class eFeedForwardImpl : public torch::nn::Cloneable<eFeedForwardImpl>, public eModule {
 public:
  eFeedForwardImpl(Representation in_rep, int64_t dim_feedforward)
      : eFeedForwardImpl(eFeedForwardOptions(std::move(in_rep), dim_feedforward)) {}
  explicit eFeedForwardImpl(eFeedForwardOptions options);
  void reset() override;
  void reset_parameters();
  torch::Tensor forward(const torch::Tensor& x);
  /// forward(pre->forward(x)) with the learnable eAffine `pre` folded into linear1 (eLinear::forward_after).
  torch::Tensor forward_after(const torch::Tensor& x, eAffineImpl& pre);
  /// The layers' isotypic execution: z (D, N) in linear1's input layout, `pre` (may be null) folded into
  /// linear1. Only the activation and dropout leave the isotypic coordinates, for the permutation basis of
  /// the hidden copies, where they commute with the group.
  torch::Tensor forward_isotypic(const torch::Tensor& z, eAffineImpl* pre = nullptr);
  /// The hidden width actually used: whole regular copies.
  int64_t hidden_size() const { return hidden_rep_.size(); }
  void pretty_print(std::ostream& stream) const override;
  const Representation& in_rep() const override { return options.in_rep(); }
  const Representation& out_rep() const override { return options.in_rep(); }

  eFeedForwardOptions options;
  eLinear linear1{nullptr}, linear2{nullptr};
  torch::nn::Dropout dropout{nullptr};

 private:
  Representation hidden_rep_;
};
TORCH_MODULE(eFeedForward);

}  // namespace symm::nn
