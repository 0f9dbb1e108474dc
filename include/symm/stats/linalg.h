#pragma once
// symm::linalg on torch tensors: projection onto Hom_G and its coefficients, the dense map of coefficients,
// the equivariant least-squares solution, irrep radii and irreducible subspaces. Batched over leading
// dimensions where symm_learning's are, differentiable, on the input's device and dtype.
#include <torch/torch.h>

#include "symm/group/representation.h"
#include "symm/linalg/hom_basis.h"
#include "symm/nn/module.h"

namespace symm::stats {

using symm::group::Representation;

/// Π(W) for W (..., D_y, D_x): the closest maps in Hom_G(rep_x, rep_y).
torch::Tensor equiv_orthogonal_projection(const torch::Tensor& w, const Representation& rep_x, const Representation& rep_y);
/// The coefficients of Π(W) in HomBasis(rep_x, rep_y): (..., dim Hom_G).
torch::Tensor equiv_orthogonal_projection_coefficients(const torch::Tensor& w, const Representation& rep_x,
                                                       const Representation& rep_y);
/// The dense maps (..., D_y, D_x) of coefficients (..., dim Hom_G).
torch::Tensor equiv_linear_map(const torch::Tensor& theta, const Representation& rep_x, const Representation& rep_y);

/// symm::linalg::lstsq for x (N, D_x), y (N, D_y): A (D_y, D_x). Computed in float64 on the CPU (not
/// differentiable), returned in x's dtype and device.
torch::Tensor lstsq(const torch::Tensor& x, const torch::Tensor& y, const Representation& rep_x, const Representation& rep_y);

/// ‖x̂_i‖ of each irreducible copy, copies in rep.irreps() order: (..., D) → (..., #copies).
torch::Tensor irrep_radii(const torch::Tensor& x, const Representation& rep);
/// x (N, D) of a representation of one irrep type (m copies of dimension d) → (N·d, m), copies as columns.
torch::Tensor isotypic_signal2irreducible_subspaces(const torch::Tensor& x, const Representation& rep);

/// Hom_G(rep_x, rep_y) as tensors: Π and the coefficients in the HomBasis order, blockwise in isotypic
/// coordinates (for modules that project repeatedly: the constants are built once per device and dtype).
class HomProjector {
 public:
  HomProjector(const Representation& rep_x, const Representation& rep_y);
  int64_t dim() const { return basis_.dim(); }
  const symm::linalg::HomBasis& basis() const { return basis_; }
  /// (..., D_y, D_x) → (..., dim).
  torch::Tensor coefficients(const torch::Tensor& w) const;
  /// (..., dim) → (..., D_y, D_x).
  torch::Tensor synthesize(const torch::Tensor& theta) const;
  torch::Tensor project(const torch::Tensor& w) const { return synthesize(coefficients(w)); }

 private:
  symm::linalg::HomBasis basis_;
  /// Per block: q_out (D_y, m_out·d), q_in (D_x, m_in·d), Ψ (S, d, d).
  symm::nn::Constants constants_;
};

}  // namespace symm::stats
