#pragma once
// Internal: an equivariant linear map executed in isotypic coordinates, as block GEMMs on the Hom_G
// coefficients, without synthesising the dense weight. Not installed.
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "symm/linalg/hom_basis.h"
#include "symm/nn/module.h"

namespace symm::nn::detail {

/// Smallest s dividing `size` such that every column of every matrix is supported inside one aligned
/// chunk of s rows [c·s, (c+1)·s): the representation is then a sum of size/s chunks that do not mix.
int chunk_size(int size, const std::vector<const Eigen::MatrixXd*>& qs);
/// The chunk of `s` rows holding columns [col, col + d) of q, or -1 when they spread over several.
int chunk_of(const Eigen::MatrixXd& q, Eigen::Index col, int d, int s);

/// For representations made of equal chunks that do not mix (regular copies in the permutation basis, for
/// instance), each chunk of s features has the same isotypic basis P (s × s); any representation is one
/// chunk. Then, per token,
///   y = Σ_k Q_out,k (Σ_s Θ_s ⊗ Ψ_s) Q_in,kᵀ x
/// runs as: one (S·s, s)·(s, N·m_in) product into the coordinates Ψ_s Q_in,jᵀ x of every irrep copy j and
/// endomorphism s; per group of irreps of equal shape, S·μ_in·μ_out bmm of (count, d·N, m_in)·(count, m_in,
/// m_out) on strided views, summed (μ = copies of the irrep per chunk); one (N·m_out, s)·(s, s) product back.
/// Multiply-adds per token: about m_in·m_out·Σ_k d_k³/S_k plus the two basis changes, against D_in·D_out.
/// The coefficients enter the bmm through a gather, so autograd reaches them directly.
class IsotypicLinear {
 public:
  /// The plan for `basis`: over the smallest equal chunks of both representations, or over one chunk each
  /// (then the basis changes are dense D×D products) when the chunks differ.
  static std::shared_ptr<const IsotypicLinear> build(const symm::linalg::HomBasis& basis);

  /// W x + b for x (..., D_in) from the coefficients θ (and a dense bias b (D_out) or undefined).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& theta, const torch::Tensor& bias) const;

  /// Multiply-adds per token (basis changes included).
  int64_t multiply_adds() const { return multiply_adds_; }

 private:
  struct Shape {
    int64_t count, dim, endo, mu_in, mu_out;  // irreps of this shape; dim, endomorphisms, copies per chunk
    int64_t in_offset, out_offset;             // first column in the extended input / output coordinates
  };
  IsotypicLinear() = default;
  /// The plan over chunks of s_in and s_out features, or nullptr when the chunks differ.
  static std::shared_ptr<const IsotypicLinear> build(const symm::linalg::HomBasis& basis, int s_in, int s_out);

  int64_t m_in_ = 0, m_out_ = 0, s_in_ = 0, s_out_ = 0, width_in_ = 0;
  std::vector<Shape> shapes_;
  std::vector<torch::Tensor> index_;  // per shape: (count, S·μ_in·m_in, μ_out·m_out) indices into θ
  const std::vector<torch::Tensor>& index_on(const torch::Device& device) const;
  mutable std::mutex mutex_;          // guards index_on_
  mutable std::map<std::string, std::vector<torch::Tensor>> index_on_;
  Constants constants_;               // P_in extended (s_in, width_in), P_outᵀ (s_out, s_out)
  int64_t multiply_adds_ = 0;
};

}  // namespace symm::nn::detail
