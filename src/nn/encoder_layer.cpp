#include "symm/nn/encoder_layer.h"

#include <sstream>
#include <typeinfo>

#include "symm/nn/equivariance.h"
#include "symm/nn/functional.h"
#include "symm/nn/mixed_precision.h"
#include "symm/nn/normalization.h"
#include "symm/nn/positional.h"

#include "eval_mode.h"
#include "isotypic_layout.h"

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

namespace detail {

torch::Tensor FeatureSpace::norm(torch::nn::AnyModule& norm, const torch::Tensor& x) const {
  if (!layout) return norm.forward(x);
  if (auto* rms = dynamic_cast<eRMSNormImpl*>(norm.ptr().get())) return rms->forward_isotypic(x, *layout);
  if (auto* ln = dynamic_cast<eLayerNormImpl*>(norm.ptr().get())) return ln->forward_isotypic(x, *layout);
  // Another module (an encoder stack's final norm may be any): in the representation's basis.
  const int64_t d = x.size(0);
  return layout->to_isotypic(norm.forward(layout->from_isotypic(x, {x.size(1), d})));
}

std::pair<torch::Tensor, eAffineImpl*> FeatureSpace::split_norm(torch::nn::AnyModule& norm, const torch::Tensor& x, bool fold) const {
  if (!layout) return fold ? symm::nn::split_norm(norm, x) : std::pair<torch::Tensor, eAffineImpl*>{norm.forward(x), nullptr};
  auto foldable = [&](const eAffine& a) { return fold && a && a->options.learnable(); };
  if (auto* rms = dynamic_cast<eRMSNormImpl*>(norm.ptr().get()); rms && foldable(rms->affine)) {
    return {rms->normalise_isotypic(x, *layout), rms->affine.get()};
  }
  if (auto* ln = dynamic_cast<eLayerNormImpl*>(norm.ptr().get()); ln && foldable(ln->affine)) {
    return {ln->normalise_isotypic(x, *layout), ln->affine.get()};
  }
  return {this->norm(norm, x), nullptr};
}

torch::Tensor FeatureSpace::dropout(torch::nn::Dropout& dropout, const torch::Tensor& x) const {
  if (!layout || !dropout->is_training() || dropout->options.p() == 0) return layout ? x : dropout->forward(x);
  return layout->to_isotypic(dropout->forward(layout->from_isotypic(x, {x.size(1), x.size(0)})));
}

torch::Tensor FeatureSpace::feedforward(eFeedForwardImpl& feedforward, const torch::Tensor& x, eAffineImpl* pre) const {
  if (layout) return feedforward.forward_isotypic(x, pre);
  return pre ? feedforward.forward_after(x, *pre) : feedforward.forward(x);
}

AttentionCall FeatureSpace::self_attention(AttentionBackend& attn, torch::nn::AnyModule* pre_norm, const torch::Tensor& x) const {
  AttentionCall call;
  prepare(call);
  if (pre_norm) {
    std::tie(call.query, call.input_affine) = split_norm(*pre_norm, x, folds_input_affine(attn));
  } else {
    call.query = x;
  }
  call.key = call.value = call.query;
  return call;
}

bool runs_isotypic(const torch::nn::Module& layer, std::initializer_list<const AttentionBackend*> attention) {
  for (const auto* a : attention)
    if (!a->supports_isotypic()) return false;
  bool all_isotypic = true, all_automatic = true;
  int64_t dense = 0, isotypic = 0;  // multiply-adds per token of the linear maps and basis changes
  for (const auto& m : layer.modules(/*include_self=*/false)) {
    if (const auto* lin = dynamic_cast<const eLinearImpl*>(m.get())) {
      all_isotypic = all_isotypic && lin->options.execution() == Execution::isotypic;
      all_automatic = all_automatic && lin->options.execution() == Execution::automatic;
      dense += int64_t(lin->options.in_rep().size()) * lin->options.out_rep().size();
      isotypic += lin->isotypic_multiply_adds();
    }
    if (const auto* ff = dynamic_cast<const eFeedForwardImpl*>(m.get())) {
      const auto& in = ff->linear1->isotypic_in();
      const auto& hidden = ff->linear1->isotypic_out();
      isotypic += 2 * in.chunk_size() * in.size() + 2 * hidden.chunk_size() * hidden.size();
    }
  }
  if (all_isotypic || !all_automatic) return all_isotypic;
  // Measured on the CPU (bench/RESULTS.md, `symm bench --execution dense|isotypic`): the block products
  // win in training from about a third of the dense multiply-adds, where the dense path synthesises and
  // differentiates D×D weights each step; in eval, where the dense weights are cached and each map is one
  // large GEMM, only from about a fifth.
  return double(isotypic) <= (layer.is_training() ? 0.35 : 0.2) * double(dense);
}

}  // namespace detail

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

