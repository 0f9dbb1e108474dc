#pragma once
// eTransformerEncoderLayer: the equivariant Transformer encoder layer with the API of
// torch.nn.TransformerEncoderLayer (and of symm_learning's eTransformerEncoderLayer). Every linear map
// commutes with the group, so f(ρ(g)x) = ρ(g)f(x) with ρ acting on the feature axis of every token.
#include <initializer_list>
#include <optional>

#include "symm/nn/attention.h"
#include "symm/nn/feedforward.h"

namespace symm::nn {

namespace detail {
class IsotypicLayout;

/// Where a layer's features live during a forward: in the representation's basis, (B, L, D), or in the
/// isotypic layout of isotypic execution, (D, B·L). Norms, dropouts and the feed-forward block go through it.
struct FeatureSpace {
  const IsotypicLayout* layout = nullptr;  // null: the representation's basis
  int64_t batch = 0;

  torch::Tensor norm(torch::nn::AnyModule& norm, const torch::Tensor& x) const;
  /// As split_norm below; without folding (nullptr affine) unless `fold`.
  std::pair<torch::Tensor, eAffineImpl*> split_norm(torch::nn::AnyModule& norm, const torch::Tensor& x, bool fold) const;
  /// Dropout where the dense path applies it, in the representation's basis (a permutation basis makes it
  /// equivariant in distribution).
  torch::Tensor dropout(torch::nn::Dropout& dropout, const torch::Tensor& x) const;
  torch::Tensor feedforward(eFeedForwardImpl& feedforward, const torch::Tensor& x, eAffineImpl* pre) const;
  /// Marks an attention call as isotypic when this space is.
  void prepare(AttentionCall& call) const { call.isotypic_batch = layout ? batch : 0; }
  /// A self-attention call on x: through `pre_norm` first when given, whose affine map folds into the
  /// attention's in_proj when the backend honours AttentionCall::input_affine (this library's do).
  AttentionCall self_attention(AttentionBackend& attn, torch::nn::AnyModule* pre_norm, const torch::Tensor& x) const;
};

/// Whether a layer (its eLinears' execution, its attention backends) runs isotypic.
bool runs_isotypic(const torch::nn::Module& layer, std::initializer_list<const AttentionBackend*> attention);
}  // namespace detail

struct eTransformerEncoderLayerOptions {
  eTransformerEncoderLayerOptions(Representation in_rep, std::shared_ptr<AttentionBackend> self_attn)
      : in_rep_(std::move(in_rep)), self_attn_(std::move(self_attn)) {}
  /// Representation of the features of each token; must be isomorphic to regular copies.
  TORCH_ARG(Representation, in_rep);
  /// Pre-built self-attention: eMultiheadAttention or any PositionalAttentionBase backend, on in_rep.
  TORCH_ARG(std::shared_ptr<AttentionBackend>, self_attn);
  /// Hidden width of the feed-forward block, rounded up to whole regular copies.
  TORCH_ARG(int64_t, dim_feedforward) = 2048;
  TORCH_ARG(double, dropout) = 0.1;
  TORCH_ARG(Activation, activation) = Activation::gelu();
  TORCH_ARG(double, layer_norm_eps) = 1e-5;
  /// Pre-norm (norm before attention and feed-forward) when true, post-norm otherwise.
  TORCH_ARG(bool, norm_first) = true;
  /// "rmsnorm" (eRMSNorm) or "layernorm" (eLayerNorm).
  TORCH_ARG(std::string, norm_module) = "rmsnorm";
  /// Invariant biases in the linear maps and norms.
  TORCH_ARG(bool, bias) = true;
  TORCH_ARG(std::optional<torch::Device>, device) = std::nullopt;
  TORCH_ARG(std::optional<torch::Dtype>, dtype) = std::nullopt;
  /// xavier_uniform, xavier_normal, kaiming_uniform or kaiming_normal.
  TORCH_ARG(std::string, init_scheme) = "xavier_uniform";
  /// Execution path of every eLinear of the layer, its attention's projections included (set at reset()).
  TORCH_ARG(Execution, execution) = Execution::automatic;
};

/// Largest errors found by check_equivariance, relative to the output scale.
struct EquivarianceReport {
  double attention = 0, feedforward = 0, layer = 0;
  int worst_element = 0;
};

class eTransformerEncoderLayerImpl : public torch::nn::Cloneable<eTransformerEncoderLayerImpl>, public eModule {
 public:
  eTransformerEncoderLayerImpl(Representation in_rep, std::shared_ptr<AttentionBackend> self_attn)
      : eTransformerEncoderLayerImpl(eTransformerEncoderLayerOptions(std::move(in_rep), std::move(self_attn))) {}
  explicit eTransformerEncoderLayerImpl(eTransformerEncoderLayerOptions options);

