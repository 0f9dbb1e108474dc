#pragma once
// Conditional Transformer regressors, the backbone of diffusion and flow-matching policies: a horizon of
// input tokens X (noisy actions) is regressed to output tokens (a velocity or noise estimate) given condition
// tokens Z (observations) and the optimisation step k (flow time or diffusion step).
//
// eCondTransformerRegressor is exactly equivariant: f(ρ_in(g)X, k, ρ_cond(g)Z) = ρ_out(g) f(X, k, Z) for every
// g. Tokens are embedded into embedding_dim/|G| regular copies; the step embedding and the learned positional
// embeddings are projected onto the invariant subspace, so adding them commutes with the group.
// CondTransformerRegressor is the same architecture from torch::nn modules, for baselines.
#include "symm/nn/decoder_layer.h"
#include "symm/nn/encoder.h"
#include "symm/nn/equivariance.h"
#include "symm/nn/mlp.h"

namespace symm::nn {

struct eCondTransformerRegressorOptions {
  eCondTransformerRegressorOptions(Representation in_rep, Representation cond_rep, Representation out_rep, int64_t in_horizon,
                                   int64_t cond_horizon, int64_t num_layers, int64_t num_attention_heads, int64_t embedding_dim)
      : in_rep_(std::move(in_rep)), cond_rep_(std::move(cond_rep)), out_rep_(std::move(out_rep)), in_horizon_(in_horizon),
        cond_horizon_(cond_horizon), num_layers_(num_layers), num_attention_heads_(num_attention_heads),
        embedding_dim_(embedding_dim) {}
  /// Representation of the input tokens X.
  TORCH_ARG(Representation, in_rep);
  /// Representation of the condition tokens Z.
  TORCH_ARG(Representation, cond_rep);
  /// Representation of the output tokens.
  TORCH_ARG(Representation, out_rep);
  /// Largest number of input tokens.
  TORCH_ARG(int64_t, in_horizon);
  /// Largest number of condition tokens (the step token comes on top).
  TORCH_ARG(int64_t, cond_horizon);
  /// Decoder layers of the trunk.
  TORCH_ARG(int64_t, num_layers);
  TORCH_ARG(int64_t, num_attention_heads);
  /// Token width; a multiple of |G| (embedding_dim/|G| regular copies), whose copies the heads divide.
  TORCH_ARG(int64_t, embedding_dim);
  /// Dropout on the embedded tokens.
  TORCH_ARG(double, p_drop_emb) = 0.1;
  /// Dropout inside the attention and feed-forward blocks.
  TORCH_ARG(double, p_drop_attn) = 0.1;
  /// Input token t attends to input tokens ≤ t and to condition tokens ≤ t (the step token included).
  TORCH_ARG(bool, causal_attn) = false;
  /// Encoder layers over the condition tokens; 0: an eMLP (eLinear → Mish → eLinear through 4× the width).
  TORCH_ARG(int64_t, num_cond_layers) = 0;
  /// "rmsnorm" or "layernorm", in every layer and before the head.
  TORCH_ARG(std::string, norm_module) = "rmsnorm";
  TORCH_ARG(std::string, init_scheme) = "xavier_uniform";
};

class eCondTransformerRegressorImpl : public torch::nn::Cloneable<eCondTransformerRegressorImpl>, public eModule {
 public:
  explicit eCondTransformerRegressorImpl(eCondTransformerRegressorOptions options);
  void reset() override;
  void reset_parameters();
  /// X (B, Tx ≤ in_horizon, in_rep), k a scalar or (B) step, Z (B, Tz ≤ cond_horizon, cond_rep) →
  /// (B, Tx, out_rep).
  torch::Tensor forward(const torch::Tensor& X, const torch::Tensor& k, const torch::Tensor& Z);
  torch::Tensor forward(const torch::Tensor& X, double k, const torch::Tensor& Z);
  /// Compares f(ρ_in(g)X, k, ρ_cond(g)Z) with ρ_out(g)f(X, k, Z) on random inputs in eval mode, over all group
  /// elements (a sample of `samples` for larger groups). Throws c10::Error naming the element when
  /// |difference| > atol + rtol·|ρ_out(g)f| anywhere; returns the largest error relative to |f|∞.
  EquivarianceError check_equivariance(int64_t batch_size = 4, int64_t in_len = 0, int64_t cond_len = 0, int samples = 64,
                                       double atol = 1e-4, double rtol = 1e-4);
  void pretty_print(std::ostream& stream) const override;
  const Representation& in_rep() const override { return options.in_rep(); }
  const Representation& out_rep() const override { return options.out_rep(); }
  const Representation& cond_rep() const { return options.cond_rep(); }
  /// embedding_dim/|G| regular copies.
  const Representation& embedding_rep() const { return embedding_rep_; }

