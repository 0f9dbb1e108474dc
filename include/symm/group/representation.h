#pragma once
// An orthogonal representation ρ(g) = Q (⊕_i ψ_{k_i}(g)) Qᵀ of a finite group: a change of basis Q and
// the list of irreps it decomposes into.
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "symm/group/group.h"

namespace symm::group {

/// Largest representation (rows of ρ(g)) that is built: its change of basis is a dense D×D matrix.
constexpr int kMaxRepresentationSize = 2048;

class Representation {
 public:
  Representation() = default;
  /// Q must be orthogonal and of size Σ dim ψ_{k_i}.
  Representation(GroupPtr group, std::vector<int> irreps, Eigen::MatrixXd change_of_basis, std::string name = "");

  static Representation trivial(GroupPtr g, int copies = 1);
  static Representation irrep(GroupPtr g, int k);
  /// Left regular representation in its permutation basis: ρ(g) e_h = e_{gh}.
  static Representation regular(GroupPtr g);
  /// Decomposes a user representation given by its images of the group's generators. Throws
  /// std::invalid_argument naming the generator when it is not orthogonal or not a homomorphism.
  static Representation from_generators(GroupPtr g, const std::vector<Eigen::MatrixXd>& images, std::string name = "");
  /// Parses "4*regular + 2*trivial + irrep(3)" (terms: regular, trivial, irrep(k), optional "m*").
  static Representation parse(GroupPtr g, const std::string& spec);

  const GroupPtr& group() const { return group_; }
  int size() const { return static_cast<int>(q_.rows()); }
  const std::string& name() const { return name_; }
  /// Irrep index of each block, in block order.
  const std::vector<int>& irreps() const { return irreps_; }
  const Eigen::MatrixXd& change_of_basis() const { return q_; }
  /// Copies of each irrep of the group.
  std::vector<int> multiplicities() const;

  Eigen::MatrixXd operator()(int g) const;
  Eigen::VectorXd character() const;

  /// The same matrices ρ(g) with the blocks ordered by irrep (trivial first) and copies adjacent.
  Representation isotypic_order() const;
  /// ρ'(g) = P ρ(g) Pᵀ for an orthogonal P.
  Representation change_basis(const Eigen::MatrixXd& p, std::string name = "") const;
  /// m copies of this representation, side by side.
  Representation copies(int m) const;
  /// Orthonormal basis (columns) of the fixed space {v : ρ(g)v = v ∀g}.
  Eigen::MatrixXd invariant_basis() const;
  /// Whether this is isomorphic to m copies of the regular representation; m is returned through copies.
  bool is_regular_copies(int* copies = nullptr) const;

  /// Stable text identifying group, irreps and (rounded) matrices of the generators.
  std::string fingerprint() const;
  /// Stable text identifying the irrep decomposition: the irrep ids in block order ("[0,1,2]", or "3x[0,1,2]"
  /// for repeats) and a hash of Q rounded to 1e-6. Two decompositions of the same matrices differ here when
  /// their irrep copies (or the bases within them) do, which fingerprint() cannot see.
  std::string decomposition_fingerprint() const;

  friend Representation direct_sum(const Representation& a, const Representation& b);

 private:
  struct Blocks {};  // Q is a block diagonal of orthogonal matrices: orthogonal without checking
  Representation(Blocks, GroupPtr group, std::vector<int> irreps, Eigen::MatrixXd change_of_basis, std::string name);
  /// Throws naming kMaxRepresentationSize when `size` rows exceed it.
  static void check_size(const GroupPtr& g, long size, const std::string& what);

  GroupPtr group_;
  std::vector<int> irreps_;
  Eigen::MatrixXd q_;
  std::string name_;
};

Representation direct_sum(const Representation& a, const Representation& b);

/// Whether two representations have the same group and the same matrices (to tol) on every generator.
bool same_representation(const Representation& a, const Representation& b, double tol = 1e-9);

/// Whether two representations have the same group, the same irreps in the same order and the same change of
/// basis (to tol): the same irrep copies on the same coordinates, so per-copy parameters mean the same.
bool same_decomposition(const Representation& a, const Representation& b, double tol = 1e-9);

}  // namespace symm::group
