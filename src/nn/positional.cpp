#include "symm/nn/positional.h"

#include <cmath>

#include "attention_core.h"

namespace symm::nn {

AttentionCall PositionalAttentionBase::make_call(const torch::Tensor& query, const torch::Tensor& key,
                                                const torch::Tensor& value, const torch::Tensor& query_positions,
                                                const torch::Tensor& key_positions, const torch::Tensor& key_padding_mask,
                                                const torch::Tensor& attn_mask, bool is_causal) {
  return detail::make_call(query, key, value, key_padding_mask, attn_mask, is_causal, query_positions, key_positions);
}

// ------------------------------------------------------------------------------------------------- Rotary

RotaryAttentionImpl::RotaryAttentionImpl(RotaryAttentionOptions options_) : PositionalAttention(std::move(options_)) { reset(); }

void RotaryAttentionImpl::reset() {
  copies_ = detail::check_attention_options("RotaryAttention", options.in_rep(), options.num_heads(), options.dropout());
  const int64_t per_head = copies_ / options.num_heads();
  TORCH_CHECK(per_head >= 2, "RotaryAttention: each head needs at least 2 regular copies to rotate, got ", copies_,
              " copies of in_rep ", options.in_rep().name(), " over ", options.num_heads(), " heads (", per_head,
              " per head); use fewer heads or more copies");
  TORCH_CHECK(options.base() > 0.0, "RotaryAttention: base must be positive, got ", options.base());
  const int64_t pairs = per_head / 2;
  auto omega = torch::empty({pairs}, torch::kFloat64);
  for (int64_t j = 0; j < pairs; ++j) omega[j].fill_(std::pow(options.base(), -double(j) / double(pairs)));
  constants_ = Constants({omega});
  detail::make_projections(*this, options.in_rep(), copies_, options.bias(), options.init_scheme(), in_proj, out_proj);
  causal_cache_ = torch::Tensor();
  reset_parameters();
}

void RotaryAttentionImpl::reset_parameters() { detail::reset_projections(in_proj, out_proj); }

torch::Tensor RotaryAttentionImpl::rotate(const torch::Tensor& x, const torch::Tensor& positions, bool isotypic) const {
  // Each head viewed as (copies, |G|), or (|G|, copies) when isotypic; copies 2j and 2j+1 rotate as a pair by ω_j p.
  const int64_t b = x.size(0), h = x.size(1), l = x.size(2), c = copies_ / h;
  const int64_t n = x.size(3) / c, pairs = c / 2;
  const int64_t axis = isotypic ? 4 : 3;  // of the copies
  const auto& omega = constants_.get(positions.device(), torch::kFloat64)[0];
  const auto theta = positions.unsqueeze(-1) * omega;  // (B, L, pairs), float64
  const auto shape = isotypic ? std::vector<int64_t>{b, 1, l, 1, pairs} : std::vector<int64_t>{b, 1, l, pairs, 1};
  const auto cos = theta.cos().to(x.scalar_type()).view(shape);
  const auto sin = theta.sin().to(x.scalar_type()).view(shape);
  const auto xv = isotypic ? x.view({b, h, l, n, c}) : x.view({b, h, l, c, n});
  // unbind and whole-tensor views rather than select and narrow: their backward is one stack, not a
  // zero-filled tensor per view.
  const auto paired = (c % 2 == 0 ? xv : xv.narrow(axis, 0, 2 * pairs)).unflatten(axis, {pairs, 2}).unbind(axis + 1);
  const auto& u = paired[0];
  const auto& v = paired[1];
  auto rotated = torch::stack({u * cos - v * sin, u * sin + v * cos}, axis + 1).flatten(axis, axis + 1);
  if (c % 2 == 1) rotated = torch::cat({rotated, xv.narrow(axis, 2 * pairs, 1)}, axis);
  return rotated.reshape({b, h, l, c * n});
}

std::tuple<torch::Tensor, torch::Tensor> RotaryAttentionImpl::run(const AttentionCall& call) {
  static const std::string name = "RotaryAttention";
  const auto d = int64_t(options.in_rep().size());
  auto h = detail::project_heads(name, *in_proj, call, d, options.num_heads(), true);
  const auto p = detail::call_positions(call, h.shape, h.q.device());
  h.q = rotate(h.q, p.query, h.isotypic);
  h.k = rotate(h.k, p.key, h.isotypic);
  return detail::attend_and_project(call, h, {}, p.key_valid, causal_cache_, options.dropout(), is_training(), *out_proj);
}

void RotaryAttentionImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::RotaryAttention(in=" << options.in_rep().name() << ", copies=" << copies_
         << ", num_heads=" << options.num_heads() << ", base=" << options.base() << ", dropout=" << options.dropout()
         << ", bias=" << (options.bias() ? "true" : "false") << ")";
}

// -------------------------------------------------------------------------------------------------- ALiBi

ALiBiAttentionImpl::ALiBiAttentionImpl(ALiBiAttentionOptions options_) : PositionalAttention(std::move(options_)) { reset(); }

void ALiBiAttentionImpl::reset() {
  copies_ = detail::check_attention_options("ALiBiAttention", options.in_rep(), options.num_heads(), options.dropout());
  detail::make_projections(*this, options.in_rep(), copies_, options.bias(), options.init_scheme(), in_proj, out_proj);
  auto init = torch::empty({options.num_heads()});
  slopes = options.learnable_slopes() ? register_parameter("slopes", init) : register_buffer("slopes", init);
  causal_cache_ = torch::Tensor();
  reset_parameters();
}

void ALiBiAttentionImpl::reset_parameters() {
  detail::reset_projections(in_proj, out_proj);
  torch::NoGradGuard no_grad;
  const int64_t h = options.num_heads();
  for (int64_t i = 0; i < h; ++i) slopes[i].fill_(std::pow(2.0, -8.0 * double(i + 1) / double(h)));
}

std::tuple<torch::Tensor, torch::Tensor> ALiBiAttentionImpl::run(const AttentionCall& call) {
  static const std::string name = "ALiBiAttention";
  const auto d = int64_t(options.in_rep().size());
  const auto h = detail::project_heads(name, *in_proj, call, d, options.num_heads(), true);
  const auto& s = h.shape;
  const auto p = detail::call_positions(call, s, h.q.device());
  // −slope_h |p_i − p_j|: distances in float64, then the module's dtype (slopes may be learned).
  const auto distance =
      (p.query.view({s.batch, 1, s.tgt_len, 1}) - p.key.view({s.batch, 1, 1, s.src_len})).abs().to(slopes.scalar_type());
  const auto bias = distance * slopes.neg().view({1, s.heads, 1, 1});
  return detail::attend_and_project(call, h, bias, p.key_valid, causal_cache_, options.dropout(), is_training(), *out_proj);
}

void ALiBiAttentionImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::ALiBiAttention(in=" << options.in_rep().name() << ", copies=" << copies_
         << ", num_heads=" << options.num_heads() << ", learnable_slopes=" << (options.learnable_slopes() ? "true" : "false")
         << ", dropout=" << options.dropout() << ", bias=" << (options.bias() ? "true" : "false") << ")";
}

}  // namespace symm::nn
