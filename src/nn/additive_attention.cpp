#include "symm/nn/additive_attention.h"

#include "attention_core.h"
#include "symm/stats/stats.h"

namespace symm::nn {

// ------------------------------------------------------------------------------------ additive absolute

eAdditivePosMultiheadAttentionImpl::eAdditivePosMultiheadAttentionImpl(eAdditivePosMultiheadAttentionOptions options_)
    : PositionalAttention(std::move(options_)) {
  reset();
}

void eAdditivePosMultiheadAttentionImpl::reset() {
  static const char* name = "eAdditivePosMultiheadAttention";
  copies_ = detail::check_attention_options(name, options.in_rep(), options.num_heads(), options.dropout());
  TORCH_CHECK(options.max_len() > 0, name, ": max_len must be positive, got ", options.max_len());
  detail::make_projections(*this, options.in_rep(), copies_, options.bias(), options.init_scheme(), in_proj, out_proj);
  detail::reset_projections(in_proj, out_proj);
  pos_emb = register_parameter("pos_emb", torch::zeros({options.max_len(), int64_t(options.in_rep().size())}));
  constants_ = Constants({symm::stats::invariant_orthogonal_projector(options.in_rep())});
  causal_cache_ = torch::Tensor();
}

void eAdditivePosMultiheadAttentionImpl::reset_parameters() {
  detail::reset_projections(in_proj, out_proj);
  torch::NoGradGuard no_grad;
  const auto& p = constants_.get(pos_emb)[0];
  pos_emb.copy_(torch::matmul(torch::randn_like(pos_emb) * 0.02, p));
}

torch::Tensor eAdditivePosMultiheadAttentionImpl::embedding(const torch::Tensor& positions, const torch::Tensor& valid,
                                                            const char* side) const {
  // positions (B, L) float64 from positions_or_default: integral, in [0, max_len).
  const auto max_len = options.max_len();
  TORCH_CHECK(positions.numel() == 0 || (positions == positions.round()).all().item<bool>(),
              "eAdditivePosMultiheadAttention: ", side, " positions index an embedding table and must be integers");
  TORCH_CHECK(positions.numel() == 0 || (positions.min().item<double>() >= 0 && positions.max().item<double>() < double(max_len)),
              "eAdditivePosMultiheadAttention: ", side, " positions must be in [0, max_len = ", max_len, "), got [",
              positions.min().item<double>(), ", ", positions.max().item<double>(), "]");
  const auto b = positions.size(0), l = positions.size(1);
  const auto rows = pos_emb.index_select(0, positions.to(torch::kLong).flatten()).view({b, l, -1});
  auto e = torch::matmul(rows, constants_.get(pos_emb)[0]);  // P_inv symmetric
  if (valid.defined()) e = e * valid.unsqueeze(-1).to(e.scalar_type());
  return e;
}

std::tuple<torch::Tensor, torch::Tensor> eAdditivePosMultiheadAttentionImpl::run(const AttentionCall& given) {
  static const std::string name = "eAdditivePosMultiheadAttention";
  TORCH_CHECK(given.isotypic_batch == 0, name, ": the isotypic layout is not supported");
  const auto d = int64_t(options.in_rep().size());
  const auto call = detail::without_affine(given);
  const auto s = detail::check_call(name, call, d, options.num_heads(), pos_emb, true);
  const auto p = detail::call_positions(call, s, call.query.device());
  AttentionCall shifted = call;
  shifted.query = call.query + embedding(p.query, call.query_position_mask, "query");
  const bool self = call.key.is_same(call.query) && !call.key_positions.defined() && !call.key_position_mask.defined();
  shifted.key = self ? shifted.query : call.key + embedding(p.key, p.key_valid, "key");
  const auto h = detail::project_heads(name, *in_proj, shifted, d, options.num_heads(), true);
  return detail::attend_and_project(shifted, h, {}, p.key_valid, causal_cache_, options.dropout(), is_training(),
                                    *out_proj);
}

void eAdditivePosMultiheadAttentionImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::eAdditivePosMultiheadAttention(in=" << options.in_rep().name() << ", copies=" << copies_
         << ", num_heads=" << options.num_heads() << ", max_len=" << options.max_len() << ", dropout=" << options.dropout()
         << ", bias=" << (options.bias() ? "true" : "false") << ")";
}

// ------------------------------------------------------------------------------------ additive relative

eAdditiveRelMultiheadAttentionImpl::eAdditiveRelMultiheadAttentionImpl(eAdditiveRelMultiheadAttentionOptions options_)
    : PositionalAttention(std::move(options_)) {
  reset();
}

void eAdditiveRelMultiheadAttentionImpl::reset() {
  static const char* name = "eAdditiveRelMultiheadAttention";
  copies_ = detail::check_attention_options(name, options.in_rep(), options.num_heads(), options.dropout());
  TORCH_CHECK(options.max_distance() > 0, name, ": max_distance must be positive, got ", options.max_distance());
  detail::make_projections(*this, options.in_rep(), copies_, options.bias(), options.init_scheme(), in_proj, out_proj);
  detail::reset_projections(in_proj, out_proj);
  rel_bias = register_parameter("rel_bias", torch::zeros({2 * options.max_distance() + 1}));
  causal_cache_ = torch::Tensor();
}

void eAdditiveRelMultiheadAttentionImpl::reset_parameters() {
  detail::reset_projections(in_proj, out_proj);
  torch::NoGradGuard no_grad;
  rel_bias.normal_(0.0, 0.02);
}

std::tuple<torch::Tensor, torch::Tensor> eAdditiveRelMultiheadAttentionImpl::run(const AttentionCall& given) {
  static const std::string name = "eAdditiveRelMultiheadAttention";
  TORCH_CHECK(given.isotypic_batch == 0, name, ": the isotypic layout is not supported");
  const auto d = int64_t(options.in_rep().size());
  const auto call = detail::without_affine(given);
  const auto h = detail::project_heads(name, *in_proj, call, d, options.num_heads(), true);
  const auto& s = h.shape;
  const auto p = detail::call_positions(call, s, h.q.device());
  const double m = double(options.max_distance());
  // Clip, truncate toward zero (as symm_learning's .long()), and index the table.
  const auto rel = (p.query.unsqueeze(-1) - p.key.unsqueeze(-2)).clamp(-m, m).to(torch::kLong) + options.max_distance();
  auto bias = rel_bias.index_select(0, rel.flatten()).view({s.batch, 1, s.tgt_len, s.src_len}).neg();
  if (call.query_position_mask.defined())
    bias = bias * call.query_position_mask.view({s.batch, 1, s.tgt_len, 1}).to(bias.scalar_type());
  return detail::attend_and_project(call, h, bias, p.key_valid, causal_cache_, options.dropout(), is_training(), *out_proj);
}

void eAdditiveRelMultiheadAttentionImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::eAdditiveRelMultiheadAttention(in=" << options.in_rep().name() << ", copies=" << copies_
         << ", num_heads=" << options.num_heads() << ", max_distance=" << options.max_distance()
         << ", dropout=" << options.dropout() << ", bias=" << (options.bias() ? "true" : "false") << ")";
}

}  // namespace symm::nn
