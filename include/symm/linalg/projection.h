#pragma once
// Linear algebra of symmetric vector spaces (torch-free): the orthogonal projector onto the invariant
// subspace, the Frobenius-orthogonal projection of a dense map onto Hom_G and its coefficients, and the
// least-squares solution constrained to Hom_G. Samples are rows: x is (N, D).
#include <Eigen/Dense>

#include "symm/group/representation.h"
#include "symm/linalg/hom_basis.h"

namespace symm::linalg {

/// P_inv = Q S Qᵀ, S selecting the trivial-irrep coordinates: the orthogonal projector onto
/// {v : ρ(g)v = v ∀g}. (D, D).
Eigen::MatrixXd invariant_orthogonal_projector(const Representation& rep);

/// Π(W), the closest map to W (rep_y.size × rep_x.size) in Hom_G(rep_x, rep_y); equal to the group average
/// (1/|G|) Σ_g ρ_y(g) W ρ_x(g)ᵀ, computed blockwise in isotypic coordinates.
Eigen::MatrixXd equiv_orthogonal_projection(const Eigen::MatrixXd& w, const Representation& rep_x,
                                            const Representation& rep_y);
/// The coefficients of Π(W) in HomBasis(rep_x, rep_y) (orthonormal, HomBasis's order).
Eigen::VectorXd equiv_orthogonal_projection_coefficients(const Eigen::MatrixXd& w, const Representation& rep_x,
                                                         const Representation& rep_y);
/// The dense map of coefficients in HomBasis(rep_x, rep_y).
Eigen::MatrixXd equiv_linear_map(const Eigen::VectorXd& theta, const Representation& rep_x, const Representation& rep_y);

/// argmin_{A ∈ Hom_G(rep_x, rep_y)} Σ_n ‖y_n − A x_n‖² for samples x (N, D_x), y (N, D_y): A (D_y, D_x).
/// Solved exactly per irrep type: with x's copies of irrep k as the columns of X_n (d × m_x), A acts as
/// X_n ↦ Σ_s Ψ_s X_n Θ_sᵀ, a linear least-squares problem in Θ over the N·d stacked rows. Where the data do not
/// determine A, the solution of least Frobenius norm.
Eigen::MatrixXd lstsq(const Eigen::MatrixXd& x, const Eigen::MatrixXd& y, const Representation& rep_x,
                      const Representation& rep_y);

}  // namespace symm::linalg
