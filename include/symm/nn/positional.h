#pragma once
// Attention that sees token positions, and stays equivariant: the positions act on the token axis or
// on whole regular copies, never inside a copy.
#include "symm/nn/attention.h"

namespace symm::nn {

/// The seam for positional attention backends: attend() receives positions (B, T) float or int (default
/// 0..T-1) and position masks (B, T) bool (true = valid).
class PositionalAttentionBase : public AttentionBackend {
 public:
  bool uses_positions() const override { return true; }

 protected:
  /// The call of a positional module's forward arguments; need_weights off.
  static AttentionCall make_call(const torch::Tensor& query, const torch::Tensor& key, const torch::Tensor& value,
                                 const torch::Tensor& query_positions, const torch::Tensor& key_positions,
                                 const torch::Tensor& key_padding_mask, const torch::Tensor& attn_mask, bool is_causal);
};

/// What the positional backends share: their options, the Q/K/V and output projections, forward() as a call of
/// attend(), and the AttentionBackend plumbing. A backend derives from PositionalAttention<itself, its options>
/// and implements run(), reset() and pretty_print().
template <typename Derived, typename Options>
class PositionalAttention : public torch::nn::Cloneable<Derived>, public PositionalAttentionBase {
 public:
  explicit PositionalAttention(Options options_) : options(std::move(options_)) {}
  /// Batch-first self- or cross-attention with positions. Returns (output, undefined): attend() with
  /// need_weights gives the weights, and position masks.
  std::tuple<torch::Tensor, torch::Tensor> forward(const torch::Tensor& query, const torch::Tensor& key,
                                                   const torch::Tensor& value, const torch::Tensor& query_positions = {},
                                                   const torch::Tensor& key_positions = {},
                                                   const torch::Tensor& key_padding_mask = {},
                                                   const torch::Tensor& attn_mask = {}, bool is_causal = false) {
    return run(make_call(query, key, value, query_positions, key_positions, key_padding_mask, attn_mask, is_causal));
  }
  std::tuple<torch::Tensor, torch::Tensor> attend(const AttentionCall& call) override { return run(call); }
  std::shared_ptr<torch::nn::Module> as_module() override { return this->shared_from_this(); }
  int64_t num_heads() const override { return options.num_heads(); }
  const Representation& in_rep() const override { return options.in_rep(); }
  const Representation& out_rep() const override { return options.in_rep(); }

  Options options;
  eLinear in_proj{nullptr}, out_proj{nullptr};  // as in eMultiheadAttention

 protected:
  virtual std::tuple<torch::Tensor, torch::Tensor> run(const AttentionCall& call) = 0;

  int64_t copies_ = 0;          // m
  torch::Tensor causal_cache_;  // last causal mask built
};

struct RotaryAttentionOptions {
  RotaryAttentionOptions(Representation in_rep, int64_t num_heads) : in_rep_(std::move(in_rep)), num_heads_(num_heads) {}
  TORCH_ARG(Representation, in_rep);
  TORCH_ARG(int64_t, num_heads);
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(bool, bias) = true;
  TORCH_ARG(std::string, init_scheme) = "xavier_uniform";
  /// Frequencies ω_j = base^(-j / pairs) of the copy pairs within a head.
  TORCH_ARG(double, base) = 10000.0;
};

/// Rotary positions over regular copies: within a head, copies 2j and 2j+1 form a pair of |G|-vectors
/// rotated by the angle ω_j·p. ρ acts identically on both, so the rotation commutes with it; q·k depends on
/// p_i − p_j only. A head with an odd number of copies leaves its last copy unrotated; a head needs at least
/// two copies (m / num_heads >= 2), else there is nothing to rotate and construction fails.
class RotaryAttentionImpl : public PositionalAttention<RotaryAttentionImpl, RotaryAttentionOptions> {
 public:
  RotaryAttentionImpl(Representation in_rep, int64_t num_heads)
      : RotaryAttentionImpl(RotaryAttentionOptions(std::move(in_rep), num_heads)) {}
  explicit RotaryAttentionImpl(RotaryAttentionOptions options);
  void reset() override;
  void reset_parameters();
  bool supports_isotypic() const override { return true; }
  void pretty_print(std::ostream& stream) const override;

 private:
  std::tuple<torch::Tensor, torch::Tensor> run(const AttentionCall& call) override;
  /// x (B, H, L, head_dim), a head's copies laid out (copy, component), or (component, copy) when isotypic.
  torch::Tensor rotate(const torch::Tensor& x, const torch::Tensor& positions, bool isotypic) const;

  Constants constants_;  // ω_j (pairs,)
};
TORCH_MODULE(RotaryAttention);

struct ALiBiAttentionOptions {
  ALiBiAttentionOptions(Representation in_rep, int64_t num_heads) : in_rep_(std::move(in_rep)), num_heads_(num_heads) {}
  TORCH_ARG(Representation, in_rep);
  TORCH_ARG(int64_t, num_heads);
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(bool, bias) = true;
  TORCH_ARG(std::string, init_scheme) = "xavier_uniform";
  /// Learn the per-head slopes (initialised to ALiBi's geometric sequence) instead of fixing them.
  TORCH_ARG(bool, learnable_slopes) = false;
};

/// An invariant relative-position bias on the logits: −slope_h·|p_i − p_j| per head, for integer or
/// continuous (float time stamp) positions. A scalar added to the logits is invariant under the group.
/// forward() returns (output, undefined); attend() with need_weights gives the weights, and position masks.
class ALiBiAttentionImpl : public PositionalAttention<ALiBiAttentionImpl, ALiBiAttentionOptions> {
 public:
  ALiBiAttentionImpl(Representation in_rep, int64_t num_heads)
      : ALiBiAttentionImpl(ALiBiAttentionOptions(std::move(in_rep), num_heads)) {}
  explicit ALiBiAttentionImpl(ALiBiAttentionOptions options);
  void reset() override;
  void reset_parameters();
  bool supports_isotypic() const override { return true; }
  void pretty_print(std::ostream& stream) const override;

  /// Per-head slopes (a parameter with learnable_slopes, else a buffer).
  torch::Tensor slopes;

 private:
  std::tuple<torch::Tensor, torch::Tensor> run(const AttentionCall& call) override;
};
TORCH_MODULE(ALiBiAttention);

}  // namespace symm::nn
