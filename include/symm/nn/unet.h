#pragma once
// The diffusion-policy 1-D conditional U-Net (Chi et al. 2023) of symm_learning's models.diffusion.
// eConditionalUnet1D: every channel map an eConv1d / eConvTranspose1d, eRMSNorm over the channels, a pointwise
// activation on regular copies in the permutation basis, and FiLM through a non-learnable eAffine whose scales
// (one per irrep copy) and invariant bias are predicted from the irrep norms of the condition, which are
// invariant; so f(ρ_X(g)x, ρ_Z(g)z, ρ_C(g)c, t) = ρ_X(g) f(x, z, c, t) exactly.
// ConditionalUnet1D: symm_learning's unconstrained baseline on torch::nn modules; its state dict has
// symm_learning's keys and its outputs equal symm_learning's on the same weights.
//
// Where symm_learning 0.8.1 cannot run, these follow its documented contract (output length = input length)
// instead of its code: its equivariant decoder drops the last of the n−1 up-samplings (the output came out at
// half the horizon for two or more down_dims, or failed for three) and its stride-2 transposed convolution
// returned 2L−1 frames. Here every decoder stage up-samples, to exactly 2L (output_padding 1), and the second
// local-condition block is added at full resolution, after the decoder. With one entry in down_dims the
// modules and their outputs are symm_learning's.
#include <optional>
#include <string>
#include <vector>

#include "symm/nn/activation.h"
#include "symm/nn/affine.h"
#include "symm/nn/conv.h"
#include "symm/nn/hidden_rep.h"
#include "symm/nn/normalization.h"
#include "symm/nn/pooling.h"

namespace symm::nn {

namespace functional {
/// emb(t) = [sin(t·ω_i), cos(t·ω_i)], ω_i = 10000^(−i/(dim/2 − 1)), i < dim/2: timesteps (B) → (B, dim).
torch::Tensor sinusoidal_pos_emb(const torch::Tensor& t, int64_t dim);
}  // namespace functional

/// The diffusion-step embedding as a module (no parameters), the first stage of both U-Nets' step encoders.
class SinusoidalPosEmbImpl : public torch::nn::Cloneable<SinusoidalPosEmbImpl> {
 public:
  explicit SinusoidalPosEmbImpl(int64_t dim);
  void reset() override {}
  torch::Tensor forward(const torch::Tensor& t) { return functional::sinusoidal_pos_emb(t, dim); }
  void pretty_print(std::ostream& stream) const override { stream << "symm::nn::SinusoidalPosEmb(dim=" << dim << ")"; }
  int64_t dim;
};
TORCH_MODULE(SinusoidalPosEmb);

// ---------------------------------------------------------------------------------------------------------
// Equivariant

struct eConditionalResidualBlock1DOptions {
  eConditionalResidualBlock1DOptions(Representation in_rep, Representation out_rep, Representation cond_rep)
      : in_rep_(std::move(in_rep)), out_rep_(std::move(out_rep)), cond_rep_(std::move(cond_rep)) {}
  TORCH_ARG(Representation, in_rep);
  /// Representation of the convolutions' output and of the residual; regular copies (the activation is pointwise).
  TORCH_ARG(Representation, out_rep);
  /// Representation of the conditioning vector the FiLM parameters are predicted from.
  TORCH_ARG(Representation, cond_rep);
  TORCH_ARG(int64_t, kernel_size) = 3;
  /// Must be true (symm_learning supports scale-and-bias FiLM only).
  TORCH_ARG(bool, cond_predict_scale) = true;
  TORCH_ARG(Activation, activation) = Activation::relu();
  /// eRMSNorm (eps 1e-6) over the channels after each convolution.
  TORCH_ARG(bool, normalize) = true;
  TORCH_ARG(std::string, init_scheme) = "xavier_uniform";
};

/// y = act(norm2(conv2(FiLM_c(act(norm1(conv1(x))))))) + residual(x); FiLM_c = eAffine with scales and bias
/// mish(Linear(irrep_radii(c))), invariant in c. x (B, in_rep.size(), L), c (B, cond_rep.size()).
class eConditionalResidualBlock1DImpl : public torch::nn::Cloneable<eConditionalResidualBlock1DImpl>, public eModule {
 public:
  eConditionalResidualBlock1DImpl(Representation in_rep, Representation out_rep, Representation cond_rep)
      : eConditionalResidualBlock1DImpl(
            eConditionalResidualBlock1DOptions(std::move(in_rep), std::move(out_rep), std::move(cond_rep))) {}
  explicit eConditionalResidualBlock1DImpl(eConditionalResidualBlock1DOptions options);
  void reset() override;
  void reset_parameters();
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cond);
  /// Number of FiLM parameters per sample: out_rep's irrep copies (scales) + dim Fix(out_rep) (bias).
  int64_t film_dims() const { return affine->num_copies() + affine->num_fix(); }
  void pretty_print(std::ostream& stream) const override;
  const Representation& in_rep() const override { return options.in_rep(); }
  const Representation& out_rep() const override { return options.out_rep(); }
  /// out_rep where it is not decomposed as ours: FiLM predicts one scale per irrep copy of it.
  std::optional<Representation> foreign_decomposition() const override { return unless_ours(options.out_rep()); }

