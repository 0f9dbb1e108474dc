#include "symm/nn/encoder.h"

namespace symm::nn {

eTransformerEncoderImpl::eTransformerEncoderImpl(eTransformerEncoderOptions options_) : options(std::move(options_)) { reset(); }

void eTransformerEncoderImpl::reset() {
  TORCH_CHECK(options.encoder_layer(), "eTransformerEncoder: encoder_layer is required");
  TORCH_CHECK(options.num_layers() > 0, "eTransformerEncoder: num_layers must be positive, got ", options.num_layers());
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < options.num_layers(); ++i) layers->push_back(options.encoder_layer()->clone());
  if (!options.norm().is_empty()) {
    norm = options.norm().clone();
    register_module("norm", norm.ptr());
  }
}

void eTransformerEncoderImpl::reset_parameters() {
  for (auto& layer : *layers) layer->as<eTransformerEncoderLayerImpl>()->reset_parameters();
}

torch::Tensor eTransformerEncoderImpl::forward(const torch::Tensor& src, const torch::Tensor& mask,
                                               const torch::Tensor& src_key_padding_mask, bool is_causal,
                                               const torch::Tensor& src_positions, const torch::Tensor& src_position_mask) {
  auto x = src;
  for (auto& layer : *layers)
    x = layer->as<eTransformerEncoderLayerImpl>()->forward(x, mask, src_key_padding_mask, is_causal, src_positions, src_position_mask);
  return norm.is_empty() ? x : norm.forward(x);
}

void eTransformerEncoderImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::eTransformerEncoder(num_layers=" << options.num_layers() << ", norm=" << (norm.is_empty() ? "none" : "yes") << ")";
}

}  // namespace symm::nn
