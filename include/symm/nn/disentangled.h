#pragma once
// Change2DisentangledBasis: x̂ = Mx, the coordinates of x in the isotypic (disentangled) basis, with the
// irrep copies grouped by irrep (trivial first, copies of one irrep adjacent, in_rep's order otherwise).
// out_rep is the direct sum of the irreps in that order with the identity change of basis, so
// out_rep(g)·M = M·in_rep(g).
#include "symm/nn/module.h"

namespace symm::nn {

struct Change2DisentangledBasisOptions {
  Change2DisentangledBasisOptions(Representation in_rep) : in_rep_(std::move(in_rep)) {}
  TORCH_ARG(Representation, in_rep);
  /// Learn the change of basis (a torch Linear initialised to M; equivariant only at initialisation), as
  /// symm_learning's learnable=True.
  TORCH_ARG(bool, learnable) = false;
};

class Change2DisentangledBasisImpl : public torch::nn::Cloneable<Change2DisentangledBasisImpl>, public eModule {
 public:
  explicit Change2DisentangledBasisImpl(Representation in_rep)
      : Change2DisentangledBasisImpl(Change2DisentangledBasisOptions(std::move(in_rep))) {}
  explicit Change2DisentangledBasisImpl(Change2DisentangledBasisOptions options);
  void reset() override;
  void reset_parameters();
  /// x (..., D) → (..., D) in the isotypic basis; x itself when in_rep is already in that basis.
  torch::Tensor forward(const torch::Tensor& x);
  /// M (D, D), float64.
  torch::Tensor change_of_basis() const;
  void pretty_print(std::ostream& stream) const override;
  const Representation& in_rep() const override { return options.in_rep(); }
  const Representation& out_rep() const override { return out_rep_; }

  Change2DisentangledBasisOptions options;
  /// With learnable: the map, weight initialised to M.
  torch::nn::Linear linear{nullptr};

 private:
  Representation out_rep_;
  Constants constants_;  // M (D, D)
  bool identity_ = false;
};
TORCH_MODULE(Change2DisentangledBasis);

}  // namespace symm::nn
