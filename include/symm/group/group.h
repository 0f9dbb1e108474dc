#pragma once
// A finite group as a multiplication table over elements 0..n-1 (0 is the identity), with its real
// irreducible representations. Knows nothing about tensors.
#include <memory>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "symm/group/irrep.h"

namespace symm::group {

class Group;
using GroupPtr = std::shared_ptr<const Group>;

/// Limits that bound the work and memory of building a group from any input; exceeding one is refused
/// with std::invalid_argument naming it. Stored per group: the |G|² multiplication table and each irrep's
/// matrices on every element (|G| · #irreps small matrices).
constexpr int kMaxOrder = 2048;             // elements of any group
constexpr int kMaxNumericalOrder = 1024;    // groups whose irreps are computed numerically (all but C<n>, D<n>)
constexpr int kMaxGeneratorSize = 64;       // rows of a generator matrix, points of a permutation
constexpr int kMaxGenerators = 16;          // generators of a group given by matrices or permutations

class Group : public std::enable_shared_from_this<Group> {
 public:
  /// Closure of orthogonal generator matrices, breadth first in generator order (deterministic).
  /// `irrep_images` optionally gives closed-form irreps by their generator images; otherwise the
  /// real irreps are computed numerically. A closure larger than max_order (at most kMaxOrder) is refused.
  static GroupPtr from_generators(std::string name, const std::vector<Eigen::MatrixXd>& generators,
                                  const std::vector<IrrepImages>& irrep_images = {}, int max_order = kMaxOrder);
  /// Closure of permutations of 0..k-1, p(i) = image of i; composition (pq)(i) = p(q(i)).
  static GroupPtr from_permutations(std::string name, const std::vector<std::vector<int>>& permutations,
                                    int max_order = kMaxOrder);
  /// G x H with element (g, h) at index g * |H| + h.
  static GroupPtr direct_product(const GroupPtr& g, const GroupPtr& h);

  const std::string& name() const { return name_; }
  int order() const { return n_; }
  int mul(int a, int b) const { return table_[static_cast<size_t>(a) * n_ + b]; }
  int inv(int a) const { return inverse_[a]; }
  /// Element indices of the generators.
  const std::vector<int>& generators() const { return generators_; }
  /// Conjugacy classes, each sorted, in order of their smallest element.
  const std::vector<std::vector<int>>& classes() const { return classes_; }
  /// Real irreps in canonical order: trivial first, then by dimension, type, character.
  const std::vector<Irrep>& irreps() const { return irreps_; }
  const Irrep& irrep(int k) const { return irreps_.at(k); }

  /// Extends images of the generators to every element along the breadth-first tree (g = parent · s).
  /// Whether the result is a homomorphism is for the caller to check.
  std::vector<Eigen::MatrixXd> extend(const std::vector<Eigen::MatrixXd>& generator_images) const;

 private:
  Group(std::string name, int n, std::vector<int> table, std::vector<int> generators);
  void build_tree_and_classes();
  void set_irreps(std::vector<Irrep> irreps);

  std::string name_;
  int n_ = 0;
  std::vector<int> table_;
  std::vector<int> inverse_;
  std::vector<int> generators_;
  std::vector<int> parent_;            // parent_[g] · generators_[parent_gen_[g]] = g
  std::vector<int> parent_gen_;
  std::vector<int> tree_order_;        // breadth-first order of the tree
  std::vector<std::vector<int>> classes_;
  std::vector<Irrep> irreps_;
};

}  // namespace symm::group
