#pragma once
// IrrepSubspaceNormPooling: invariant features from an equivariant vector, the Euclidean norm of its
// component on every irrep copy, r_i = |Q_iᵀ x| (Q_i the columns of the change of basis for copy i).
// ρ(g) acts on each copy's coordinates by an orthogonal irrep matrix, so every r_i is invariant.
#include "symm/nn/module.h"

namespace symm::nn {

struct IrrepSubspaceNormPoolingOptions {
  IrrepSubspaceNormPoolingOptions(Representation in_rep) : in_rep_(std::move(in_rep)) {}
  TORCH_ARG(Representation, in_rep);
};

class IrrepSubspaceNormPoolingImpl : public torch::nn::Cloneable<IrrepSubspaceNormPoolingImpl>, public eModule {
 public:
  explicit IrrepSubspaceNormPoolingImpl(Representation in_rep)
      : IrrepSubspaceNormPoolingImpl(IrrepSubspaceNormPoolingOptions(std::move(in_rep))) {}
  explicit IrrepSubspaceNormPoolingImpl(IrrepSubspaceNormPoolingOptions options);
  void reset() override;
  void reset_parameters() {}
  /// x (..., in_rep.size()) → (..., number of irrep copies), in the order of in_rep.irreps().
  torch::Tensor forward(const torch::Tensor& x);
  void pretty_print(std::ostream& stream) const override;
  const Representation& in_rep() const override { return options.in_rep(); }
  /// One trivial copy per irrep copy of in_rep.
  const Representation& out_rep() const override { return out_rep_; }

  IrrepSubspaceNormPoolingOptions options;

 private:
  Representation out_rep_;
  Constants constants_;    // Q (D, D)
  torch::Tensor copy_of_;  // int64 (D): irrep copy of each column of Q
};
TORCH_MODULE(IrrepSubspaceNormPooling);

namespace functional {
/// The norm of x's component on every irrep copy of rep: x (..., rep.size()) → (..., copies).
torch::Tensor irrep_radii(const torch::Tensor& x, const Representation& rep);
}  // namespace functional

}  // namespace symm::nn