torch::Tensor eTransformerEncoderLayerImpl::attention_branch(const torch::Tensor& x, const detail::FeatureSpace& space,
                                                             const torch::Tensor& mask, const torch::Tensor& key_padding_mask,
                                                             bool is_causal, const torch::Tensor& positions,
                                                             const torch::Tensor& position_mask) {
  auto call = space.self_attention(*self_attn, options.norm_first() ? &norm1 : nullptr, x);
  call.attn_mask = mask;
  call.key_padding_mask = key_padding_mask;
  call.is_causal = is_causal;
  call.query_positions = call.key_positions = positions;
  call.query_position_mask = call.key_position_mask = position_mask;
  return space.dropout(dropout1, std::get<0>(self_attn->attend(call)));
}

torch::Tensor eTransformerEncoderLayerImpl::feedforward_branch(const torch::Tensor& x, const detail::FeatureSpace& space) {
  if (!options.norm_first()) return space.dropout(dropout2, space.feedforward(*feedforward, x, nullptr));
  // The norm's affine map is folded into linear1.
  const auto [normalised, affine] = space.split_norm(norm2, x, true);
  return space.dropout(dropout2, space.feedforward(*feedforward, normalised, affine));
}

torch::Tensor eTransformerEncoderLayerImpl::run(const torch::Tensor& x, const detail::FeatureSpace& space,
                                                const torch::Tensor& mask, const torch::Tensor& key_padding_mask,
                                                bool is_causal, const torch::Tensor& positions,
                                                const torch::Tensor& position_mask) {
  if (options.norm_first()) {
    const auto y = x + attention_branch(x, space, mask, key_padding_mask, is_causal, positions, position_mask);
    return y + feedforward_branch(y, space);
  }
  const auto y = space.norm(norm1, x + attention_branch(x, space, mask, key_padding_mask, is_causal, positions, position_mask));
  return space.norm(norm2, y + feedforward_branch(y, space));
}

torch::Tensor eTransformerEncoderLayerImpl::attention_block(const torch::Tensor& x, const torch::Tensor& mask,
                                                            const torch::Tensor& key_padding_mask, bool is_causal,
                                                            const torch::Tensor& positions,
                                                            const torch::Tensor& position_mask) {
  return attention_branch(x, {}, mask, key_padding_mask, is_causal, positions, position_mask);
}

torch::Tensor eTransformerEncoderLayerImpl::feedforward_block(const torch::Tensor& x) { return feedforward_branch(x, {}); }

bool eTransformerEncoderLayerImpl::uses_isotypic() const { return detail::runs_isotypic(*this, {self_attn.get()}); }

const detail::IsotypicLayout& eTransformerEncoderLayerImpl::isotypic_layout() const {
  return feedforward->linear1->isotypic_in();
}

int64_t eTransformerEncoderLayerImpl::multiply_adds(int64_t seq_len) const {
  const bool isotypic = uses_isotypic();
  const auto& in = isotypic_layout();
  int64_t total = 2 * seq_len * in.size();  // q·k and weights·v
  for (const auto& m : modules(/*include_self=*/false))
    if (const auto* lin = dynamic_cast<const eLinearImpl*>(m.get())) total += isotypic ? lin->isotypic_multiply_adds() : lin->multiply_adds();
  if (isotypic) {
    const auto& hidden = feedforward->linear1->isotypic_out();
    total += 2 * in.chunk_size() * in.size() + 2 * hidden.chunk_size() * hidden.size();
  }
  return total;
}