  eConditionalResidualBlock1DOptions options;
  eConv1d conv1{nullptr}, conv2{nullptr};
  /// Empty without normalize.
  eRMSNorm norm1{nullptr}, norm2{nullptr};
  /// The FiLM map; its scales and bias come from cond_encoder.
  eAffine affine{nullptr};
  /// IrrepSubspaceNormPooling(cond_rep) → Linear → Mish (indices 0, 1, 2, as symm_learning's keys).
  torch::nn::Sequential cond_encoder{nullptr};
  /// 1×1 eConv1d when in_rep and out_rep differ; empty (identity) otherwise.
  eConv1d residual_conv{nullptr};
};
TORCH_MODULE(eConditionalResidualBlock1D);

struct eConditionalUnet1DOptions {
  eConditionalUnet1DOptions(Representation in_rep) : in_rep_(std::move(in_rep)) {}
  /// Representation of the sample's channels (and of the output).
  TORCH_ARG(Representation, in_rep);
  /// Representation of a local condition (B, local_cond_rep.size(), L); none by default.
  TORCH_ARG(std::optional<Representation>, local_cond_rep) = std::nullopt;
  /// Representation of the global (FiLM) condition (B, global_cond_rep.size()); none by default.
  TORCH_ARG(std::optional<Representation>, global_cond_rep) = std::nullopt;
  /// Width of the (invariant) diffusion-step embedding; even.
  TORCH_ARG(int64_t, diffusion_step_embed_dim) = 256;
  /// Channels of each level, rounded up to whole regular copies; the horizon must be a multiple of
  /// 2^(levels − 1).
  TORCH_ARG(std::vector<int64_t>, down_dims) = std::vector<int64_t>{256, 512, 1024};
  TORCH_ARG(int64_t, kernel_size) = 3;
  TORCH_ARG(bool, cond_predict_scale) = true;
  TORCH_ARG(Activation, activation) = Activation::relu();
  TORCH_ARG(bool, normalize) = true;
  /// "stride" (eConv1d stride 2 / eConvTranspose1d stride 2) or "pooling" (max pool 2 / nearest up-sampling).
  TORCH_ARG(std::string, downsample) = "stride";
  TORCH_ARG(std::string, init_scheme) = "xavier_uniform";
  /// The regular representation whose copies make every level, whose irrep copies the norms and the FiLM
  /// scale (hidden_rep.h); ours by default.
  TORCH_ARG(std::optional<Representation>, hidden_rep) = std::nullopt;
};

