#pragma once
// Equivariant attention. Q, K and V are equivariant maps into m regular copies in the permutation basis;
// each head owns whole regular copies, so per-head dot products are invariant, softmax acts on tokens
// only, and the output projection maps back equivariantly.
#include <memory>
#include <tuple>

#include "symm/nn/affine.h"
#include "symm/nn/linear.h"

namespace symm::nn {

/// One attention call. Shapes are batch-first: query (B, T, D), key and value (B, S, D).
struct AttentionCall {
  torch::Tensor query, key, value;
  /// (T, S) or (B·heads, T, S); bool (true = not allowed) or float (added to the logits).
  torch::Tensor attn_mask;
  /// (B, S); bool (true = padding, ignored) or float (added to the logits).
  torch::Tensor key_padding_mask;
  /// Adds a causal mask (token t sees keys 0..t).
  bool is_causal = false;
  bool need_weights = false;
  /// Average the returned weights over heads: (B, T, S); else (B, heads, T, S).
  bool average_attn_weights = true;
  /// (B, T) and (B, S) float or int positions, default 0..T-1 (0..S-1); ignored by position-free attention.
  /// For self-attention (query is key) undefined key positions default to the query positions.
  torch::Tensor query_positions, key_positions;
  /// (B, T) and (B, S) bool, true = valid position. Keys at invalid positions are not attended to (like
  /// padding); queries at invalid positions get position 0. For self-attention an undefined key position
  /// mask defaults to the query's.
  torch::Tensor query_position_mask, key_position_mask;
  /// When set, query, key and value are inputs of this learnable eAffine (a pre-norm's affine map) and the
  /// projections apply it; for self-attention it is folded into the fused in_proj weight
  /// (eLinear::forward_after), saving a D×D matmul per token.
  eAffineImpl* input_affine = nullptr;
  /// Internal to the layers' isotypic execution (AttentionBackend::supports_isotypic): when positive, query,
  /// key and value are features-first (D, B·L) tensors in the isotypic layout of in_rep, with B this batch
  /// size, and so is the output.
  int64_t isotypic_batch = 0;
};

/// What the encoder and decoder layers call. Implemented by eMultiheadAttention and by every
/// PositionalAttentionBase backend.
class AttentionBackend : public eModule {
 public:
  /// Returns (output (B, T, D), weights or an undefined tensor unless need_weights).
  virtual std::tuple<torch::Tensor, torch::Tensor> attend(const AttentionCall& call) = 0;
  /// The module itself, for registering it as a child and cloning it.
  virtual std::shared_ptr<torch::nn::Module> as_module() = 0;
  virtual int64_t num_heads() const = 0;
  /// Whether attend() uses token positions.
  virtual bool uses_positions() const { return false; }
  /// Whether attend() takes calls in the isotypic layout (AttentionCall::isotypic_batch).
  virtual bool supports_isotypic() const { return false; }
};

struct eMultiheadAttentionOptions {
  eMultiheadAttentionOptions(Representation in_rep, int64_t num_heads) : in_rep_(std::move(in_rep)), num_heads_(num_heads) {}
  /// Must be isomorphic to m regular copies, with num_heads dividing m.
  TORCH_ARG(Representation, in_rep);
  TORCH_ARG(int64_t, num_heads);
  /// Dropout on the attention weights (acts on tokens, so it keeps equivariance).
  TORCH_ARG(double, dropout) = 0.0;
  /// Invariant biases on the Q, K, V and output projections.
  TORCH_ARG(bool, bias) = true;
  TORCH_ARG(std::string, init_scheme) = "xavier_uniform";
};

/// Drop-in for torch::nn::MultiheadAttention semantics, batch-first. Self-attention (query, key and value
/// the same tensor) costs one fused in_proj matmul; otherwise Q, K and V are projected with row blocks of the
/// dense in_proj weight. A query whose keys are all masked gets NaN weights and output, as in torch
/// (LibTorch >= 2.5 without need_weights: zeros, from its fused kernel, as torch's own module then).
class eMultiheadAttentionImpl : public torch::nn::Cloneable<eMultiheadAttentionImpl>, public AttentionBackend {
 public:
  eMultiheadAttentionImpl(Representation in_rep, int64_t num_heads)
      : eMultiheadAttentionImpl(eMultiheadAttentionOptions(std::move(in_rep), num_heads)) {}
  explicit eMultiheadAttentionImpl(eMultiheadAttentionOptions options);
  void reset() override;
  void reset_parameters();
  std::tuple<torch::Tensor, torch::Tensor> forward(const torch::Tensor& query, const torch::Tensor& key,
                                                   const torch::Tensor& value, const torch::Tensor& key_padding_mask = {},
                                                   bool need_weights = true, const torch::Tensor& attn_mask = {},
                                                   bool average_attn_weights = true, bool is_causal = false);
  /// The call's positions and position masks are ignored: this attention has no notion of position.
  std::tuple<torch::Tensor, torch::Tensor> attend(const AttentionCall& call) override;
  std::shared_ptr<torch::nn::Module> as_module() override { return shared_from_this(); }
  int64_t num_heads() const override { return options.num_heads(); }
  bool supports_isotypic() const override { return true; }
  void pretty_print(std::ostream& stream) const override;
  const Representation& in_rep() const override { return options.in_rep(); }
  const Representation& out_rep() const override { return options.in_rep(); }

  eMultiheadAttentionOptions options;
  /// Fused Q, K, V projection: in_rep → 3m regular copies in the permutation basis; rows [0, D) give Q,
  /// [D, 2D) K and [2D, 3D) V, each m whole regular copies.
  eLinear in_proj{nullptr};
  /// m regular copies → in_rep.
  eLinear out_proj{nullptr};

 private:
  std::tuple<torch::Tensor, torch::Tensor> run(const AttentionCall& call);

  int64_t copies_ = 0;           // m
  torch::Tensor causal_cache_;   // last causal mask built
};
TORCH_MODULE(eMultiheadAttention);

}  // namespace symm::nn
