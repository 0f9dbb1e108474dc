#include "symm/nn/decoder_layer.h"

#include "symm/nn/normalization.h"

#include "isotypic_layout.h"

namespace symm::nn {

eTransformerDecoderLayerImpl::eTransformerDecoderLayerImpl(eTransformerDecoderLayerOptions options_)
    : options(std::move(options_)) {
  reset();
}

void eTransformerDecoderLayerImpl::reset() {
  const auto& rep = options.in_rep();
  TORCH_CHECK(rep.group(), "eTransformerDecoderLayer: in_rep is not set");
  TORCH_CHECK(options.dropout() >= 0 && options.dropout() < 1, "eTransformerDecoderLayer: dropout must be in [0, 1), got ",
              options.dropout());
  for (const auto& [name, attn] : {std::pair{"self_attn", options.self_attn()}, std::pair{"cross_attn", options.cross_attn()}}) {
    TORCH_CHECK(attn, "eTransformerDecoderLayer: ", name, " is required");
    TORCH_CHECK(symm::group::same_representation(attn->in_rep(), rep), "eTransformerDecoderLayer: ", name, " acts on ",
                attn->in_rep().name(), " but the layer's in_rep is ", rep.name());
  }
  self_attn = adopt_attention(options.self_attn(), built_);
  cross_attn = adopt_attention(options.cross_attn(), built_);
  register_module("self_attn", self_attn->as_module());
  register_module("cross_attn", cross_attn->as_module());
  feedforward = register_module("feedforward", eFeedForward(feedforward_options(options)));
  norm1 = make_norm(options.norm_module(), rep, options.layer_norm_eps(), options.bias());
  norm2 = make_norm(options.norm_module(), rep, options.layer_norm_eps(), options.bias());
  norm3 = make_norm(options.norm_module(), rep, options.layer_norm_eps(), options.bias());
  register_module("norm1", norm1.ptr());
  register_module("norm2", norm2.ptr());
  register_module("norm3", norm3.ptr());
  dropout1 = register_module("dropout1", torch::nn::Dropout(options.dropout()));
  dropout2 = register_module("dropout2", torch::nn::Dropout(options.dropout()));
  dropout3 = register_module("dropout3", torch::nn::Dropout(options.dropout()));
  set_execution(*this, options.execution());
  built_ = true;
}

void eTransformerDecoderLayerImpl::reset_parameters() { reset_equivariant_parameters(*this); }

torch::Tensor eTransformerDecoderLayerImpl::forward(const torch::Tensor& tgt, const torch::Tensor& memory,
                                                    const torch::Tensor& tgt_mask, const torch::Tensor& memory_mask,
                                                    const torch::Tensor& tgt_key_padding_mask,
                                                    const torch::Tensor& memory_key_padding_mask, bool tgt_is_causal,
                                                    bool memory_is_causal, const torch::Tensor& tgt_positions,
                                                    const torch::Tensor& memory_positions) {
  check_features("eTransformerDecoderLayer", tgt, options.in_rep().size(), "tgt");
  check_features("eTransformerDecoderLayer", memory, options.in_rep().size(), "memory");
  TORCH_CHECK(tgt.dim() == 3 && memory.dim() == 3 && tgt.size(0) == memory.size(0),
              "eTransformerDecoderLayer: expected tgt (B, T, D) and memory (B, S, D) with the same B, got ", tgt.sizes(),
              " and ", memory.sizes());
  const bool isotypic = detail::runs_isotypic(*this, {self_attn.get(), cross_attn.get()});
  const auto& layout = feedforward->linear1->isotypic_in();
  const detail::FeatureSpace space{isotypic ? &layout : nullptr, tgt.size(0)};
  const auto mem = isotypic ? layout.to_isotypic(memory) : memory;
  // With norm_first, norm1's affine folds into the self-attention's in_proj and norm3's into linear1, as in
  // the encoder layer; norm2's cannot, since the cross-attention's keys and values come unnormalised.
  auto self_block = [&](const torch::Tensor& x) {
    auto call = space.self_attention(*self_attn, options.norm_first() ? &norm1 : nullptr, x);
    call.attn_mask = tgt_mask;
    call.key_padding_mask = tgt_key_padding_mask;
    call.is_causal = tgt_is_causal;
    call.query_positions = call.key_positions = tgt_positions;
    return space.dropout(dropout1, std::get<0>(self_attn->attend(call)));
  };
  auto cross_block = [&](const torch::Tensor& x) {
    AttentionCall call;
    space.prepare(call);
    call.query = options.norm_first() ? space.norm(norm2, x) : x;
    call.key = call.value = mem;
    call.attn_mask = memory_mask;
    call.key_padding_mask = memory_key_padding_mask;
    call.is_causal = memory_is_causal;
    call.query_positions = tgt_positions;
    call.key_positions = memory_positions;
    return space.dropout(dropout2, std::get<0>(cross_attn->attend(call)));
  };
  auto ff_block = [&](const torch::Tensor& x) {
    const auto [normalised, affine] = options.norm_first() ? space.split_norm(norm3, x, true)
                                                           : std::pair<torch::Tensor, eAffineImpl*>{x, nullptr};
    return space.dropout(dropout3, space.feedforward(*feedforward, normalised, affine));
  };
  auto x = isotypic ? layout.to_isotypic(tgt) : tgt;
  if (options.norm_first()) {
    x = x + self_block(x);
    x = x + cross_block(x);
    x = x + ff_block(x);
  } else {
    x = space.norm(norm1, x + self_block(x));
    x = space.norm(norm2, x + cross_block(x));
    x = space.norm(norm3, x + ff_block(x));
  }
  return isotypic ? layout.from_isotypic(x, tgt.sizes()) : x;
}

void eTransformerDecoderLayerImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::eTransformerDecoderLayer(in=" << options.in_rep().name() << ", heads=" << self_attn->num_heads()
         << ", dim_feedforward=" << feedforward->hidden_size() << ", norm=" << options.norm_module()
         << ", norm_first=" << (options.norm_first() ? "true" : "false") << ")";
}

}  // namespace symm::nn