  eCondTransformerRegressorOptions options;
  eLinear input_emb{nullptr}, cond_emb{nullptr};
  /// Learned positional embeddings (1, in_horizon, D) and (1, cond_horizon + 1, D), used through their
  /// invariant projection.
  torch::Tensor pos_emb, cond_pos_emb;
  /// The condition encoder: a stack of pre-norm encoder layers, or (num_cond_layers = 0) an eMLP.
  eTransformerEncoder cond_encoder{nullptr};
  eMLP cond_mlp{nullptr};
  torch::nn::ModuleList decoder{nullptr};
  torch::nn::AnyModule norm;
  eLinear head{nullptr};
  torch::nn::Dropout dropout{nullptr};

 private:
  torch::Tensor project_invariant(const torch::Tensor& x) const;
  Representation embedding_rep_;
  Constants invariant_basis_;  // (D, n) orthonormal basis of Fix(embedding_rep)
};
TORCH_MODULE(eCondTransformerRegressor);

struct CondTransformerRegressorOptions {
  CondTransformerRegressorOptions(int64_t in_dim, int64_t cond_dim, int64_t out_dim, int64_t in_horizon, int64_t cond_horizon,
                                  int64_t num_layers, int64_t num_attention_heads, int64_t embedding_dim)
      : in_dim_(in_dim), cond_dim_(cond_dim), out_dim_(out_dim), in_horizon_(in_horizon), cond_horizon_(cond_horizon),
        num_layers_(num_layers), num_attention_heads_(num_attention_heads), embedding_dim_(embedding_dim) {}
  TORCH_ARG(int64_t, in_dim);
  TORCH_ARG(int64_t, cond_dim);
  TORCH_ARG(int64_t, out_dim);
  TORCH_ARG(int64_t, in_horizon);
  TORCH_ARG(int64_t, cond_horizon);
  TORCH_ARG(int64_t, num_layers);
  TORCH_ARG(int64_t, num_attention_heads);
  /// Token width; a multiple of num_attention_heads.
  TORCH_ARG(int64_t, embedding_dim);
  TORCH_ARG(double, p_drop_emb) = 0.1;
  TORCH_ARG(double, p_drop_attn) = 0.1;
  TORCH_ARG(bool, causal_attn) = false;
  /// Encoder layers over the condition tokens; 0: an MLP (Linear → Mish → Linear through 4× the width).
  TORCH_ARG(int64_t, num_cond_layers) = 0;
  /// "rmsnorm" or "layernorm".
  TORCH_ARG(std::string, norm_module) = "rmsnorm";
};

/// A pre-norm Transformer block from torch::nn modules: self-attention, optional cross-attention to a
/// memory, and a GELU feed-forward block (torch::nn::TransformerEncoderLayer of the C++ frontend is post-norm
/// only). One concept for the plain regressor's encoder (no cross-attention) and decoder layers.
class PreNormBlockImpl : public torch::nn::Cloneable<PreNormBlockImpl> {
 public:
  PreNormBlockImpl(int64_t dim, int64_t heads, int64_t dim_feedforward, double dropout, bool cross, std::string norm_module);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& memory = {}, const torch::Tensor& self_mask = {},
                        const torch::Tensor& cross_mask = {});

  int64_t dim, heads, dim_feedforward;
  double p_dropout;
  bool cross;
  std::string norm_module;
  torch::nn::MultiheadAttention self_attn{nullptr}, cross_attn{nullptr};
  torch::nn::Linear linear1{nullptr}, linear2{nullptr};
  torch::nn::AnyModule norm1, norm2, norm3;
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(PreNormBlock);

class CondTransformerRegressorImpl : public torch::nn::Cloneable<CondTransformerRegressorImpl> {
 public:
  explicit CondTransformerRegressorImpl(CondTransformerRegressorOptions options);
  void reset() override;
  void reset_parameters();
  /// As eCondTransformerRegressor::forward, on plain features.
  torch::Tensor forward(const torch::Tensor& X, const torch::Tensor& k, const torch::Tensor& Z);
  torch::Tensor forward(const torch::Tensor& X, double k, const torch::Tensor& Z);
  void pretty_print(std::ostream& stream) const override;

  CondTransformerRegressorOptions options;
  torch::nn::Linear input_emb{nullptr}, cond_emb{nullptr};
  torch::Tensor pos_emb, cond_pos_emb;
  torch::nn::ModuleList cond_encoder{nullptr};
  torch::nn::Sequential cond_mlp{nullptr};
  torch::nn::ModuleList decoder{nullptr};
  torch::nn::AnyModule norm;
  torch::nn::Linear head{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(CondTransformerRegressor);

/// The sinusoidal embedding of a step k (B) → (B, dim): [sin(k ω_i), cos(k ω_i)] with ω_i = 10000^(−i/(dim/2 − 1)),
/// zero-padded when dim is odd.
torch::Tensor sinusoidal_embedding(const torch::Tensor& k, int64_t dim);

}  // namespace symm::nn
