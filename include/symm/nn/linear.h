#pragma once
// eLinear: a linear map that commutes with the group, learned through its Hom_G coefficients, and
// InvariantBias: a learnable vector of the fixed space Fix(ρ).
#include <string>

#include "symm/linalg/hom_basis.h"
#include "symm/nn/module.h"

namespace symm::nn {

struct eLinearOptions {
  eLinearOptions(Representation in_rep, Representation out_rep) : in_rep_(std::move(in_rep)), out_rep_(std::move(out_rep)) {}
  /// Representation of the input features.
  TORCH_ARG(Representation, in_rep);
  /// Representation of the output features.
  TORCH_ARG(Representation, out_rep);
  /// Whether to add a learnable invariant bias (identity when out_rep has no trivial irrep).
  TORCH_ARG(bool, bias) = true;
  /// xavier_uniform, xavier_normal, kaiming_uniform or kaiming_normal, with fans counted per irrep block.
  TORCH_ARG(std::string, init_scheme) = "xavier_uniform";
};

/// y = W x + b with ρ_out(g) W = W ρ_in(g) and b ∈ Fix(ρ_out). In training W is synthesised from
/// `weight_dof` on every forward (autograd reaches the coefficients); in eval it is cached and the forward
/// is exactly torch::nn::functional::linear with the cached weight.
class eLinearImpl : public torch::nn::Cloneable<eLinearImpl>, public eModule {
 public:
  eLinearImpl(Representation in_rep, Representation out_rep) : eLinearImpl(eLinearOptions(std::move(in_rep), std::move(out_rep))) {}
  explicit eLinearImpl(eLinearOptions options);

  void reset() override;
  void reset_parameters();
  torch::Tensor forward(const torch::Tensor& x);
  /// Dense weight (out, in), synthesised with autograd in training, cached in eval.
  torch::Tensor weight();
  /// Dense bias (out), or an undefined tensor without bias.
  torch::Tensor bias();
  /// Sets the coefficients to the orthogonal projection of a dense (out, in) weight (and bias) onto Hom_G.
  void set_dense(const torch::Tensor& weight, const torch::Tensor& bias = {});
  void pretty_print(std::ostream& stream) const override;

  const Representation& in_rep() const override { return options.in_rep(); }
  const Representation& out_rep() const override { return options.out_rep(); }
  const symm::linalg::HomBasis& basis() const { return *basis_; }

  eLinearOptions options;
  /// Coefficients of W in the Hom_G basis.
  torch::Tensor weight_dof;
  /// Coefficients of the bias in an orthonormal basis of Fix(ρ_out); undefined without bias.
  torch::Tensor bias_dof;

 private:
  torch::Tensor synthesize_weight() const;

  std::shared_ptr<const symm::linalg::HomBasis> basis_;
  // Blocks batched by shape: for each group, Ψ (nb, S, d, d), Q_out (nb, D_out, m_out d), Q_in (nb, D_in, m_in d);
  // then the Fix(ρ_out) basis (D_out, n_fix).
  struct Batch { int offset, count, endo, dim, m_out, m_in; };
  std::vector<Batch> batches_;
  Constants constants_;
  EvalCache weight_cache_, bias_cache_;
};
TORCH_MODULE(eLinear);

struct InvariantBiasOptions {
  InvariantBiasOptions(Representation rep) : rep_(std::move(rep)) {}
  /// Representation of the features the bias is added to.
  TORCH_ARG(Representation, rep);
};

/// x + b with b ∈ Fix(ρ), learned through its coordinates on the trivial isotypic block.
class InvariantBiasImpl : public torch::nn::Cloneable<InvariantBiasImpl>, public eModule {
 public:
  explicit InvariantBiasImpl(InvariantBiasOptions options);
  void reset() override;
  void reset_parameters();
  torch::Tensor forward(const torch::Tensor& x);
  /// The dense bias vector (size of the representation); zeros when Fix(ρ) = 0.
  torch::Tensor bias();
  void pretty_print(std::ostream& stream) const override;
  const Representation& in_rep() const override { return options.rep(); }
  const Representation& out_rep() const override { return options.rep(); }

  InvariantBiasOptions options;
  /// Coordinates in an orthonormal basis of Fix(ρ).
  torch::Tensor bias_dof;

 private:
  Constants constants_;
};
TORCH_MODULE(InvariantBias);

}  // namespace symm::nn
