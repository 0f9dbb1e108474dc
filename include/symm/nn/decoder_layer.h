#pragma once
// eTransformerDecoderLayer: self-attention, cross-attention to the encoder's memory, and the feed-forward
// block, each equivariant, with the API of torch::nn::TransformerDecoderLayer (batch-first).
#include "symm/nn/encoder_layer.h"

namespace symm::nn {

struct eTransformerDecoderLayerOptions {
  eTransformerDecoderLayerOptions(Representation in_rep, std::shared_ptr<AttentionBackend> self_attn,
                                  std::shared_ptr<AttentionBackend> cross_attn)
      : in_rep_(std::move(in_rep)), self_attn_(std::move(self_attn)), cross_attn_(std::move(cross_attn)) {}
  TORCH_ARG(Representation, in_rep);
  /// Pre-built self-attention on the target tokens.
  TORCH_ARG(std::shared_ptr<AttentionBackend>, self_attn);
  /// Pre-built attention from target tokens (queries) to memory tokens (keys and values).
  TORCH_ARG(std::shared_ptr<AttentionBackend>, cross_attn);
  TORCH_ARG(int64_t, dim_feedforward) = 2048;
  TORCH_ARG(double, dropout) = 0.1;
  TORCH_ARG(Activation, activation) = Activation::gelu();
  TORCH_ARG(double, layer_norm_eps) = 1e-5;
  TORCH_ARG(bool, norm_first) = true;
  TORCH_ARG(std::string, norm_module) = "rmsnorm";
  TORCH_ARG(bool, bias) = true;
  TORCH_ARG(std::string, init_scheme) = "xavier_uniform";
  /// Execution path of every eLinear of the layer, its attentions' projections included (set at reset()).
  TORCH_ARG(Execution, execution) = Execution::automatic;
};

class eTransformerDecoderLayerImpl : public torch::nn::Cloneable<eTransformerDecoderLayerImpl>, public eModule {
 public:
  eTransformerDecoderLayerImpl(Representation in_rep, std::shared_ptr<AttentionBackend> self_attn,
                               std::shared_ptr<AttentionBackend> cross_attn)
      : eTransformerDecoderLayerImpl(eTransformerDecoderLayerOptions(std::move(in_rep), std::move(self_attn), std::move(cross_attn))) {}
  explicit eTransformerDecoderLayerImpl(eTransformerDecoderLayerOptions options);
  void reset() override;
  void reset_parameters();
  /// tgt (B, T, D), memory (B, S, D); masks and is_causal for the self- and the cross-attention; positions
  /// reach positional backends.
  torch::Tensor forward(const torch::Tensor& tgt, const torch::Tensor& memory, const torch::Tensor& tgt_mask = {},
                        const torch::Tensor& memory_mask = {}, const torch::Tensor& tgt_key_padding_mask = {},
                        const torch::Tensor& memory_key_padding_mask = {}, bool tgt_is_causal = false,
                        bool memory_is_causal = false, const torch::Tensor& tgt_positions = {},
                        const torch::Tensor& memory_positions = {});
  void pretty_print(std::ostream& stream) const override;
  const Representation& in_rep() const override { return options.in_rep(); }
  const Representation& out_rep() const override { return options.in_rep(); }

  eTransformerDecoderLayerOptions options;
  std::shared_ptr<AttentionBackend> self_attn, cross_attn;
  eFeedForward feedforward{nullptr};
  torch::nn::AnyModule norm1, norm2, norm3;
  torch::nn::Dropout dropout1{nullptr}, dropout2{nullptr}, dropout3{nullptr};

 private:
  bool built_ = false;
};
TORCH_MODULE(eTransformerDecoderLayer);

}  // namespace symm::nn
