#pragma once
// Named finite groups and the group spec strings: C<n>, D<n>, K4, S<n>, A<n>, Q8, T, O, I, products
// written GxH, and JSON files of generators.
#include <string>
#include <vector>

#include "symm/group/group.h"

namespace symm::group {

GroupPtr cyclic_group(int n);       // C<n>, order n, closed-form irreps
GroupPtr dihedral_group(int n);     // D<n>, order 2n, closed-form irreps
GroupPtr klein_group();             // K4
GroupPtr symmetric_group(int n);    // S<n>
GroupPtr alternating_group(int n);  // A<n>
GroupPtr quaternion_group();        // Q8
GroupPtr tetrahedral_group();       // T, rotations of the tetrahedron
GroupPtr octahedral_group();        // O, rotations of the cube
GroupPtr icosahedral_group();       // I, rotations of the icosahedron (order 60)

/// {"name": "...", "generators": [[[row], ...], ...]} or {"name": "...", "permutations": [[...], ...]}.
GroupPtr group_from_json(const std::string& path);
/// The same from the JSON text itself; a closure larger than max_order is refused.
GroupPtr group_from_json_text(const std::string& text, int max_order = kMaxOrder);

/// Any spec above; an existing file path is read as JSON. Results are cached per spec.
/// Throws std::invalid_argument with a one-line message on a bad spec, or one naming the limit (group.h)
/// when the spec asks for too large a group, before building anything.
GroupPtr make_group(const std::string& spec);
/// make_group without the cache, refusing specs of an order above max_order as well.
GroupPtr parse_group(const std::string& spec, int max_order = kMaxOrder);

/// A spec checked without building anything: its factors, written canonically ("C08xI" has C8 and I), and
/// the order of their product. Throws as make_group does on a bad spec or one above a limit or max_order.
struct GroupSpec {
  std::vector<std::string> factors;
  long order = 1;
};
GroupSpec parse_group_spec(const std::string& spec, int max_order = kMaxOrder);

}  // namespace symm::group
