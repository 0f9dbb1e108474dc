#pragma once
// Internal: an equivariant linear map executed in isotypic coordinates, as block GEMMs on the Hom_G
// coefficients, without synthesising the dense weight. Not installed.
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "symm/linalg/hom_basis.h"
#include "symm/nn/module.h"

#include "isotypic_layout.h"

namespace symm::nn::detail {

/// Smallest s dividing `size` such that every column of every matrix is supported inside one aligned
/// chunk of s rows [c·s, (c+1)·s): the representation is then a sum of size/s chunks that do not mix.
int chunk_size(int size, const std::vector<const Eigen::MatrixXd*>& qs);
/// The chunk of `s` rows holding columns [col, col + d) of q, or -1 when they spread over several.
int chunk_of(const Eigen::MatrixXd& q, Eigen::Index col, int d, int s);
/// Copies of one irrep (columns of q, d each) in a representation of `chunks` equal chunks of s rows:
/// copy[c][μ] is the copy that is the μ-th inside chunk c. Empty when a copy spreads over chunks, or when the
/// chunks differ in their copies or in the columns of those copies.
std::vector<std::vector<int>> copies_by_chunk(const Eigen::MatrixXd& q, int dim, int s, int chunks);

/// W between two isotypic layouts: per irrep, y_k = Σ_s (Θ_s ⊗ Ψ_s) z_k. Irreps of one shape (dimension,
/// type, copies) that follow each other form one group and one bmm:
/// - R type (Ψ_0 = I/√d): (count·d, n_out, n_in)·(count·d, n_in, N), the coefficients shared by the d components;
/// - C and H types: (count, d·n_out, d·n_in)·(count, d·n_in, N) with the blocks Σ_s Ψ_s ⊗ Θ_s built from the
///   coefficients (no more multiply-adds than the structured product when d = S, as for every irrep of a
///   cyclic group or of Q8).
/// The coefficients enter through a gather, so autograd reaches them directly; nothing of size D_out·D_in
/// is ever formed.
class IsotypicMap {
 public:
  IsotypicMap(const symm::linalg::HomBasis& basis, std::shared_ptr<const IsotypicLayout> in,
              std::shared_ptr<const IsotypicLayout> out);

  /// z (D_in, N) → W z + b (D_out, N); `bias` (D_out) isotypic or undefined. With chunk_count >= 0 only the
  /// output chunks [chunk_begin, chunk_begin + chunk_count): rows of the layout of that many chunks.
  torch::Tensor forward(const torch::Tensor& z, const torch::Tensor& theta, const torch::Tensor& bias,
                        int64_t chunk_begin = 0, int64_t chunk_count = -1) const;
  /// What forward multiplies by, made from the coefficients and the bias once (an eval forward caches it):
  /// per group its weight (batch, rows, columns), undefined for a group without input copies, and its bias
  /// (batch, rows, 1) or undefined.
  std::vector<torch::Tensor> operands(const torch::Tensor& theta, const torch::Tensor& bias, int64_t chunk_begin = 0,
                                      int64_t chunk_count = -1) const;
  /// forward with the operands of the same chunk range.
  torch::Tensor forward(const torch::Tensor& z, const std::vector<torch::Tensor>& operands, int64_t chunk_count = -1) const;

  /// For the operators (functional::isotypic_weights, isotypic_blocks), all output chunks: per group g with
  /// input copies prefix.index.<k>, prefix.endomorphisms.<k> (k counts those groups), prefix.dims (one per such
  /// group); for every group prefix.in_rows (-1 without input copies) and prefix.out_rows, int64. The isotypic
  /// bias splits along out_rows, each piece viewed (weight.size(0), -1, 1).
  void append_constants(NamedConstants& out, const std::string& prefix) const;
  /// Multiply-adds per token of forward (the block products; basis changes are the layouts').
  int64_t multiply_adds() const { return multiply_adds_; }
  const IsotypicLayout& in() const { return *in_; }
  const IsotypicLayout& out() const { return *out_; }

 private:
  struct Group {
    int64_t count, dim, endo, n_in, n_out;  // irreps, their dimension, type and copies on each side
    int64_t in_row, out_chunk_row;          // first input row; first output row inside a chunk
    bool zero;                               // no input copies: the output rows are zero
    int constant;                            // first of this group's constants (index, then scale or Ψ)
  };
  std::shared_ptr<const IsotypicLayout> in_, out_;
  std::vector<Group> groups_;
  Constants constants_;
  int64_t multiply_adds_ = 0;
};

}  // namespace symm::nn::detail
