#pragma once
// eTransformerEncoder: a stack of N clones of an encoder layer with an optional final norm, as
// torch::nn::TransformerEncoder.
#include "symm/nn/encoder_layer.h"

namespace symm::nn {

struct eTransformerEncoderOptions {
  eTransformerEncoderOptions(eTransformerEncoderLayer encoder_layer, int64_t num_layers)
      : encoder_layer_(std::move(encoder_layer)), num_layers_(num_layers) {}
  /// The layer to clone num_layers times.
  TORCH_ARG(eTransformerEncoderLayer, encoder_layer);
  TORCH_ARG(int64_t, num_layers);
  /// Optional final norm (e.g. make_norm("rmsnorm", rep, 1e-5, true)); empty for none.
  TORCH_ARG(torch::nn::AnyModule, norm);
};

class eTransformerEncoderImpl : public torch::nn::Cloneable<eTransformerEncoderImpl>, public eModule {
 public:
  eTransformerEncoderImpl(eTransformerEncoderLayer encoder_layer, int64_t num_layers)
      : eTransformerEncoderImpl(eTransformerEncoderOptions(std::move(encoder_layer), num_layers)) {}
  explicit eTransformerEncoderImpl(eTransformerEncoderOptions options);
  void reset() override;
  void reset_parameters();
  /// As eTransformerEncoderLayer::forward, through every layer, then the final norm.
  torch::Tensor forward(const torch::Tensor& src, const torch::Tensor& mask = {}, const torch::Tensor& src_key_padding_mask = {},
                        bool is_causal = false, const torch::Tensor& src_positions = {},
                        const torch::Tensor& src_position_mask = {});
  void pretty_print(std::ostream& stream) const override;
  const Representation& in_rep() const override { return options.encoder_layer()->in_rep(); }
  const Representation& out_rep() const override { return options.encoder_layer()->in_rep(); }

  eTransformerEncoderOptions options;
  torch::nn::ModuleList layers{nullptr};
  torch::nn::AnyModule norm;
};
TORCH_MODULE(eTransformerEncoder);

}  // namespace symm::nn
