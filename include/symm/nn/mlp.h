#pragma once
// eMLP: an equivariant multilayer perceptron (eLinear layers with hidden features in whole regular copies in
// the permutation basis, where a pointwise activation commutes with the group), and iMLP: an invariant MLP
// that reads an eMLP's features through invariants (the trivial coordinates and the norm of every other irrep
// copy) and finishes with an unconstrained linear head.
#include <optional>
#include <vector>

#include "symm/nn/activation.h"
#include "symm/nn/hidden_rep.h"
#include "symm/nn/linear.h"

namespace symm::nn {

struct eMLPOptions {
  eMLPOptions(Representation in_rep, Representation out_rep, std::vector<int64_t> hidden_units)
      : in_rep_(std::move(in_rep)), out_rep_(std::move(out_rep)), hidden_units_(std::move(hidden_units)) {}
  TORCH_ARG(Representation, in_rep);
  TORCH_ARG(Representation, out_rep);
  /// Width of each hidden layer, rounded up to whole regular copies of the group; at least one layer.
  TORCH_ARG(std::vector<int64_t>, hidden_units);
  /// Pointwise non-linearity after every hidden layer.
  TORCH_ARG(Activation, activation) = Activation::relu();
  /// Dropout after every activation.
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(bool, bias) = true;
  TORCH_ARG(std::string, init_scheme) = "xavier_normal";
  /// The regular representation whose copies make the hidden layers (hidden_rep.h); ours by default.
  TORCH_ARG(std::optional<Representation>, hidden_rep) = std::nullopt;
};

/// x ↦ eLinear ∘ (activation ∘ eLinear)^L (x); f(ρ_in(g)x) = ρ_out(g) f(x) for every g.
class eMLPImpl : public torch::nn::Cloneable<eMLPImpl>, public eModule {
 public:
  eMLPImpl(Representation in_rep, Representation out_rep, std::vector<int64_t> hidden_units)
      : eMLPImpl(eMLPOptions(std::move(in_rep), std::move(out_rep), std::move(hidden_units))) {}
  explicit eMLPImpl(eMLPOptions options);
  void reset() override;
  void reset_parameters();
  /// x (..., in_rep.size()) → (..., out_rep.size()).
  torch::Tensor forward(const torch::Tensor& x);
  /// The representations of the hidden layers (copies of hidden_rep).
  const std::vector<Representation>& hidden_reps() const { return hidden_reps_; }
  /// One regular copy as the hidden layers decompose it: options.hidden_rep or ours.
  const Representation& hidden_rep() const { return hidden_rep_; }
  void pretty_print(std::ostream& stream) const override;
  const Representation& in_rep() const override { return options.in_rep(); }
  const Representation& out_rep() const override { return options.out_rep(); }
  std::optional<Representation> foreign_decomposition() const override { return unless_ours(hidden_rep_); }

  eMLPOptions options;
  /// The hidden layers' maps, then the output map.
  torch::nn::ModuleList layers{nullptr};
  torch::nn::Dropout dropout{nullptr};

 private:
  Representation hidden_rep_;
  std::vector<Representation> hidden_reps_;
};
TORCH_MODULE(eMLP);

struct iMLPOptions {
  iMLPOptions(Representation in_rep, int64_t out_dim, std::vector<int64_t> hidden_units)
      : in_rep_(std::move(in_rep)), out_dim_(out_dim), hidden_units_(std::move(hidden_units)) {}
  TORCH_ARG(Representation, in_rep);
  /// Number of invariant outputs.
  TORCH_ARG(int64_t, out_dim);
  /// Widths of the equivariant backbone's layers; the last one is the width that is pooled.
  TORCH_ARG(std::vector<int64_t>, hidden_units);
  TORCH_ARG(Activation, activation) = Activation::relu();
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(bool, bias) = true;
  TORCH_ARG(std::string, init_scheme) = "xavier_normal";
  /// The regular representation whose copies make the backbone's layers and the pooled width, whose irrep
  /// copies are pooled (hidden_rep.h); ours by default.
  TORCH_ARG(std::optional<Representation>, hidden_rep) = std::nullopt;
};

/// x ↦ head(invariants(activation(eMLP(x)))): f(ρ_in(g)x) = f(x) for every g. The invariants of a feature
/// vector h are its coordinates on the trivial irrep copies and the norm of its component on every other
/// irrep copy; for m regular copies of G that is m·(number of irreps of the regular representation) values.
class iMLPImpl : public torch::nn::Cloneable<iMLPImpl>, public eModule {
 public:
  iMLPImpl(Representation in_rep, int64_t out_dim, std::vector<int64_t> hidden_units)
      : iMLPImpl(iMLPOptions(std::move(in_rep), out_dim, std::move(hidden_units))) {}
  explicit iMLPImpl(iMLPOptions options);
  void reset() override;
  void reset_parameters();
  /// x (..., in_rep.size()) → (..., out_dim).
  torch::Tensor forward(const torch::Tensor& x);
  /// The invariant features of h (..., pooled_rep.size()) → (..., number of irrep copies).
  torch::Tensor invariants(const torch::Tensor& h);
  void pretty_print(std::ostream& stream) const override;
  const Representation& in_rep() const override { return options.in_rep(); }
  /// out_dim copies of the trivial representation.
  const Representation& out_rep() const override { return out_rep_; }
  /// One regular copy as the pooled width decomposes it: options.hidden_rep or ours.
  const Representation& hidden_rep() const { return backbone->hidden_rep(); }
  std::optional<Representation> foreign_decomposition() const override { return unless_ours(hidden_rep()); }

  iMLPOptions options;
  eMLP backbone{nullptr};
  torch::nn::Linear head{nullptr};

 private:
  Representation out_rep_;
  Constants pooling_;     // Qᵀ of the pooled representation, (D, D)
  torch::Tensor blocks_;  // (D) index of the irrep copy of each isotypic coordinate
  torch::Tensor trivial_; // (copies) bool: the copy is a trivial irrep (kept signed, not as a norm)
};
TORCH_MODULE(iMLP);

}  // namespace symm::nn
