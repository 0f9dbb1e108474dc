#pragma once
// eAffine: y = Q·diag(α, one scale per irrep copy)·Qᵀ·x + b with b ∈ Fix(ρ). Scaling a whole irrep copy
// commutes with the group; the scales and the bias are learned or supplied at call time (FiLM style).
#include "symm/nn/module.h"

namespace symm::nn {

namespace detail {
class IsotypicLayout;
}

struct eAffineOptions {
  eAffineOptions(Representation rep) : rep_(std::move(rep)) {}
  /// Representation of the features.
  TORCH_ARG(Representation, rep);
  /// Learn the scales and bias; when false they must be given to forward.
  TORCH_ARG(bool, learnable) = true;
  /// Whether there is an invariant bias at all.
  TORCH_ARG(bool, bias) = true;
};

class eAffineImpl : public torch::nn::Cloneable<eAffineImpl>, public eModule {
 public:
  explicit eAffineImpl(Representation rep) : eAffineImpl(eAffineOptions(std::move(rep))) {}
  explicit eAffineImpl(eAffineOptions options);
  void reset() override;
  void reset_parameters();
  /// x (..., D). scale (..., num_copies) and bias (..., num_fix) override the learned values when given
  /// (FiLM); they broadcast against x's leading dimensions.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& scale = {}, const torch::Tensor& bias = {});
  /// The learned map on z (D, N) in `layout`, the isotypic layout of the representation: a scale per row.
  torch::Tensor forward_isotypic(const torch::Tensor& z, const detail::IsotypicLayout& layout);
  /// Number of irrep copies (scales) and the dimension of Fix(ρ) (bias coordinates).
  int64_t num_copies() const;
  int64_t num_fix() const;
  /// Dense (D, D) scaling matrix and (D) bias for the learned values (cached in eval); the bias is undefined
  /// without one. Both require learnable(true).
  torch::Tensor scale_matrix();
  torch::Tensor bias_vector();
  /// Whether the scaling is elementwise in the original basis (each channel lies in one irrep copy).
  bool is_diagonal() const { return diagonal_; }
  /// What forward takes, by name: change_of_basis Q (D, D), fix F (D, dim Fix(ρ)), copy_of (D, int64: the
  /// irrep copy of each channel when diagonal, else of each column of Q), diagonal (bool): y = x·s[copy_of]
  /// + F·b when diagonal, else y = ((x·Q)·s[copy_of])·Qᵀ + F·b.
  NamedConstants functional_constants() const;
  /// Sets the learned values from a dense per-channel scale and bias where the representation allows it
  /// (each irrep copy gets the mean of its channels' scales; the bias is projected onto Fix(ρ)).
  void set_dense(const torch::Tensor& weight, const torch::Tensor& bias = {});
  void pretty_print(std::ostream& stream) const override;
  const Representation& in_rep() const override { return options.rep(); }
  const Representation& out_rep() const override { return options.rep(); }

  eAffineOptions options;
  /// One scale per irrep copy, initialised to 1; undefined when not learnable.
  torch::Tensor scale_dof;
  /// Coordinates of the bias in an orthonormal basis of Fix(ρ), initialised to 0; undefined when not
  /// learnable, without bias, or when Fix(ρ) = 0.
  torch::Tensor bias_dof;

 private:
  // Scales (..., num_copies) expanded to (..., D): per channel when diagonal_, else per column of Q.
  torch::Tensor expand(const torch::Tensor& scale);
  // The learned scales per channel (diagonal_ only), cached in eval.
  torch::Tensor channel_scale();
  torch::Tensor synthesize_scale_matrix() const;
  void check_film(const char* what, const torch::Tensor& t, int64_t size, const torch::Tensor& x) const;

  Constants constants_;    // Q (D, D), then the Fix(ρ) basis F (D, num_fix)
  int64_t num_fix_ = 0;
  bool diagonal_ = false;  // Q·diag·Qᵀ is diagonal in the original basis: scale elementwise
  torch::Tensor copy_of_;  // int64 (D): irrep copy of each channel (diagonal_) or of each column of Q
  EvalCache scale_cache_, bias_cache_;
};
TORCH_MODULE(eAffine);

}  // namespace symm::nn
