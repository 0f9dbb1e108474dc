#include "symm/nn/encoder.h"

#include "isotypic_layout.h"

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
  const auto first = layers->ptr<eTransformerEncoderLayerImpl>(0);
  bool isotypic = true;
  for (auto& layer : *layers) isotypic = isotypic && layer->as<eTransformerEncoderLayerImpl>()->uses_isotypic();
  if (!isotypic) {
    auto x = src;
    for (auto& layer : *layers)
      x = layer->as<eTransformerEncoderLayerImpl>()->forward(x, mask, src_key_padding_mask, is_causal, src_positions, src_position_mask);
    return norm.is_empty() ? x : norm.forward(x);
  }
  // Isotypic coordinates from the first layer's entry to the last layer's exit.
  check_features("eTransformerEncoder", src, first->options.in_rep().size(), "src");
  TORCH_CHECK(src.dim() == 3, "eTransformerEncoder: expected src of shape (B, T, ", first->options.in_rep().size(),
              "), got ", src.sizes());
  const auto& layout = first->isotypic_layout();
  auto z = layout.to_isotypic(src);
  for (auto& layer : *layers)
    z = layer->as<eTransformerEncoderLayerImpl>()->forward_isotypic(z, src.size(0), mask, src_key_padding_mask, is_causal,
                                                                     src_positions, src_position_mask);
  if (!norm.is_empty()) z = detail::FeatureSpace{&layout, src.size(0)}.norm(norm, z);
  return layout.from_isotypic(z, src.sizes());
}

void eTransformerEncoderImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::eTransformerEncoder(num_layers=" << options.num_layers() << ", norm=" << (norm.is_empty() ? "none" : "yes") << ")";
}

}  // namespace symm::nn