  void reset() override;
  void reset_parameters();
  /// src (B, T, D). Masks as torch::nn::TransformerEncoderLayer (batch-first); positions (B, T) and the
  /// position mask (B, T) bool reach positional backends and are ignored by plain eMultiheadAttention.
  torch::Tensor forward(const torch::Tensor& src, const torch::Tensor& src_mask = {},
                        const torch::Tensor& src_key_padding_mask = {}, bool is_causal = false,
                        const torch::Tensor& src_positions = {}, const torch::Tensor& src_position_mask = {});
  /// The isotypic execution of forward, for the encoder stack: z (D, B·T) in the isotypic layout of in_rep
  /// (isotypic_layout()), B = batch; the masks and positions as in forward.
  torch::Tensor forward_isotypic(const torch::Tensor& z, int64_t batch, const torch::Tensor& src_mask = {},
                                 const torch::Tensor& src_key_padding_mask = {}, bool is_causal = false,
                                 const torch::Tensor& src_positions = {}, const torch::Tensor& src_position_mask = {});
  /// Whether forward keeps the features in isotypic coordinates from entry to exit: the attention backend
  /// supports it and every eLinear of the layer is set to Execution::isotypic, or all are automatic and the
  /// block products need few enough multiply-adds to win: at most 0.35 of the dense ones in training, 0.2 in
  /// eval (measured on the CPU, bench/RESULTS.md). So automatic may differ between train() and eval().
  bool uses_isotypic() const;
  const detail::IsotypicLayout& isotypic_layout() const;
  /// Multiply-adds per token of forward on the path in use: linear maps, attention products for sequences of
  /// seq_len, and on the isotypic path its basis changes (entry, exit, around the activation).
  int64_t multiply_adds(int64_t seq_len) const;
  /// Checks the attention block, the feed-forward block and the whole layer on random inputs in eval mode
  /// over `samples` group elements (all of them when |G| <= samples). Throws c10::Error with the largest
  /// error and the failing element when |f(gx) − g·f(x)| > atol + rtol·|g·f(x)| anywhere.
  EquivarianceReport check_equivariance(int64_t batch_size = 4, int64_t seq_len = 5, int samples = 20,
                                        double atol = 1e-4, double rtol = 1e-4);
  void pretty_print(std::ostream& stream) const override;
  const Representation& in_rep() const override { return options.in_rep(); }
  const Representation& out_rep() const override { return options.in_rep(); }

  eTransformerEncoderLayerOptions options;
  std::shared_ptr<AttentionBackend> self_attn;
  eFeedForward feedforward{nullptr};
  /// eRMSNorm or eLayerNorm.
  torch::nn::AnyModule norm1, norm2;
  torch::nn::Dropout dropout1{nullptr}, dropout2{nullptr};

  /// The two residual branches, exposed for checks: attention (with its norm when norm_first) and
  /// feed-forward.
  torch::Tensor attention_block(const torch::Tensor& x, const torch::Tensor& mask, const torch::Tensor& key_padding_mask,
                                bool is_causal, const torch::Tensor& positions, const torch::Tensor& position_mask);
  torch::Tensor feedforward_block(const torch::Tensor& x);

 private:
  torch::Tensor run(const torch::Tensor& x, const detail::FeatureSpace& space, const torch::Tensor& mask,
                    const torch::Tensor& key_padding_mask, bool is_causal, const torch::Tensor& positions,
                    const torch::Tensor& position_mask);
  torch::Tensor attention_branch(const torch::Tensor& x, const detail::FeatureSpace& space, const torch::Tensor& mask,
                                 const torch::Tensor& key_padding_mask, bool is_causal, const torch::Tensor& positions,
                                 const torch::Tensor& position_mask);
  torch::Tensor feedforward_branch(const torch::Tensor& x, const detail::FeatureSpace& space);
  /// The inference fast path (functional::encoder_layer_eval on the folded dense maps) when nothing needs the
  /// op-by-op one: eval, autograd needing nothing, pre-norm, plain eMultiheadAttention on the dense path, no
  /// mask, causality or positions, no autocast; else an undefined tensor.
  torch::Tensor fused_eval(const torch::Tensor& src);

  bool built_ = false;  // set after the first reset(); a copy being cloned then clones self_attn too
};
TORCH_MODULE(eTransformerEncoderLayer);

/// Re-draws the parameters of every eLinear and eAffine inside a module.
void reset_equivariant_parameters(torch::nn::Module& module);

/// The caller's attention module on a layer's first build; a clone of it when the layer is being cloned.
std::shared_ptr<AttentionBackend> adopt_attention(const std::shared_ptr<AttentionBackend>& attn, bool clone);

/// The feed-forward block's options from an encoder or decoder layer's options.
template <typename LayerOptions>
eFeedForwardOptions feedforward_options(const LayerOptions& o) {
  return eFeedForwardOptions(o.in_rep(), o.dim_feedforward())
      .activation(o.activation())
      .dropout(o.dropout())
      .bias(o.bias())
      .init_scheme(o.init_scheme());
}

/// eRMSNorm or eLayerNorm by name, as the layers use them.
torch::nn::AnyModule make_norm(const std::string& kind, const Representation& rep, double eps, bool bias);

/// A pre-norm's output as (normalised input, the affine map still to apply), so that the next linear map
/// can fold the affine into its weight; (norm(x), nullptr) when there is nothing to fold.
std::pair<torch::Tensor, eAffineImpl*> split_norm(torch::nn::AnyModule& norm, const torch::Tensor& x);

/// Whether an attention backend applies AttentionCall::input_affine (the backends of this library do).
bool folds_input_affine(AttentionBackend& attn);

}  // namespace symm::nn