/// sample (B, in_rep.size(), L), timestep (a scalar tensor, (1) or (B); one forward, no overloads, so that the
/// holder's operator() works), local_cond (B, local_cond_rep.size(), L),
/// film_cond (B, global_cond_rep.size()) → (B, in_rep.size(), L).
class eConditionalUnet1DImpl : public torch::nn::Cloneable<eConditionalUnet1DImpl>, public eModule {
 public:
  explicit eConditionalUnet1DImpl(Representation in_rep) : eConditionalUnet1DImpl(eConditionalUnet1DOptions(std::move(in_rep))) {}
  explicit eConditionalUnet1DImpl(eConditionalUnet1DOptions options);
  void reset() override;
  void reset_parameters();
  torch::Tensor forward(const torch::Tensor& sample, const torch::Tensor& timestep, const torch::Tensor& local_cond = {},
                        const torch::Tensor& film_cond = {});
  /// Representation of the FiLM features: global_cond_rep ⊕ diffusion_step_embed_dim trivial copies.
  const Representation& cond_rep() const { return cond_rep_; }
  /// One regular copy as the levels decompose it: options.hidden_rep or ours.
  const Representation& hidden_rep() const { return hidden_rep_; }
  /// The horizon L must be a multiple of this (2^(levels − 1)).
  int64_t horizon_multiple() const { return int64_t{1} << (options.down_dims().size() - 1); }
  void pretty_print(std::ostream& stream) const override;
  const Representation& in_rep() const override { return options.in_rep(); }
  const Representation& out_rep() const override { return options.in_rep(); }
  std::optional<Representation> foreign_decomposition() const override { return unless_ours(hidden_rep_); }

  eConditionalUnet1DOptions options;
  /// SinusoidalPosEmb → Linear(d, 4d) → Mish → Linear(4d, d).
  torch::nn::Sequential diffusion_step_encoder{nullptr};
  /// Two blocks local_cond_rep → first level, added after the first encoder block and after the decoder;
  /// empty without local_cond_rep.
  torch::nn::ModuleList local_cond_encoder{nullptr};
  /// Per level: [block, block, down-sampler (identity at the last level)].
  torch::nn::ModuleList down_modules{nullptr};
  torch::nn::ModuleList mid_modules{nullptr};
  /// Per level but the first, deepest first: [block on (current ⊕ skip), block, up-sampler].
  torch::nn::ModuleList up_modules{nullptr};
  /// eConv1d(kernel_size) → eRMSNorm (normalize) → activation → 1×1 eConv1d to in_rep.
  eConv1d final_conv{nullptr};
  eRMSNorm final_norm{nullptr};
  eConv1d final_proj{nullptr};

 private:
  Representation hidden_rep_;
  Representation cond_rep_;
};
TORCH_MODULE(eConditionalUnet1D);

// ---------------------------------------------------------------------------------------------------------
// Plain baseline

/// Conv1d(padding k/2) → GroupNorm(n_groups) → Mish, as symm_learning's Conv1dBlock (key block.0 ... block.2).
class Conv1dBlockImpl : public torch::nn::Cloneable<Conv1dBlockImpl> {
 public:
  Conv1dBlockImpl(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t n_groups = 8);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x) { return block->forward(x); }
  int64_t in_channels, out_channels, kernel_size, n_groups;
  torch::nn::Sequential block{nullptr};
};
TORCH_MODULE(Conv1dBlock);

/// Conv1d(dim, dim, 3, stride 2, padding 1): halves the horizon (key conv.*, as symm_learning's).
class Downsample1dImpl : public torch::nn::Cloneable<Downsample1dImpl> {
 public:
  explicit Downsample1dImpl(int64_t dim) : dim(dim) { reset(); }
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x) { return conv(x); }
  int64_t dim;
  torch::nn::Conv1d conv{nullptr};
};
TORCH_MODULE(Downsample1d);

/// ConvTranspose1d(dim, dim, 4, stride 2, padding 1): doubles the horizon exactly.
class Upsample1dImpl : public torch::nn::Cloneable<Upsample1dImpl> {
 public:
  explicit Upsample1dImpl(int64_t dim) : dim(dim) { reset(); }
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x) { return conv(x); }
  int64_t dim;
  torch::nn::ConvTranspose1d conv{nullptr};
};
TORCH_MODULE(Upsample1d);

