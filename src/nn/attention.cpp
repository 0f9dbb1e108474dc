#include "symm/nn/attention.h"

#include <cmath>
#include <limits>

#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>

#include "attention_core.h"
#include "isotypic_layout.h"
#include "parallel_grain.h"

namespace symm::nn {

namespace detail {

namespace F = torch::nn::functional;

int64_t check_attention_rep(const std::string& module, const Representation& in_rep, int64_t num_heads) {
  TORCH_CHECK(in_rep.group(), module, ": in_rep must be set");
  int m = 0;
  TORCH_CHECK(in_rep.is_regular_copies(&m) && m > 0, module, ": in_rep ", in_rep.name(),
              " must be isomorphic to copies of the regular representation of ", in_rep.group()->name(),
              " (size a multiple of ", in_rep.group()->order(), "), got size ", in_rep.size());
  TORCH_CHECK(num_heads > 0, module, ": num_heads must be positive, got ", num_heads);
  TORCH_CHECK(m % num_heads == 0, module, ": num_heads ", num_heads, " does not divide the ", m,
              " regular copies of in_rep ", in_rep.name());
  return m;
}

int64_t check_attention_options(const std::string& module, const Representation& in_rep, int64_t num_heads,
                                double dropout) {
  const int64_t m = check_attention_rep(module, in_rep, num_heads);
  TORCH_CHECK(dropout >= 0.0 && dropout < 1.0, module, ": dropout must be in [0, 1), got ", dropout);
  return m;
}

void make_projections(torch::nn::Module& owner, const Representation& in_rep, int64_t copies, bool bias,
                      const std::string& init_scheme, eLinear& in_proj, eLinear& out_proj) {
  const auto regular = Representation::regular(in_rep.group());
  in_proj = owner.register_module(
      "in_proj", eLinear(eLinearOptions(in_rep, regular.copies(int(3 * copies))).bias(bias).init_scheme(init_scheme)));
  out_proj = owner.register_module(
      "out_proj", eLinear(eLinearOptions(regular.copies(int(copies)), in_rep).bias(bias).init_scheme(init_scheme)));
}

void reset_projections(eLinear& in_proj, eLinear& out_proj) {
  in_proj->reset_parameters();
  out_proj->reset_parameters();
  torch::NoGradGuard no_grad;
  for (auto* p : {&in_proj->bias_dof, &out_proj->bias_dof})
    if (p->defined()) p->zero_();
}

namespace {

void check_sequence(const std::string& module, const torch::Tensor& x, const char* what, int64_t embed,
                    const torch::Tensor& like) {
  TORCH_CHECK(x.defined(), module, ": ", what, " is undefined");
  TORCH_CHECK(x.dim() == 3 && x.size(-1) == embed, module, ": expected ", what, " of shape (batch, length, ", embed,
              ") (batch-first, last dimension the representation's size), got shape ", x.sizes());
  check_device_and_dtype(module, x, like, what);
}

void check_float_or_bool_mask(const std::string& module, const torch::Tensor& mask, const char* what,
                              const char* bool_meaning) {
  TORCH_CHECK(mask.scalar_type() == torch::kBool || mask.is_floating_point(), module, ": expected ", what, " of dtype bool (",
              bool_meaning, ") or floating point (added to the logits), got ", mask.scalar_type());
  if (mask.is_floating_point())
    TORCH_CHECK(!mask.isnan().any().item<bool>(), module, ": ", what, " contains NaN; expected -inf or finite values");
}

void check_positions(const std::string& module, const torch::Tensor& positions, const torch::Tensor& valid,
                     const char* what, const char* mask_what, int64_t batch, int64_t length) {
  if (positions.defined()) {
    TORCH_CHECK(positions.dim() == 2 && positions.size(0) == batch && positions.size(1) == length, module,
                ": expected ", what, " of shape [", batch, ", ", length, "], got ", positions.sizes());
    TORCH_CHECK(positions.scalar_type() != torch::kBool && !positions.is_complex(), module, ": expected ", what,
                " of a floating-point or integer dtype, got ", positions.scalar_type());
    if (positions.is_floating_point()) {
      auto bad = positions.isnan() | positions.isinf();
      if (valid.defined() && valid.scalar_type() == torch::kBool && valid.sizes() == positions.sizes()) bad &= valid;
      TORCH_CHECK(!bad.any().item<bool>(), module, ": ", what, " contains NaN or infinite values at valid positions");
    }
  }
  if (valid.defined()) {
    TORCH_CHECK(valid.dim() == 2 && valid.size(0) == batch && valid.size(1) == length, module, ": expected ", mask_what,
                " of shape [", batch, ", ", length, "], got ", valid.sizes());
    TORCH_CHECK(valid.scalar_type() == torch::kBool, module, ": expected ", mask_what,
                " of dtype bool (true = valid position), got ", valid.scalar_type());
  }
}

torch::Tensor to_additive(const torch::Tensor& mask, const torch::TensorOptions& options) {
  if (mask.scalar_type() == torch::kBool)
    return torch::zeros(mask.sizes(), options).masked_fill_(mask.to(options.device()), -std::numeric_limits<double>::infinity());
  return mask.to(options);
}

}  // namespace

CallShape check_call(const std::string& module, const AttentionCall& call, int64_t embed, int64_t heads,
                     const torch::Tensor& like, bool positions) {
  CallShape s;
  if (const int64_t b = call.isotypic_batch; b > 0) {
    auto length = [&](const torch::Tensor& t, const char* what) {
      TORCH_CHECK(t.defined() && t.dim() == 2 && t.size(0) == embed && t.size(1) % b == 0, module, ": expected ", what,
                  " of shape (", embed, ", batch·length) in the isotypic layout with batch ", b, ", got ",
                  t.defined() ? t.sizes() : torch::IntArrayRef{});
      check_device_and_dtype(module, t, like, what);
      return t.size(1) / b;
    };
    s = {b, length(call.query, "query"), length(call.key, "key"), embed, heads, embed / heads};
    TORCH_CHECK(length(call.value, "value") == s.src_len, module, ": key and value must have the same length, got key ",
                call.key.sizes(), " and value ", call.value.sizes());
  } else {
    check_sequence(module, call.query, "query", embed, like);
    check_sequence(module, call.key, "key", embed, like);
    check_sequence(module, call.value, "value", embed, like);
    s = {call.query.size(0), call.query.size(1), call.key.size(1), embed, heads, embed / heads};
    TORCH_CHECK(call.key.size(0) == s.batch && call.value.size(0) == s.batch, module,
                ": query, key and value must have the same batch size, got ", call.query.sizes(), ", ", call.key.sizes(),
                ", ", call.value.sizes());
    TORCH_CHECK(call.value.size(1) == s.src_len, module, ": key and value must have the same length, got key ",
                call.key.sizes(), " and value ", call.value.sizes());
  }
  if (call.attn_mask.defined()) {
    const auto& a = call.attn_mask;
    const bool ok = (a.dim() == 2 && a.size(0) == s.tgt_len && a.size(1) == s.src_len) ||
                    (a.dim() == 3 && a.size(0) == s.batch * heads && a.size(1) == s.tgt_len && a.size(2) == s.src_len);
    TORCH_CHECK(ok, module, ": expected attn_mask of shape [", s.tgt_len, ", ", s.src_len, "] or [", s.batch * heads, ", ",
                s.tgt_len, ", ", s.src_len, "] (batch·heads, target, source), got ", a.sizes());
    check_float_or_bool_mask(module, a, "attn_mask", "true = not allowed");
  }
  if (call.key_padding_mask.defined()) {
    const auto& k = call.key_padding_mask;
    TORCH_CHECK(k.dim() == 2 && k.size(0) == s.batch && k.size(1) == s.src_len, module,
                ": expected key_padding_mask of shape [", s.batch, ", ", s.src_len, "] (batch, source), got ", k.sizes());
    check_float_or_bool_mask(module, k, "key_padding_mask", "true = padding");
  }
  if (positions) {
    check_positions(module, call.query_positions, call.query_position_mask, "query_positions", "query_position_mask",
                    s.batch, s.tgt_len);
    check_positions(module, call.key_positions, call.key_position_mask, "key_positions", "key_position_mask", s.batch,
                    s.src_len);
  }
  return s;
}

namespace {

/// Q, K, V as (B, T or S, D) tensors (possibly strided views of one fused projection).
struct QKV {
  torch::Tensor q, k, v;
  torch::Tensor fused;  // self-attention: the (B, T, 3D) projection whose thirds q, k, v are
};

QKV project(eLinearImpl& in_proj, const AttentionCall& call, int64_t embed) {
  const auto d = embed;
  if (call.query.is_same(call.key) && call.key.is_same(call.value)) {
    // Self-attention: one fused matmul, then strided views of the three row blocks (chunk, whose backward
    // is one cat, where three narrows would each zero-fill a gradient of the whole projection).
    const auto qkv = call.input_affine ? in_proj.forward_after(call.query, *call.input_affine) : in_proj.forward(call.query);
    const auto parts = qkv.chunk(3, -1);
    return {parts[0], parts[1], parts[2], qkv};
  }
  // Cross-attention: apply the affine map to each distinct input, then project as usual.
  if (call.input_affine) return project(in_proj, without_affine(call), embed);
  const auto w = in_proj.weight();
  const auto b = in_proj.bias();
  auto rows = [&](int64_t start, int64_t n) {
    return std::make_pair(w.narrow(0, start, n), b.defined() ? b.narrow(0, start, n) : torch::Tensor());
  };
  QKV out;
  const auto [wq, bq] = rows(0, d);
  out.q = F::linear(call.query, wq, bq);
  if (call.key.is_same(call.value)) {
    const auto [wkv, bkv] = rows(d, 2 * d);
    const auto kv = F::linear(call.key, wkv, bkv).chunk(2, -1);
    out.k = kv[0];
    out.v = kv[1];
  } else {
    const auto [wk, bk] = rows(d, d);
    const auto [wv, bv] = rows(2 * d, d);
    out.k = F::linear(call.key, wk, bk);
    out.v = F::linear(call.value, wv, bv);
  }
  return out;
}

/// The isotypic form: Q, K, V as (rows of a regular copy, m, B·L) tensors, views of the projections.
QKV project_isotypic(eLinearImpl& in_proj, const AttentionCall& call) {
  const auto& layout = in_proj.isotypic_out();
  const int64_t m = layout.chunks() / 3, rows = layout.chunk_size();
  // Output copies [first·m, (first + count)·m) of in_proj: Q, K, V are its three thirds.
  auto rows_of = [&](const torch::Tensor& x, int64_t first, int64_t count) {
    return in_proj.forward_isotypic(x, call.input_affine, first * m, count * m).view({rows, count * m, -1});
  };
  if (call.query.is_same(call.key) && call.key.is_same(call.value)) {
    const auto qkv = rows_of(call.query, 0, 3).chunk(3, 1);
    return {qkv[0], qkv[1], qkv[2], {}};
  }
  QKV out;
  out.q = rows_of(call.query, 0, 1);
  if (call.key.is_same(call.value)) {
    const auto kv = rows_of(call.key, 1, 2).chunk(2, 1);
    out.k = kv[0];
    out.v = kv[1];
  } else {
    out.k = rows_of(call.key, 1, 1);
    out.v = rows_of(call.value, 2, 1);
  }
  return out;
}

}  // namespace

Heads project_heads(const std::string& module, eLinearImpl& in_proj, const AttentionCall& call, int64_t embed,
                    int64_t heads, bool positions) {
  Heads h{check_call(module, call, embed, heads, in_proj.weight_dof, positions), {}, {}, {}, call.isotypic_batch > 0};
  const auto& s = h.shape;
  if (h.isotypic) {
    const auto qkv = project_isotypic(in_proj, call);
    const int64_t rows = in_proj.isotypic_out().chunk_size(), per_head = s.head_dim / rows;
    // (rows, [H, copies], [B, L]) → (B, H, L, [rows, copies]): each head's whole copies.
    auto split = [&](const torch::Tensor& t, int64_t length) {
      const auto heads = t.view({rows, s.heads, per_head, s.batch, length});
#if TORCH_VERSION_MAJOR < 2
      // Stored as (B, H, head_dim, L), so that the copy moves runs of L tokens where the other order fetched
      // every element from another row (O m=16 eval: 8% faster); the unfused attention's matmuls take the
      // transposed heads as they are.
      return heads.permute({3, 1, 0, 2, 4}).contiguous().view({s.batch, s.heads, s.head_dim, length}).transpose(2, 3);
#else
      // The fused kernel wants head_dim contiguous.
      return heads.permute({3, 1, 4, 0, 2}).reshape({s.batch, s.heads, length, s.head_dim});
#endif
    };
    h.q = split(qkv.q, s.tgt_len);
    h.k = split(qkv.k, s.src_len);
    h.v = split(qkv.v, s.src_len);
    return h;
  }
  const auto qkv = project(in_proj, call, embed);
#if TORCH_VERSION_MAJOR < 2
  if (qkv.fused.defined()) {
    // One copy into contiguous heads: the unfused attention's matmuls then take views of them, where strided
    // heads made each matmul copy its operands, and its backward their gradients, again.
    const auto heads = qkv.fused.reshape({s.batch, s.tgt_len, 3, s.heads, s.head_dim}).permute({2, 0, 3, 1, 4}).contiguous().unbind(0);
    h.q = heads[0];
    h.k = heads[1];
    h.v = heads[2];
    return h;
  }
#endif
  auto split = [&](const torch::Tensor& x) { return x.view({x.size(0), x.size(1), s.heads, s.head_dim}).transpose(1, 2); };
  h.q = split(qkv.q);
  h.k = split(qkv.k);
  h.v = split(qkv.v);
  return h;
}

torch::Tensor project_out(eLinearImpl& out_proj, const Heads& h, const torch::Tensor& out) {
  const auto& s = h.shape;
  if (!h.isotypic) return out_proj.forward(out.transpose(1, 2).reshape({s.batch, s.tgt_len, s.embed}));
  const int64_t rows = out_proj.isotypic_in().chunk_size(), per_head = s.head_dim / rows;
  const auto z = out.reshape({s.batch, s.heads, s.tgt_len, rows, per_head}).permute({3, 1, 4, 0, 2});
  return out_proj.forward_isotypic(z.reshape({s.embed, s.batch * s.tgt_len}));
}

const torch::Tensor& causal_mask(torch::Tensor& cache, int64_t tgt_len, int64_t src_len, const torch::TensorOptions& options) {
  if (!cache.defined() || cache.size(0) != tgt_len || cache.size(1) != src_len || cache.device() != options.device() ||
      cache.scalar_type() != options.dtype().toScalarType()) {
    c10::InferenceMode normal(false);  // later forwards with autograd may save it for backward
    cache = torch::full({tgt_len, src_len}, -std::numeric_limits<double>::infinity(), options).triu_(1);
  }
  return cache;
}

torch::Tensor add_masks(const torch::Tensor& a, const torch::Tensor& b) {
  if (!a.defined()) return b;
  if (!b.defined()) return a;
  return a + b;
}

AttentionCall without_affine(const AttentionCall& call) {
  if (!call.input_affine) return call;
  AttentionCall applied = call;
  applied.input_affine = nullptr;
  applied.query = call.input_affine->forward(call.query);
  applied.key = call.key.is_same(call.query) ? applied.query : call.input_affine->forward(call.key);
  applied.value = call.value.is_same(call.key) ? applied.key : call.input_affine->forward(call.value);
  return applied;
}

torch::Tensor additive_mask(const AttentionCall& call, const CallShape& s, const torch::Tensor& key_position_mask,
                            const torch::TensorOptions& options, torch::Tensor& causal_cache) {
  torch::Tensor mask;
  if (call.attn_mask.defined()) {
    auto a = to_additive(call.attn_mask, options);
    mask = a.dim() == 3 ? a.reshape({s.batch, s.heads, s.tgt_len, s.src_len}) : a;
  }
  if (call.key_padding_mask.defined())
    mask = add_masks(mask, to_additive(call.key_padding_mask, options).view({s.batch, 1, 1, s.src_len}));
  if (call.is_causal) mask = add_masks(mask, causal_mask(causal_cache, s.tgt_len, s.src_len, options));
  if (key_position_mask.defined())
    mask = add_masks(mask, to_additive(key_position_mask.logical_not(), options).view({s.batch, 1, 1, s.src_len}));
  return mask;
}

namespace {

// OpenBLAS (Debian's LibTorch) runs a GEMM of at most 2^18 multiply-adds on the thread that calls it.
constexpr int64_t kSingleThreadedGemm = int64_t(1) << 18;

/// Multiply-adds of one (batch, head) pair: q kᵀ and w v.
int64_t pair_work(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  return q.size(2) * k.size(2) * (q.size(3) + v.size(3));
}

/// Whether the (batch, head) pairs may run side by side on LibTorch's threads: an inference call on the CPU
/// with more than one thread, whose per-head products are small enough for BLAS to run each on its caller
/// (larger ones get BLAS's own threads, and two callers' pools would fight over the cores).
bool heads_in_parallel(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& mask,
                       double p) {
  // ALiBi's mask carries its learnable slopes.
  auto needs_grad = [](const torch::Tensor& t) { return torch::GradMode::is_enabled() && t.defined() && t.requires_grad(); };
  if (!q.device().is_cpu() || p > 0 || needs_grad(q) || needs_grad(k) || needs_grad(v) || needs_grad(mask)) return false;
  if (at::get_num_threads() < 2 || at::in_parallel_region()) return false;
  // Less than two tasks' worth of work runs as one bmm on the caller (detail::parallel_grain).
  if (q.size(0) * q.size(1) * pair_work(q, k, v) < 2 * detail::kMinTaskWork) return false;
  return q.size(2) * k.size(2) * q.size(3) <= kSingleThreadedGemm;
}

/// softmax(q kᵀ·scale + mask) v with each thread taking a range of (batch, head) pairs. A bmm over all pairs
/// is one serial loop of small GEMMs: at O m=16 (64 pairs of 32×96) it kept one of two cores idle.
/// Returns (output, weights (B·H, T, S)); the output is stored transposed when v is.
std::pair<torch::Tensor, torch::Tensor> attend_heads_in_parallel(const torch::Tensor& q, const torch::Tensor& k,
                                                                 const torch::Tensor& v, const torch::Tensor& mask,
                                                                 double scale) {
  const int64_t b = q.size(0), h = q.size(1), t = q.size(2), s = k.size(2), d = q.size(3), d_v = v.size(3);
  const auto q3 = q.reshape({b * h, t, d}), k3 = k.reshape({b * h, s, d}), v3 = v.reshape({b * h, s, d_v});
  const auto m3 = mask.defined() ? mask.to(q.scalar_type()).expand({b, h, t, s}).reshape({b * h, t, s}) : torch::Tensor();
  const bool transposed = v.stride(-2) == 1 && d_v > 1;
  // Stored transposed, the output is written as vᵀ wᵀ, as the serial path does.
  const auto out = transposed ? torch::empty({b, h, d_v, t}, q.options()) : torch::empty({b, h, t, d_v}, q.options());
  const auto out3 = out.view({b * h, out.size(2), out.size(3)});
  const auto weights = torch::empty({b * h, t, s}, q.options());
  const at::ThreadLocalState state;  // grad mode, autocast and the rest, for the worker threads
  at::parallel_for(0, b * h, detail::parallel_grain(pair_work(q, k, v)), [&](int64_t begin, int64_t end) {
    at::ThreadLocalStateGuard guard(state);
    auto slice = [&](const torch::Tensor& x) { return x.slice(0, begin, end); };
    const auto logits = m3.defined() ? torch::baddbmm(slice(m3), slice(q3), slice(k3).transpose(1, 2), 1.0, scale)
                                     : torch::bmm(slice(q3), slice(k3).transpose(1, 2)).mul_(scale);
    auto w = slice(weights);
    at::_softmax_out(w, logits, -1, false);
    auto o = slice(out3);
    if (transposed) torch::bmm_out(o, slice(v3).transpose(1, 2), w.transpose(1, 2));
    else torch::bmm_out(o, w, slice(v3));
  });
  return {transposed ? out.transpose(-2, -1) : out, weights.view({b, h, t, s})};
}

}  // namespace

std::tuple<torch::Tensor, torch::Tensor> scaled_dot_product(const torch::Tensor& q, const torch::Tensor& k,
                                                            const torch::Tensor& v, const torch::Tensor& mask,
                                                            const torch::Tensor& causal_cache, const CallShape& s,
                                                            double dropout, bool training, bool need_weights,
                                                            bool average_attn_weights) {
  const double p = training ? dropout : 0.0;
#if TORCH_VERSION_MAJOR >= 2
  if (!need_weights) {
    // The fused kernel, as torch::nn::MultiheadAttention takes when weights are not needed. A mask that is
    // the causal one alone goes in as is_causal, which keeps the flash kernel available on CUDA; any other
    // mask goes in additive, in the query's dtype (autocast may have lowered q, k and v).
    const bool causal_only = mask.defined() && mask.is_same(causal_cache);
    c10::optional<at::Tensor> attn_mask;
    if (mask.defined() && !causal_only) attn_mask = mask.to(q.scalar_type());
    return {at::scaled_dot_product_attention(q, k, v, attn_mask, p, causal_only), torch::Tensor()};
  }
#endif
  const double scale = 1.0 / std::sqrt(static_cast<double>(s.head_dim));
  if (heads_in_parallel(q, k, v, mask, p)) {
    auto [out, weights] = attend_heads_in_parallel(q, k, v, mask, scale);
    if (!need_weights) return {out, torch::Tensor()};
    return {out, average_attn_weights ? weights.sum(1) / static_cast<double>(s.heads) : weights};
  }
  auto logits = torch::matmul(q * scale, k.transpose(-2, -1));  // (B, H, T, S), fresh: safe to add in place
  if (mask.defined()) logits.add_(mask.to(logits.scalar_type()));
  auto weights = torch::softmax(logits, -1);
  if (p > 0) weights = torch::dropout(weights, p, true);
  // Heads stored transposed (the isotypic layout's) give the output stored so too: project_out's copy then
  // moves runs of tokens.
  const bool transposed = v.stride(-2) == 1 && v.size(-1) > 1;
  const auto out = transposed ? torch::matmul(v.transpose(-2, -1), weights.transpose(-2, -1)).transpose(-2, -1)
                              : torch::matmul(weights, v);
  if (!need_weights) return {out, torch::Tensor()};
  // As torch: sum over heads divided by their number.
  if (average_attn_weights) weights = weights.sum(1) / static_cast<double>(s.heads);
  return {out, weights};
}

torch::Tensor positions_or_default(const torch::Tensor& positions, const torch::Tensor& valid, int64_t batch,
                                   int64_t length, const torch::Device& device) {
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64).device(device);
  torch::Tensor p = positions.defined() ? positions.to(opts) : torch::arange(length, opts).expand({batch, length});
  if (valid.defined()) p = torch::where(valid.to(device), p, torch::zeros({}, opts));
  return p;
}

std::pair<torch::Tensor, torch::Tensor> key_positions_of(const AttentionCall& call) {
  const bool self = call.query.is_same(call.key);
  auto positions = call.key_positions.defined() || !self ? call.key_positions : call.query_positions;
  auto valid = call.key_position_mask.defined() || !self ? call.key_position_mask : call.query_position_mask;
  return {positions, valid};
}

CallPositions call_positions(const AttentionCall& call, const CallShape& s, const torch::Device& device) {
  const auto [key_positions, key_valid] = key_positions_of(call);
  return {positions_or_default(call.query_positions, call.query_position_mask, s.batch, s.tgt_len, device),
          positions_or_default(key_positions, key_valid, s.batch, s.src_len, device), key_valid};
}

std::tuple<torch::Tensor, torch::Tensor> attend_and_project(const AttentionCall& call, const Heads& h,
                                                            const torch::Tensor& bias,
                                                            const torch::Tensor& key_position_mask,
                                                            torch::Tensor& causal_cache, double dropout, bool training,
                                                            eLinearImpl& out_proj) {
  const auto mask = add_masks(bias, additive_mask(call, h.shape, key_position_mask, h.q.options(), causal_cache));
  auto [out, weights] = scaled_dot_product(h.q, h.k, h.v, mask, causal_cache, h.shape, dropout, training,
                                           call.need_weights, call.average_attn_weights);
  return {project_out(out_proj, h, out), weights};
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------------------

eMultiheadAttentionImpl::eMultiheadAttentionImpl(eMultiheadAttentionOptions options_) : options(std::move(options_)) {
  reset();
}

void eMultiheadAttentionImpl::reset() {
  copies_ = detail::check_attention_options("eMultiheadAttention", options.in_rep(), options.num_heads(),
                                            options.dropout());
  detail::make_projections(*this, options.in_rep(), copies_, options.bias(), options.init_scheme(), in_proj, out_proj);
  causal_cache_ = torch::Tensor();
  reset_parameters();
}

void eMultiheadAttentionImpl::reset_parameters() { detail::reset_projections(in_proj, out_proj); }

std::tuple<torch::Tensor, torch::Tensor> eMultiheadAttentionImpl::run(const AttentionCall& call) {
  static const std::string name = "eMultiheadAttention";
  const auto d = int64_t(options.in_rep().size());
  const auto h = detail::project_heads(name, *in_proj, call, d, options.num_heads(), false);
  return detail::attend_and_project(call, h, {}, {}, causal_cache_, options.dropout(), is_training(), *out_proj);
}

std::tuple<torch::Tensor, torch::Tensor> eMultiheadAttentionImpl::forward(const torch::Tensor& query, const torch::Tensor& key,
                                                                          const torch::Tensor& value,
                                                                          const torch::Tensor& key_padding_mask,
                                                                          bool need_weights, const torch::Tensor& attn_mask,
                                                                          bool average_attn_weights, bool is_causal) {
  auto call = detail::make_call(query, key, value, key_padding_mask, attn_mask, is_causal);
  call.need_weights = need_weights;
  call.average_attn_weights = average_attn_weights;
  return run(call);
}

std::tuple<torch::Tensor, torch::Tensor> eMultiheadAttentionImpl::attend(const AttentionCall& call) { return run(call); }

void eMultiheadAttentionImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::eMultiheadAttention(in=" << options.in_rep().name() << ", copies=" << copies_
         << ", num_heads=" << options.num_heads() << ", dropout=" << options.dropout()
         << ", bias=" << (options.bias() ? "true" : "false") << ")";
}

}  // namespace symm::nn
