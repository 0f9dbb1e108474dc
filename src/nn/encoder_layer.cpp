#include "symm/nn/encoder_layer.h"

#include <sstream>

#include "symm/nn/equivariance.h"
#include "symm/nn/normalization.h"
#include "symm/nn/positional.h"

namespace symm::nn {

torch::nn::AnyModule make_norm(const std::string& kind, const Representation& rep, double eps, bool bias) {
  if (kind == "rmsnorm") return torch::nn::AnyModule(eRMSNorm(eRMSNormOptions(rep).eps(eps)));
  if (kind == "layernorm") return torch::nn::AnyModule(eLayerNorm(eLayerNormOptions(rep).eps(eps).bias(bias)));
  TORCH_CHECK(false, "norm_module must be 'rmsnorm' or 'layernorm', got '", kind, "'");
}

std::pair<torch::Tensor, eAffineImpl*> split_norm(torch::nn::AnyModule& norm, const torch::Tensor& x) {
  auto foldable = [](const eAffine& a) { return a && a->options.learnable(); };
  if (auto* rms = dynamic_cast<eRMSNormImpl*>(norm.ptr().get()); rms && foldable(rms->affine)) {
    return {rms->normalise(x), rms->affine.get()};
  }
  if (auto* ln = dynamic_cast<eLayerNormImpl*>(norm.ptr().get()); ln && foldable(ln->affine)) {
    return {ln->normalise(x), ln->affine.get()};
  }
  return {norm.forward(x), nullptr};
}

bool folds_input_affine(AttentionBackend& attn) {
  const auto* m = attn.as_module().get();
  return dynamic_cast<const eMultiheadAttentionImpl*>(m) || dynamic_cast<const RotaryAttentionImpl*>(m) ||
         dynamic_cast<const ALiBiAttentionImpl*>(m);
}

void reset_equivariant_parameters(torch::nn::Module& module) {
  for (auto& m : module.modules(/*include_self=*/false)) {
    if (auto* lin = dynamic_cast<eLinearImpl*>(m.get())) lin->reset_parameters();
    if (auto* aff = dynamic_cast<eAffineImpl*>(m.get())) aff->reset_parameters();
  }
}

std::shared_ptr<AttentionBackend> adopt_attention(const std::shared_ptr<AttentionBackend>& attn, bool clone) {
  if (!clone) return attn;
  return std::dynamic_pointer_cast<AttentionBackend>(attn->as_module()->clone());
}

eTransformerEncoderLayerImpl::eTransformerEncoderLayerImpl(eTransformerEncoderLayerOptions options_)
    : options(std::move(options_)) {
  reset();
}

void eTransformerEncoderLayerImpl::reset() {
  const auto& rep = options.in_rep();
  TORCH_CHECK(rep.group(), "eTransformerEncoderLayer: in_rep is not set");
  TORCH_CHECK(options.self_attn(), "eTransformerEncoderLayer: self_attn is required (eMultiheadAttention or a positional backend)");
  TORCH_CHECK(symm::group::same_representation(options.self_attn()->in_rep(), rep),
              "eTransformerEncoderLayer: self_attn acts on ", options.self_attn()->in_rep().name(), " (size ",
              options.self_attn()->in_rep().size(), ") but the layer's in_rep is ", rep.name(), " (size ", rep.size(), ")");
  TORCH_CHECK(options.dropout() >= 0 && options.dropout() < 1, "eTransformerEncoderLayer: dropout must be in [0, 1), got ",
              options.dropout());
  self_attn = adopt_attention(options.self_attn(), built_);
  register_module("self_attn", self_attn->as_module());
  feedforward = register_module("feedforward", eFeedForward(feedforward_options(options)));
  norm1 = make_norm(options.norm_module(), rep, options.layer_norm_eps(), options.bias());
  norm2 = make_norm(options.norm_module(), rep, options.layer_norm_eps(), options.bias());
  register_module("norm1", norm1.ptr());
  register_module("norm2", norm2.ptr());
  dropout1 = register_module("dropout1", torch::nn::Dropout(options.dropout()));
  dropout2 = register_module("dropout2", torch::nn::Dropout(options.dropout()));
  set_execution(*this, options.execution());
  if (options.device() || options.dtype()) {
    const auto params = parameters();
    const auto device = options.device().value_or(params.empty() ? torch::Device(torch::kCPU) : params.front().device());
    const auto dtype = options.dtype().value_or(params.empty() ? torch::kFloat32 : params.front().scalar_type());
    to(device, dtype);
  }
  built_ = true;
}

void eTransformerEncoderLayerImpl::reset_parameters() { reset_equivariant_parameters(*this); }

torch::Tensor eTransformerEncoderLayerImpl::attention_block(const torch::Tensor& x, const torch::Tensor& mask,
                                                            const torch::Tensor& key_padding_mask, bool is_causal,
                                                            const torch::Tensor& positions,
                                                            const torch::Tensor& position_mask) {
  AttentionCall call;
  if (options.norm_first()) {
    // The norm's affine map is folded into the attention's in_proj by the backends of this library, which
    // honour AttentionCall::input_affine; another backend gets the norm's full output.
    if (folds_input_affine(*self_attn)) {
      std::tie(call.query, call.input_affine) = split_norm(norm1, x);
    } else {
      call.query = norm1.forward(x);
    }
  } else {
    call.query = x;
  }
  call.key = call.value = call.query;
  call.attn_mask = mask;
  call.key_padding_mask = key_padding_mask;
  call.is_causal = is_causal;
  call.query_positions = call.key_positions = positions;
  call.query_position_mask = call.key_position_mask = position_mask;
  return dropout1->forward(std::get<0>(self_attn->attend(call)));
}

torch::Tensor eTransformerEncoderLayerImpl::feedforward_block(const torch::Tensor& x) {
  if (!options.norm_first()) return dropout2->forward(feedforward->forward(x));
  // The norm's affine map is folded into linear1.
  const auto [normalised, affine] = split_norm(norm2, x);
  return dropout2->forward(affine ? feedforward->forward_after(normalised, *affine) : feedforward->forward(normalised));
}

torch::Tensor eTransformerEncoderLayerImpl::forward(const torch::Tensor& src, const torch::Tensor& src_mask,
                                                    const torch::Tensor& src_key_padding_mask, bool is_causal,
                                                    const torch::Tensor& src_positions,
                                                    const torch::Tensor& src_position_mask) {
  check_features("eTransformerEncoderLayer", src, options.in_rep().size(), "src");
  TORCH_CHECK(src.dim() == 3, "eTransformerEncoderLayer: expected src of shape (B, T, ", options.in_rep().size(),
              "), got ", src.sizes());
  if (options.norm_first()) {
    auto x = src + attention_block(src, src_mask, src_key_padding_mask, is_causal, src_positions, src_position_mask);
    return x + feedforward_block(x);
  }
  auto x = norm1.forward(src + attention_block(src, src_mask, src_key_padding_mask, is_causal, src_positions, src_position_mask));
  return norm2.forward(x + feedforward_block(x));
}

EquivarianceReport eTransformerEncoderLayerImpl::check_equivariance(int64_t batch_size, int64_t seq_len, int samples,
                                                                    double atol, double rtol) {
  TORCH_CHECK(batch_size > 0 && seq_len > 0 && samples > 0, "check_equivariance: batch_size, seq_len and samples must be positive");
  const bool was_training = is_training();
  eval();
  const auto& rep = options.in_rep();
  const auto param = parameters().front();
  const auto x = torch::randn({batch_size, seq_len, rep.size()}, param.options().requires_grad(false));
  const auto elements = elements_to_check(*rep.group(), samples);
  EquivarianceReport report;
  double worst_excess = 0;  // largest |f(gx) − g f(x)| − (atol + rtol |g f(x)|)
  std::string worst_block;
  auto check = [&](const char* block, double& relative, const std::function<torch::Tensor(const torch::Tensor&)>& f) {
    torch::NoGradGuard no_grad;
    const auto y = f(x);
    const double scale = std::max(y.abs().max().item<double>(), 1e-30);
    for (int g : elements) {
      const auto expected = act(rep, g, y);
      const auto diff = (f(act(rep, g, x)) - expected).abs();
      relative = std::max(relative, diff.max().item<double>() / scale);
      const double excess = (diff - (atol + rtol * expected.abs())).max().item<double>();
      if (excess > worst_excess) {
        worst_excess = excess;
        worst_block = block;
        report.worst_element = g;
      }
    }
  };
  check("attention", report.attention, [&](const torch::Tensor& t) { return attention_block(t, {}, {}, false, {}, {}); });
  check("feed-forward", report.feedforward, [&](const torch::Tensor& t) { return feedforward_block(t); });
  check("layer", report.layer, [&](const torch::Tensor& t) { return forward(t); });
  train(was_training);
  TORCH_CHECK(worst_block.empty(), "eTransformerEncoderLayer::check_equivariance: the ", worst_block,
              " block is not equivariant at group element ", report.worst_element, " (exceeds atol=", atol, ", rtol=", rtol,
              " by ", worst_excess, "; relative errors attention=", report.attention, " feed-forward=", report.feedforward,
              " layer=", report.layer, ")");
  return report;
}

void eTransformerEncoderLayerImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::eTransformerEncoderLayer(in=" << options.in_rep().name() << ", heads=" << self_attn->num_heads()
         << ", dim_feedforward=" << feedforward->hidden_size() << ", norm=" << options.norm_module()
         << ", norm_first=" << (options.norm_first() ? "true" : "false") << ", dropout=" << options.dropout() << ")";
}

}  // namespace symm::nn