struct ConditionalResidualBlock1DOptions {
  ConditionalResidualBlock1DOptions(int64_t in_channels, int64_t out_channels, int64_t cond_dim)
      : in_channels_(in_channels), out_channels_(out_channels), cond_dim_(cond_dim) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, out_channels);
  TORCH_ARG(int64_t, cond_dim);
  TORCH_ARG(int64_t, kernel_size) = 3;
  TORCH_ARG(int64_t, n_groups) = 8;
  /// FiLM with scale and bias; bias only when false.
  TORCH_ARG(bool, cond_predict_scale) = false;
};

/// y = block1(FiLM_c(block0(x))) + residual(x), FiLM from mish(Linear(c)); x (B, in, L), c (B, cond_dim).
class ConditionalResidualBlock1DImpl : public torch::nn::Cloneable<ConditionalResidualBlock1DImpl> {
 public:
  explicit ConditionalResidualBlock1DImpl(ConditionalResidualBlock1DOptions options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cond);
  void pretty_print(std::ostream& stream) const override;

  ConditionalResidualBlock1DOptions options;
  /// Two Conv1dBlocks.
  torch::nn::ModuleList blocks{nullptr};
  /// Linear(cond_dim, out (·2 with scale)) → Mish.
  torch::nn::Sequential cond_encoder{nullptr};
  /// 1×1 Conv1d when the widths differ; empty (identity) otherwise.
  torch::nn::Conv1d residual_conv{nullptr};
};
TORCH_MODULE(ConditionalResidualBlock1D);

struct ConditionalUnet1DOptions {
  ConditionalUnet1DOptions(int64_t input_dim) : input_dim_(input_dim) {}
  TORCH_ARG(int64_t, input_dim);
  /// Width of a local condition (B, local_cond_dim), repeated over time and concatenated to the sample.
  TORCH_ARG(std::optional<int64_t>, local_cond_dim) = std::nullopt;
  /// Width of the global (FiLM) condition (B, global_cond_dim).
  TORCH_ARG(std::optional<int64_t>, global_cond_dim) = std::nullopt;
  TORCH_ARG(int64_t, diffusion_step_embed_dim) = 16;
  /// The horizon must be a multiple of 2^(levels − 1).
  TORCH_ARG(std::vector<int64_t>, down_dims) = std::vector<int64_t>{32, 64};
  TORCH_ARG(int64_t, kernel_size) = 3;
  /// GroupNorm groups; must divide every width (down_dims and input_dim + local_cond_dim).
  TORCH_ARG(int64_t, n_groups) = 1;
  TORCH_ARG(bool, cond_predict_scale) = true;
};

/// sample (B, input_dim, L), timestep (scalar or (B)), local_cond (B, local_cond_dim), film_cond
/// (B, global_cond_dim) → (B, input_dim, L).
class ConditionalUnet1DImpl : public torch::nn::Cloneable<ConditionalUnet1DImpl> {
 public:
  explicit ConditionalUnet1DImpl(int64_t input_dim) : ConditionalUnet1DImpl(ConditionalUnet1DOptions(input_dim)) {}
  explicit ConditionalUnet1DImpl(ConditionalUnet1DOptions options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& sample, const torch::Tensor& timestep, const torch::Tensor& local_cond = {},
                        const torch::Tensor& film_cond = {});
  int64_t horizon_multiple() const { return int64_t{1} << (options.down_dims().size() - 1); }
  void pretty_print(std::ostream& stream) const override;

  ConditionalUnet1DOptions options;
  torch::nn::Sequential diffusion_step_encoder{nullptr};
  /// Per level: [block, block, Downsample1d or identity at the last level].
  torch::nn::ModuleList down_modules{nullptr};
  torch::nn::ModuleList mid_modules{nullptr};
  /// Per level, deepest first: [block on (current ⊕ skip), block, Upsample1d or identity at the last].
  torch::nn::ModuleList up_modules{nullptr};
  /// Conv1dBlock → 1×1 Conv1d to input_dim.
  torch::nn::Sequential final_conv{nullptr};
};
TORCH_MODULE(ConditionalUnet1D);

}  // namespace symm::nn
