#pragma once
// Internal: what eMultiheadAttention and the positional backends (Rotary, ALiBi, additive) share. Input and mask
// validation, the Q/K/V projections (one fused matmul for self-attention), the additive mask that folds
// attn_mask, key_padding_mask, is_causal, invalid key positions and positional biases together, and the
// scaled-dot-product core. Not installed.
#include <string>
#include <tuple>

#include <torch/torch.h>
#include <torch/version.h>

#include "symm/nn/attention.h"

namespace symm::nn::detail {

/// The call of a module's forward arguments; need_weights off.
inline AttentionCall make_call(const torch::Tensor& query, const torch::Tensor& key, const torch::Tensor& value,
                               const torch::Tensor& key_padding_mask, const torch::Tensor& attn_mask, bool is_causal,
                               const torch::Tensor& query_positions = {}, const torch::Tensor& key_positions = {}) {
  AttentionCall call;
  call.query = query;
  call.key = key;
  call.value = value;
  call.key_padding_mask = key_padding_mask;
  call.attn_mask = attn_mask;
  call.is_causal = is_causal;
  call.query_positions = query_positions;
  call.key_positions = key_positions;
  return call;
}

/// Checks that in_rep ≅ m regular copies and that num_heads divides m; returns m.
int64_t check_attention_rep(const std::string& module, const Representation& in_rep, int64_t num_heads);

/// check_attention_rep, and dropout in [0, 1): the options every backend checks. Returns m.
int64_t check_attention_options(const std::string& module, const Representation& in_rep, int64_t num_heads,
                                double dropout);

/// Builds and registers in_proj (in_rep → 3m regular copies, permutation basis) and out_proj (m regular
/// copies → in_rep) on `owner`.
void make_projections(torch::nn::Module& owner, const Representation& in_rep, int64_t copies, bool bias,
                      const std::string& init_scheme, eLinear& in_proj, eLinear& out_proj);

/// torch::nn::MultiheadAttention's initialisation: weights by the scheme, biases zero.
void reset_projections(eLinear& in_proj, eLinear& out_proj);

/// Sizes of one call, after validation.
struct CallShape {
  int64_t batch, tgt_len, src_len, embed, heads, head_dim;
};

/// Validates query/key/value (shapes; device and dtype against the module's parameter `like`) and every mask
/// and position tensor present in the call. Throws c10::Error naming `module`, what was expected and what came.
/// Positions and position masks are checked only when `positions` (position-aware modules).
CallShape check_call(const std::string& module, const AttentionCall& call, int64_t embed, int64_t heads,
                     const torch::Tensor& like, bool positions);

/// Q, K and V of a call split into heads, (B, H, L, head_dim). In the isotypic layout
/// (AttentionCall::isotypic_batch) a head's coordinates go (row of a regular copy, copy) instead of (copy,
/// component): the same dot products, since the rows of a copy are an orthonormal basis of it. There, with
/// LibTorch 1.x, they are transposed views of (B, H, head_dim, L) tensors.
struct Heads {
  CallShape shape;
  torch::Tensor q, k, v;
  bool isotypic = false;
};
/// Validates the call (check_call, or its isotypic form) and projects it: for self-attention one fused
/// in_proj product, else the rows (output copies) of in_proj that each input needs.
Heads project_heads(const std::string& module, eLinearImpl& in_proj, const AttentionCall& call, int64_t embed,
                    int64_t heads, bool positions);
/// The attention's output (B, H, T, head_dim) through out_proj, in the layout of the call.
torch::Tensor project_out(eLinearImpl& out_proj, const Heads& heads, const torch::Tensor& out);

/// The causal mask (T, S) as an additive float tensor (-inf where key j > query i), kept in `cache` for the
/// last size, device and dtype used, so repeated calls allocate nothing.
const torch::Tensor& causal_mask(torch::Tensor& cache, int64_t tgt_len, int64_t src_len, const torch::TensorOptions& options);

/// attn_mask, key_padding_mask, is_causal and the invalid keys of `key_position_mask` (may be undefined) as
/// one additive mask of the module's dtype, broadcastable to (B, H, T, S); undefined when nothing is masked.
torch::Tensor additive_mask(const AttentionCall& call, const CallShape& shape, const torch::Tensor& key_position_mask,
                            const torch::TensorOptions& options, torch::Tensor& causal_cache);

/// a + b for broadcastable additive masks, either possibly undefined.
torch::Tensor add_masks(const torch::Tensor& a, const torch::Tensor& b);

/// The call with its pre-norm's affine map (AttentionCall::input_affine) applied to query, key and value,
/// keeping shared tensors shared; the call itself when it has none.
AttentionCall without_affine(const AttentionCall& call);

/// softmax(q kᵀ / sqrt(head_dim) + mask) v on (B, H, L, head_dim) tensors. `causal_cache` is the module's causal mask: when `mask` is that tensor itself, the fused kernel
/// gets is_causal instead of a mask. A query row whose keys are all masked gets -inf logits only and, as in
/// torch::nn::MultiheadAttention, NaN weights and a NaN output: we keep torch's behaviour for parity rather
/// than invent a value. With LibTorch >= 2 and need_weights false the fused at::scaled_dot_product_attention
/// runs instead (as in torch's own MultiheadAttention then); from 2.5 its math kernel gives such rows zeros.
/// Returns (output (B, H, T, head_dim), stored transposed when v is; weights (B, T, S) averaged over heads or
/// (B, H, T, S), or undefined unless need_weights).
std::tuple<torch::Tensor, torch::Tensor> scaled_dot_product(const torch::Tensor& q, const torch::Tensor& k,
                                                            const torch::Tensor& v, const torch::Tensor& mask,
                                                            const torch::Tensor& causal_cache, const CallShape& shape,
                                                            double dropout, bool training, bool need_weights,
                                                            bool average_attn_weights);

/// Positions of a call side as float64 (B, L): the given ones, or 0..L-1; where `valid` (bool, may be
/// undefined) is false, position 0.
torch::Tensor positions_or_default(const torch::Tensor& positions, const torch::Tensor& valid, int64_t batch,
                                   int64_t length, const torch::Device& device);

/// The key-side positions and position mask of a call: the given ones, else, for self-attention (query is
/// key), the query's.
std::pair<torch::Tensor, torch::Tensor> key_positions_of(const AttentionCall& call);

/// Both sides' positions of a call of shape `s`, as positions_or_default gives them (float64 (B, T) and
/// (B, S)), and the key-side position mask (key_positions_of; may be undefined).
struct CallPositions {
  torch::Tensor query, key, key_valid;
};
CallPositions call_positions(const AttentionCall& call, const CallShape& s, const torch::Device& device);

/// The path every backend ends in: scaled_dot_product of the heads under `bias` (an additive logit term
/// broadcastable to (B, H, T, S), may be undefined) plus the call's masks and the invalid keys of
/// `key_position_mask`, then out_proj. Returns (output, weights) as AttentionBackend::attend.
std::tuple<torch::Tensor, torch::Tensor> attend_and_project(const AttentionCall& call, const Heads& heads,
                                                            const torch::Tensor& bias,
                                                            const torch::Tensor& key_position_mask,
                                                            torch::Tensor& causal_cache, double dropout, bool training,
                                                            eLinearImpl& out_proj);

}  // namespace symm::nn::detail
