#pragma once
// The hidden channels of eMLP, iMLP, eTimeCNNEncoder and eConditionalUnet1D: whole copies of the regular
// representation in its permutation basis (where a pointwise activation commutes with the group), by default
// in our irrep decomposition. A model converted from symm_learning takes escnn's (hidden_rep): the same
// matrices, hence the same Hom_G, activations and Fix(ρ), but other irrep copies where an irrep repeats, and
// the per-copy parameters (norm and FiLM scales, iMLP's pooled norms) belong to those copies.
#include <cstdint>
#include <optional>
#include <string>

#include "symm/group/representation.h"

namespace symm::nn {

using symm::group::Representation;

/// The regular representation whose copies make `module`'s hidden channels: Representation::regular(g), or
/// hidden_rep, which must have its matrices (one copy, the permutation basis) in any irrep decomposition.
/// Throws c10::Error naming the module, what was expected and what came.
Representation hidden_regular(const std::string& module, const symm::group::GroupPtr& g,
                              const std::optional<Representation>& hidden_rep);

/// Copies of `regular` enough for `units` channels (at least one copy).
Representation regular_copies(const Representation& regular, int64_t units);

/// Whether rep is copies of Representation::regular in our decomposition (the same irreps in the same order on
/// the same coordinates).
bool is_our_decomposition(const Representation& rep);

/// rep where its decomposition is not ours, none otherwise: what eModule::foreign_decomposition reports.
std::optional<Representation> unless_ours(const Representation& rep);

}  // namespace symm::nn
