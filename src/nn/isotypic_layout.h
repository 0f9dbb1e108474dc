#pragma once
// Internal: the features of a representation in isotypic coordinates, laid out so that every equivariant map
// between two such layouts is one GEMM per irrep on contiguous operands. Not installed.
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "symm/nn/module.h"

namespace symm::nn::detail {

/// z = Qᵀx for N tokens, stored features-first as a (D, N) tensor. Rows go by irrep (in the group's order),
/// then component a, then copy M: irrep k is a (d_k, n_k, N) block at rows [offset_k, offset_k + d_k·n_k).
/// An equivariant map then takes, per irrep, n_k_in copies to n_k_out copies: for an R-type irrep one
/// (n_out, n_in)·(n_in, d·N) product, for C and H types one (d·n_out, d·n_in)·(d·n_in, N) product.
///
/// The representation is split into m equal chunks of s features that do not mix (m regular copies in the
/// permutation basis have s = |G|; any representation is one chunk). The μ-th copy of an irrep inside chunk c
/// is copy M = μ·m + c, so the whole tensor is also (s, m, N) with the chunk as its middle axis: the basis
/// change of every chunk at once is one (s, s)·(s, m·N) product, and attention heads, which own whole chunks,
/// are slices of that axis.
class IsotypicLayout {
 public:
  struct Block {
    int irrep = 0, dim = 0, endo = 0;
    int64_t copies = 0;        // n_k = μ_k·m
    int64_t chunk_offset = 0;  // first row inside a chunk; the block starts at row chunk_offset·m
  };

  explicit IsotypicLayout(const Representation& rep);

  int64_t size() const { return s_ * m_; }
  int64_t chunk_size() const { return s_; }
  int64_t chunks() const { return m_; }
  const std::vector<Block>& blocks() const { return blocks_; }
  /// The block of irrep k, or nullptr when the representation does not contain it.
  const Block* block_of(int irrep) const;
  /// Copy M of the j-th occurrence of irrep k in rep.irreps().
  int64_t copy_index(int irrep, int j) const { return copy_index_.at(irrep).at(j); }

  /// (..., D) in the representation's basis → (D, N).
  torch::Tensor to_isotypic(const torch::Tensor& x) const;
  /// (D, N) → (..., D) of the given sizes.
  torch::Tensor from_isotypic(const torch::Tensor& z, c10::IntArrayRef sizes) const;
  /// (D, N) isotypic → (s, m·N) in each chunk's own basis (for regular copies in the permutation basis: the
  /// permuted coordinates, where pointwise activations commute with the group), and back.
  torch::Tensor to_chunk_basis(const torch::Tensor& z) const;
  torch::Tensor from_chunk_basis(const torch::Tensor& h) const;

  /// For eAffine on this representation: the position in rep.irreps() of the irrep copy of each row (int64, D).
  /// prefix.chunks, prefix.basis (P), prefix.copy_of_row and, with Fix(ρ) ≠ 0, prefix.fix_rows, prefix.fix_offset.
  void append_constants(NamedConstants& out, const std::string& prefix) const;
  const torch::Tensor& copy_of_row(const torch::Device& device) const { return constants_.get(device, torch::kFloat64)[1]; }
  /// A vector of Fix(ρ) from its coordinates f in the orthonormal basis rep.invariant_basis(): (D) isotypic,
  /// zero outside the trivial irrep's rows; undefined when f is.
  torch::Tensor invariant(const torch::Tensor& f) const;

 private:
  int64_t s_ = 0, m_ = 1;
  std::vector<Block> blocks_;
  std::vector<std::vector<int64_t>> copy_index_;  // per irrep of the group, per occurrence
  int64_t trivial_offset_ = -1, trivial_copies_ = 0;
  Constants constants_;  // P (s, s): chunk basis ← isotypic rows of a chunk; copy_of_row; Q_trivᵀ F (n, dim Fix)
};

}  // namespace symm::nn::detail