torch::Tensor eTransformerEncoderLayerImpl::forward(const torch::Tensor& src, const torch::Tensor& src_mask,
                                                    const torch::Tensor& src_key_padding_mask, bool is_causal,
                                                    const torch::Tensor& src_positions,
                                                    const torch::Tensor& src_position_mask) {
  check_features("eTransformerEncoderLayer", src, options.in_rep().size(), "src");
  TORCH_CHECK(src.dim() == 3, "eTransformerEncoderLayer: expected src of shape (B, T, ", options.in_rep().size(),
              "), got ", src.sizes());
  if (!uses_isotypic()) {
    if (!src_mask.defined() && !src_key_padding_mask.defined() && !is_causal && !src_positions.defined()) {
      if (auto y = fused_eval(src); y.defined()) return y;
    }
    return run(src, {}, src_mask, src_key_padding_mask, is_causal, src_positions, src_position_mask);
  }
  const auto& layout = isotypic_layout();
  const auto z = forward_isotypic(layout.to_isotypic(src), src.size(0), src_mask, src_key_padding_mask, is_causal,
                                  src_positions, src_position_mask);
  return layout.from_isotypic(z, src.sizes());
}

namespace {

/// A pre-norm's parts for functional::encoder_layer_eval: its centre (eLayerNorm's u, or none) and eps, and
/// the affine map to fold into the next map (null without one); false for another norm or a FiLM affine.
bool norm_parts(torch::nn::AnyModule& norm, const torch::Tensor& x, c10::optional<torch::Tensor>& centre, double& eps,
                eAffineImpl*& affine) {
  eAffine a{nullptr};
  if (auto* rms = dynamic_cast<eRMSNormImpl*>(norm.ptr().get())) {
    centre = c10::nullopt, eps = rms->options.eps(), a = rms->affine;
  } else if (auto* ln = dynamic_cast<eLayerNormImpl*>(norm.ptr().get())) {
    centre = ln->centre_vector(x), eps = ln->options.eps(), a = ln->affine;
  } else {
    return false;
  }
  affine = a ? a.get() : nullptr;
  return !a || a->options.learnable();
}

bool known_activation(const std::string& name) {
  return name == "gelu" || name == "gelu_tanh" || name == "relu" || name == "silu" || name == "tanh";
}

}  // namespace

torch::Tensor eTransformerEncoderLayerImpl::fused_eval(const torch::Tensor& src) {
  if (is_training() || !options.norm_first() || autocast_enabled(src.device())) return {};
  auto* attn = dynamic_cast<eMultiheadAttentionImpl*>(self_attn.get());
  if (attn == nullptr || typeid(*attn) != typeid(eMultiheadAttentionImpl) || attn->in_proj->out_rep().size() != 3 * src.size(2) ||
      !known_activation(feedforward->options.activation().name())) {
    return {};
  }
  if (torch::GradMode::is_enabled() && (src.requires_grad() || !detail::use_eval_cache(false, parameters()))) return {};
  c10::optional<torch::Tensor> centre1, centre2;
  double eps1 = 0, eps2 = 0;
  eAffineImpl *affine1 = nullptr, *affine2 = nullptr;
  if (!norm_parts(norm1, src, centre1, eps1, affine1) || !norm_parts(norm2, src, centre2, eps2, affine2)) return {};
  const auto [w_in, b_in] = attn->in_proj->dense_after(affine1);
  const auto [w_out, b_out] = attn->out_proj->dense_after(nullptr);
  const auto [w1, b1] = feedforward->linear1->dense_after(affine2);
  const auto [w2, b2] = feedforward->linear2->dense_after(nullptr);
  auto optional = [](const torch::Tensor& t) { return t.defined() ? c10::optional<torch::Tensor>(t) : c10::nullopt; };
  return functional::encoder_layer_eval(src, w_in, optional(b_in), w_out, optional(b_out), w1, optional(b1), w2, optional(b2),
                                        attn->num_heads(), centre1, eps1, centre2, eps2, feedforward->options.activation().name());
}

torch::Tensor eTransformerEncoderLayerImpl::forward_isotypic(const torch::Tensor& z, int64_t batch,
                                                             const torch::Tensor& src_mask,
                                                             const torch::Tensor& src_key_padding_mask, bool is_causal,
                                                             const torch::Tensor& src_positions,
                                                             const torch::Tensor& src_position_mask) {
  return run(z, {&isotypic_layout(), batch}, src_mask, src_key_padding_mask, is_causal, src_positions, src_position_mask);
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
