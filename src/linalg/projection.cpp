#include "symm/linalg/projection.h"

#include <stdexcept>
#include <string>

namespace symm::linalg {

namespace {

std::string shape(const Eigen::MatrixXd& m) { return std::to_string(m.rows()) + "x" + std::to_string(m.cols()); }

}  // namespace

Eigen::MatrixXd invariant_orthogonal_projector(const Representation& rep) {
  const Eigen::MatrixXd basis = rep.invariant_basis();
  return basis * basis.transpose();
}

Eigen::MatrixXd equiv_orthogonal_projection(const Eigen::MatrixXd& w, const Representation& rep_x,
                                            const Representation& rep_y) {
  return HomBasis(rep_x, rep_y).project(w);
}

Eigen::VectorXd equiv_orthogonal_projection_coefficients(const Eigen::MatrixXd& w, const Representation& rep_x,
                                                         const Representation& rep_y) {
  return HomBasis(rep_x, rep_y).coefficients(w);
}

Eigen::MatrixXd equiv_linear_map(const Eigen::VectorXd& theta, const Representation& rep_x, const Representation& rep_y) {
  return HomBasis(rep_x, rep_y).synthesize(theta);
}

Eigen::MatrixXd lstsq(const Eigen::MatrixXd& x, const Eigen::MatrixXd& y, const Representation& rep_x,
                      const Representation& rep_y) {
  if (x.cols() != rep_x.size() || y.cols() != rep_y.size() || x.rows() != y.rows()) {
    throw std::invalid_argument("symm::linalg::lstsq: expected x (N, " + std::to_string(rep_x.size()) + ") and y (N, " +
                                std::to_string(rep_y.size()) + ") with the same N, got x " + shape(x) + " and y " +
                                shape(y));
  }
  const HomBasis basis(rep_x, rep_y);
  const Eigen::Index n = x.rows();
  Eigen::VectorXd theta(basis.dim());
  for (const auto& b : basis.blocks()) {
    const auto& psi = rep_x.group()->irrep(b.irrep).endomorphisms;
    const Eigen::MatrixXd xk = x * b.q_in, yk = y * b.q_out;  // (N, m·d), copy-major
    // Rows (n, r): features (Ψ_s X_n)[r, j] at column s·m_in + j, targets Y_n[r, i].
    Eigen::MatrixXd features(n * b.dim, b.endo * b.m_in), targets(n * b.dim, b.m_out);
    for (Eigen::Index s = 0; s < n; ++s) {
      const Eigen::MatrixXd xs = Eigen::Map<const Eigen::MatrixXd>(xk.row(s).eval().data(), b.dim, b.m_in);
      targets.middleRows(s * b.dim, b.dim) = Eigen::Map<const Eigen::MatrixXd>(yk.row(s).eval().data(), b.dim, b.m_out);
      for (int e = 0; e < b.endo; ++e) features.block(s * b.dim, e * b.m_in, b.dim, b.m_in) = psi[e] * xs;
    }
    // Least Frobenius norm where underdetermined: the basis is orthonormal, so ‖A‖_F = ‖θ‖.
    const Eigen::MatrixXd phi = features.completeOrthogonalDecomposition().solve(targets);  // (S·m_in, m_out)
    for (int e = 0; e < b.endo; ++e)
      for (int i = 0; i < b.m_out; ++i)
        for (int j = 0; j < b.m_in; ++j) theta(b.offset + (e * b.m_out + i) * b.m_in + j) = phi(e * b.m_in + j, i);
  }
  return basis.synthesize(theta);
}

}  // namespace symm::linalg
