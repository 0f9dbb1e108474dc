#pragma once
// A signal seen through the isotypic decomposition of its representation (torch-free): the coordinates of
// each irreducible copy, Q_kᵀ x, and their Euclidean norms. Samples are rows: x is (N, D).
#include <Eigen/Dense>

#include "symm/group/representation.h"

namespace symm::linalg {

using symm::group::Representation;

/// The copies of irrep k in x (N, D) as columns: Z (N·d_k, m_k) with Z[n·d_k + r, c] the r-th coordinate of
/// copy c of sample n (Q's columns of that copy). Throws when rep holds no copy of k.
Eigen::MatrixXd irreducible_subspaces(const Eigen::MatrixXd& x, const Representation& rep, int irrep);
/// For a representation of a single irrep type (one isotypic subspace), its irreducible subspaces.
/// Throws naming the irreps when rep has several types.
Eigen::MatrixXd isotypic_signal2irreducible_subspaces(const Eigen::MatrixXd& x, const Representation& rep);
/// r[n, i] = ‖x̂_{n,i}‖, the norm of the i-th irreducible copy of sample n, copies in rep.irreps() order. (N, #copies).
Eigen::MatrixXd irrep_radii(const Eigen::MatrixXd& x, const Representation& rep);

}  // namespace symm::linalg
