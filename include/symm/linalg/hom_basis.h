#pragma once
// Basis of Hom_G(ρ_in, ρ_out) = {W : ρ_out(g) W = W ρ_in(g) ∀g}. In isotypic coordinates W is block
// diagonal over irreps; the block of irrep k is an m_out × m_in grid of d×d matrices Σ_s θ_s Ψ_s over the
// irrep's orthonormal endomorphism basis Ψ. W = Q_out · blockdiag_k(Θ_k ⊗ Ψ_k) · Q_inᵀ.
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "symm/group/representation.h"

namespace symm::linalg {

using symm::group::Representation;

enum class InitScheme { xavier_uniform, xavier_normal, kaiming_uniform, kaiming_normal };

InitScheme parse_init_scheme(const std::string& name);
const char* to_string(InitScheme s);

class HomBasis {
 public:
  /// One irrep shared by both representations.
  struct Block {
    int irrep = 0;
    int dim = 0;                  // d_k
    int endo = 0;                 // S_k
    int m_in = 0, m_out = 0;      // copies in each representation
    int offset = 0;               // first coefficient; θ[offset + (s * m_out + i) * m_in + j]
    Eigen::MatrixXd q_in, q_out;  // columns of Q for this irrep, copy-major: (size, m * d)
    int size() const { return endo * m_out * m_in; }
  };

  HomBasis(const Representation& in, const Representation& out);

  int dim() const { return dim_; }
  const std::vector<Block>& blocks() const { return blocks_; }
  const Representation& in_rep() const { return in_; }
  const Representation& out_rep() const { return out_; }

  /// Dense W (out.size × in.size) from coefficients.
  Eigen::MatrixXd synthesize(const Eigen::VectorXd& theta) const;
  /// Coefficients of the Frobenius-orthogonal projection of W onto Hom_G (the basis is orthonormal).
  Eigen::VectorXd coefficients(const Eigen::MatrixXd& w) const;
  Eigen::MatrixXd project(const Eigen::MatrixXd& w) const { return synthesize(coefficients(w)); }
  /// Standard deviation of each coefficient so that W has the scheme's variance, with fans counted per
  /// irrep block (fan_in = m_in·d, fan_out = m_out·d).
  Eigen::VectorXd init_std(InitScheme scheme) const;
  /// Coefficients drawn from the scheme with a seeded generator.
  Eigen::VectorXd initial(InitScheme scheme, std::uint64_t seed) const;

 private:
  Representation in_, out_;
  std::vector<Block> blocks_;
  int dim_ = 0;
};

}  // namespace symm::linalg
