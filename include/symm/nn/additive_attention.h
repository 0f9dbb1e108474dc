#pragma once
// Additive positional attention backends (symm_learning's eAdditivePosMultiheadAttention and
// eAdditiveRelMultiheadAttention) beside RotaryAttention and ALiBiAttention: a learned absolute embedding
// added to queries and keys, projected onto the invariant subspace so that it commutes with the group; or a
// learned scalar bias of the clipped relative position subtracted from the logits, invariant as every scalar.
//
// Positions follow AttentionCall: keys at invalid positions are not attended to, and invalid positions get no
// positional term (symm_learning attends to such keys).
#include "symm/nn/positional.h"

namespace symm::nn {

struct eAdditivePosMultiheadAttentionOptions {
  eAdditivePosMultiheadAttentionOptions(Representation in_rep, int64_t num_heads, int64_t max_len)
      : in_rep_(std::move(in_rep)), num_heads_(num_heads), max_len_(max_len) {}
  /// m regular copies, num_heads dividing m.
  TORCH_ARG(Representation, in_rep);
  TORCH_ARG(int64_t, num_heads);
  /// Rows of the embedding table: positions are integers in [0, max_len).
  TORCH_ARG(int64_t, max_len);
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(bool, bias) = true;
  TORCH_ARG(std::string, init_scheme) = "xavier_normal";
};

/// q' = q + P_inv E[p_q], k' = k + P_inv E[p_k], v' = v, then equivariant attention. P_inv E[p] is invariant,
/// so adding it commutes with ρ. The table starts at zero (as symm_learning's); reset_parameters() draws it
/// from N(0, 0.02²) and projects it.
class eAdditivePosMultiheadAttentionImpl
    : public PositionalAttention<eAdditivePosMultiheadAttentionImpl, eAdditivePosMultiheadAttentionOptions> {
 public:
  eAdditivePosMultiheadAttentionImpl(Representation in_rep, int64_t num_heads, int64_t max_len)
      : eAdditivePosMultiheadAttentionImpl(eAdditivePosMultiheadAttentionOptions(std::move(in_rep), num_heads, max_len)) {}
  explicit eAdditivePosMultiheadAttentionImpl(eAdditivePosMultiheadAttentionOptions options);
  void reset() override;
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;

  /// (max_len, D), used through P_inv.
  torch::Tensor pos_emb;

 private:
  std::tuple<torch::Tensor, torch::Tensor> run(const AttentionCall& call) override;
  /// P_inv E[p] (B, L, D), zero where `valid` is false.
  torch::Tensor embedding(const torch::Tensor& positions, const torch::Tensor& valid, const char* side) const;

  Constants constants_;  // P_inv (D, D)
};
TORCH_MODULE(eAdditivePosMultiheadAttention);

struct eAdditiveRelMultiheadAttentionOptions {
  eAdditiveRelMultiheadAttentionOptions(Representation in_rep, int64_t num_heads, int64_t max_distance)
      : in_rep_(std::move(in_rep)), num_heads_(num_heads), max_distance_(max_distance) {}
  TORCH_ARG(Representation, in_rep);
  TORCH_ARG(int64_t, num_heads);
  /// Relative positions are clipped to [−max_distance, max_distance].
  TORCH_ARG(int64_t, max_distance);
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(bool, bias) = true;
  TORCH_ARG(std::string, init_scheme) = "xavier_normal";
};

/// logits_ij −= b[clip(p_i − p_j)], one table b (2·max_distance + 1) shared by the heads; the clipped
/// difference is truncated to an integer (float time stamps work). The table starts at zero; reset_parameters()
/// draws it from N(0, 0.02²). Pairs with an invalid query position get no bias.
class eAdditiveRelMultiheadAttentionImpl
    : public PositionalAttention<eAdditiveRelMultiheadAttentionImpl, eAdditiveRelMultiheadAttentionOptions> {
 public:
  eAdditiveRelMultiheadAttentionImpl(Representation in_rep, int64_t num_heads, int64_t max_distance)
      : eAdditiveRelMultiheadAttentionImpl(
            eAdditiveRelMultiheadAttentionOptions(std::move(in_rep), num_heads, max_distance)) {}
  explicit eAdditiveRelMultiheadAttentionImpl(eAdditiveRelMultiheadAttentionOptions options);
  void reset() override;
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;

  /// (2·max_distance + 1): the bias of relative position r at r + max_distance.
  torch::Tensor rel_bias;

 private:
  std::tuple<torch::Tensor, torch::Tensor> run(const AttentionCall& call) override;
};
TORCH_MODULE(eAdditiveRelMultiheadAttention);

}  // namespace symm::nn
