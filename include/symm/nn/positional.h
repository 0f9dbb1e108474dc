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
class RotaryAttentionImpl : public torch::nn::Cloneable<RotaryAttentionImpl>, public PositionalAttentionBase {
 public:
  RotaryAttentionImpl(Representation in_rep, int64_t num_heads)
      : RotaryAttentionImpl(RotaryAttentionOptions(std::move(in_rep), num_heads)) {}
  explicit RotaryAttentionImpl(RotaryAttentionOptions options);
  void reset() override;
  void reset_parameters();
  /// Batch-first self- or cross-attention with positions. Returns (output, undefined): attend() with
  /// need_weights gives the weights, and position masks.
  std::tuple<torch::Tensor, torch::Tensor> forward(const torch::Tensor& query, const torch::Tensor& key,
                                                   const torch::Tensor& value, const torch::Tensor& query_positions = {},
                                                   const torch::Tensor& key_positions = {},
                                                   const torch::Tensor& key_padding_mask = {},
                                                   const torch::Tensor& attn_mask = {}, bool is_causal = false);
  std::tuple<torch::Tensor, torch::Tensor> attend(const AttentionCall& call) override;
  std::shared_ptr<torch::nn::Module> as_module() override { return shared_from_this(); }
  int64_t num_heads() const override { return options.num_heads(); }
  bool supports_isotypic() const override { return true; }
  void pretty_print(std::ostream& stream) const override;
  const Representation& in_rep() const override { return options.in_rep(); }
  const Representation& out_rep() const override { return options.in_rep(); }

  RotaryAttentionOptions options;
  eLinear in_proj{nullptr}, out_proj{nullptr};  // as in eMultiheadAttention

 private:
  std::tuple<torch::Tensor, torch::Tensor> run(const AttentionCall& call);
  /// x (B, H, L, head_dim), a head's copies laid out (copy, component), or (component, copy) when isotypic.
  torch::Tensor rotate(const torch::Tensor& x, const torch::Tensor& positions, bool isotypic) const;

  int64_t copies_ = 0;          // m
  Constants constants_;         // ω_j (pairs,)
  torch::Tensor causal_cache_;  // last causal mask built
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
class ALiBiAttentionImpl : public torch::nn::Cloneable<ALiBiAttentionImpl>, public PositionalAttentionBase {
 public:
  ALiBiAttentionImpl(Representation in_rep, int64_t num_heads)
      : ALiBiAttentionImpl(ALiBiAttentionOptions(std::move(in_rep), num_heads)) {}
  explicit ALiBiAttentionImpl(ALiBiAttentionOptions options);
  void reset() override;
  void reset_parameters();
  std::tuple<torch::Tensor, torch::Tensor> forward(const torch::Tensor& query, const torch::Tensor& key,
                                                   const torch::Tensor& value, const torch::Tensor& query_positions = {},
                                                   const torch::Tensor& key_positions = {},
                                                   const torch::Tensor& key_padding_mask = {},
                                                   const torch::Tensor& attn_mask = {}, bool is_causal = false);
  std::tuple<torch::Tensor, torch::Tensor> attend(const AttentionCall& call) override;
  std::shared_ptr<torch::nn::Module> as_module() override { return shared_from_this(); }
  int64_t num_heads() const override { return options.num_heads(); }
  bool supports_isotypic() const override { return true; }
  void pretty_print(std::ostream& stream) const override;
  const Representation& in_rep() const override { return options.in_rep(); }
  const Representation& out_rep() const override { return options.in_rep(); }

  ALiBiAttentionOptions options;
  eLinear in_proj{nullptr}, out_proj{nullptr};  // as in eMultiheadAttention
  /// Per-head slopes (a parameter with learnable_slopes, else a buffer).
  torch::Tensor slopes;

 private:
  std::tuple<torch::Tensor, torch::Tensor> run(const AttentionCall& call);

  int64_t copies_ = 0;          // m
  torch::Tensor causal_cache_;  // last causal mask built
};
TORCH_MODULE(ALiBiAttention);

}  // namespace symm::nn
