#pragma once
// Internal steps of building a group's real irreps.
#include <vector>

#include "symm/group/group.h"

namespace symm::group {

/// An irrep from its matrices on every element: checks orthogonality and the homomorphism property,
/// computes the character, the type and an orthonormal endomorphism basis.
Irrep irrep_from_matrices(const Group& g, std::vector<Eigen::MatrixXd> matrices);

/// All real irreps by the commutant method: eigenspaces of a generic symmetric matrix averaged into the
/// commutant of the regular representation are single irreducible copies.
std::vector<Irrep> numerical_irreps(const Group& g);

/// Canonical order (trivial first, then dimension, type, character descending), ids, and the check
/// Σ d²/S = |G| that the list is complete.
std::vector<Irrep> sort_and_validate_irreps(const Group& g, std::vector<Irrep> irreps);

}  // namespace symm::group
