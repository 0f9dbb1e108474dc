#pragma once
// eConv1d and eConvTranspose1d: 1-D (transposed) convolutions over time whose every tap commutes with the
// group acting on the channels: input (B, C_in, T) or (C_in, T) as torch's Conv1d, C_in = in_rep.size().
// Each tap W_k ∈ Hom_G(ρ_in, ρ_out) is learned through its coefficients in the HomBasis that eLinear uses,
// the bias lies in Fix(ρ_out). Time-axis operations (stride, padding of any mode, dilation) act on every
// channel alike, so they commute with the channel action.
#include <functional>
#include <memory>
#include <string>

#include "symm/linalg/hom_basis.h"
#include "symm/nn/module.h"

namespace symm::nn {

struct eConv1dOptions {
  eConv1dOptions(Representation in_rep, Representation out_rep, int64_t kernel_size = 3)
      : in_rep_(std::move(in_rep)), out_rep_(std::move(out_rep)), kernel_size_(kernel_size) {}
  /// Representation of the input channels.
  TORCH_ARG(Representation, in_rep);
  /// Representation of the output channels.
  TORCH_ARG(Representation, out_rep);
  TORCH_ARG(int64_t, kernel_size);
  TORCH_ARG(int64_t, stride) = 1;
  /// Samples added at both ends of the time axis (torch's padding=N; 'valid' is 0).
  TORCH_ARG(int64_t, padding) = 0;
  /// Transposed convolution only: samples added at the end of the output.
  TORCH_ARG(int64_t, output_padding) = 0;
  TORCH_ARG(int64_t, dilation) = 1;
  /// Channel groups as torch's: in_rep and out_rep must each be `groups` copies of one representation,
  /// side by side in the channel basis.
  TORCH_ARG(int64_t, groups) = 1;
  /// Invariant bias (none when out_rep has no trivial irrep).
  TORCH_ARG(bool, bias) = true;
  /// zeros, reflect, replicate or circular (eConv1d); zeros only for eConvTranspose1d, as torch.
  TORCH_ARG(std::string, padding_mode) = "zeros";
  /// xavier_uniform, xavier_normal, kaiming_uniform or kaiming_normal (per tap, fans per irrep block).
  TORCH_ARG(std::string, init_scheme) = "xavier_uniform";
};
using eConvTranspose1dOptions = eConv1dOptions;

namespace detail {
/// What both convolutions share: the taps' coefficients, their synthesis into a dense kernel, the bias.
class eConvBase : public eModule {
 public:
  const Representation& in_rep() const override { return options.in_rep(); }
  const Representation& out_rep() const override { return options.out_rep(); }
  /// Basis of Hom_G(σ_in, σ_out) for one channel group (σ = the representation itself when groups == 1).
  const symm::linalg::HomBasis& basis() const { return *basis_; }
  /// Dense taps (groups·K, C_out/groups, C_in/groups), differentiable in weight_dof.
  torch::Tensor taps() const;
  /// Sets the coefficients to the orthogonal projection of dense taps (groups·K, C_out/groups, C_in/groups)
  /// onto Hom_G and the bias to the projection of a dense (C_out) bias onto Fix(ρ_out).
  void set_taps(const torch::Tensor& taps, const torch::Tensor& bias = {});

  eConv1dOptions options;
  /// Coefficients of the taps in basis(): (groups·K, basis().dim()); row g·K + k is tap k of group g.
  torch::Tensor weight_dof;
  /// Coordinates of the bias in an orthonormal basis of Fix(ρ_out); undefined without bias.
  torch::Tensor bias_dof;

 protected:
  explicit eConvBase(eConv1dOptions options) : options(std::move(options)) {}
  /// Validates the options, builds the basis and registers the parameters on `self`.
  void build(torch::nn::Module& self, const char* name, bool transposed);
  void init_parameters();
  /// Dense bias (C_out) or undefined.
  torch::Tensor dense_bias() const;
  /// The dense kernel from `make` (cached in eval when autograd needs nothing from the coefficients).
  torch::Tensor kernel(bool training, const std::function<torch::Tensor()>& make);
  void check_input(const char* name, const torch::Tensor& x) const;
  void print(std::ostream& stream, const char* name) const;

 private:
  std::shared_ptr<const symm::linalg::HomBasis> basis_;
  Constants synthesis_;  // (C_out/g · C_in/g, dof): column i is the basis map of coefficient i, flattened
  Constants fix_;        // Fix(ρ_out) basis (C_out, n_fix)
  EvalCache kernel_cache_;
};
}  // namespace detail

/// y = Σ_k W_k x[t·stride + k·dilation − padding] + b, W_k ∈ Hom_G(ρ_in, ρ_out), b ∈ Fix(ρ_out):
/// conv(ρ_in(g)x) = ρ_out(g) conv(x) for every g.
class eConv1dImpl : public torch::nn::Cloneable<eConv1dImpl>, public detail::eConvBase {
 public:
  eConv1dImpl(Representation in_rep, Representation out_rep, int64_t kernel_size = 3)
      : eConv1dImpl(eConv1dOptions(std::move(in_rep), std::move(out_rep), kernel_size)) {}
  explicit eConv1dImpl(eConv1dOptions options);
  void reset() override;
  void reset_parameters();
  torch::Tensor forward(const torch::Tensor& x);
  /// Dense kernel (C_out, C_in/groups, K) as torch's Conv1d weight.
  torch::Tensor weight();
  torch::Tensor bias() { return dense_bias(); }
  void pretty_print(std::ostream& stream) const override { print(stream, "eConv1d"); }
};
TORCH_MODULE(eConv1d);

/// The adjoint of eConv1d along time (torch's ConvTranspose1d), every tap still in Hom_G(ρ_in, ρ_out).
class eConvTranspose1dImpl : public torch::nn::Cloneable<eConvTranspose1dImpl>, public detail::eConvBase {
 public:
  eConvTranspose1dImpl(Representation in_rep, Representation out_rep, int64_t kernel_size = 3)
      : eConvTranspose1dImpl(eConv1dOptions(std::move(in_rep), std::move(out_rep), kernel_size)) {}
  explicit eConvTranspose1dImpl(eConvTranspose1dOptions options);
  void reset() override;
  void reset_parameters();
  torch::Tensor forward(const torch::Tensor& x);
  /// Dense kernel (C_in, C_out/groups, K) as torch's ConvTranspose1d weight.
  torch::Tensor weight();
  torch::Tensor bias() { return dense_bias(); }
  void pretty_print(std::ostream& stream) const override { print(stream, "eConvTranspose1d"); }
};
TORCH_MODULE(eConvTranspose1d);

namespace functional {
/// torch's conv1d with `options`' stride, padding (of its padding_mode), dilation and groups, after the
/// checks eConv1d makes: x (B, C_in, T) or (C_in, T), weight (C_out, C_in/groups, K), bias (C_out) or none.
/// Equivariant when every tap of the weight is in Hom_G and the bias in Fix(ρ_out).
torch::Tensor econv1d(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                      const eConv1dOptions& options);
/// torch's conv_transpose1d likewise: weight (C_in, C_out/groups, K).
torch::Tensor econv_transpose1d(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                                const eConvTranspose1dOptions& options);
}  // namespace functional

}  // namespace symm::nn
