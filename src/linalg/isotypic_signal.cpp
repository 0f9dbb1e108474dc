#include "symm/linalg/isotypic_signal.h"

#include <stdexcept>
#include <string>

namespace symm::linalg {

namespace {

void check_signal(const char* what, const Eigen::MatrixXd& x, const Representation& rep) {
  if (x.cols() != rep.size()) {
    throw std::invalid_argument(std::string("symm::linalg::") + what + ": expected x (N, " + std::to_string(rep.size()) +
                                ") for " + rep.name() + ", got " + std::to_string(x.rows()) + "x" +
                                std::to_string(x.cols()));
  }
}

}  // namespace

Eigen::MatrixXd irreducible_subspaces(const Eigen::MatrixXd& x, const Representation& rep, int irrep) {
  check_signal("irreducible_subspaces", x, rep);
  const auto& g = *rep.group();
  if (irrep < 0 || irrep >= static_cast<int>(g.irreps().size()) || rep.multiplicities()[irrep] == 0) {
    throw std::invalid_argument("symm::linalg::irreducible_subspaces: " + rep.name() + " holds no copy of irrep " +
                                std::to_string(irrep));
  }
  const int d = g.irrep(irrep).dim;
  std::vector<Eigen::Index> starts;
  Eigen::Index offset = 0;
  for (int k : rep.irreps()) {
    if (k == irrep) starts.push_back(offset);
    offset += g.irrep(k).dim;
  }
  const auto m = static_cast<Eigen::Index>(starts.size());
  Eigen::MatrixXd z(x.rows() * d, m);
  for (Eigen::Index c = 0; c < m; ++c) {
    const Eigen::MatrixXd coords = x * rep.change_of_basis().middleCols(starts[c], d);  // (N, d)
    // Row n·d + r of column c: coordinate r of sample n.
    Eigen::Map<Eigen::MatrixXd>(z.col(c).data(), d, x.rows()) = coords.transpose();
  }
  return z;
}

Eigen::MatrixXd isotypic_signal2irreducible_subspaces(const Eigen::MatrixXd& x, const Representation& rep) {
  const auto m = rep.multiplicities();
  int types = 0, irrep = 0;
  for (size_t k = 0; k < m.size(); ++k)
    if (m[k] > 0) ++types, irrep = static_cast<int>(k);
  if (types != 1) {
    throw std::invalid_argument("symm::linalg::isotypic_signal2irreducible_subspaces: expected a representation of a "
                                "single irrep type (one isotypic subspace), got " + rep.name() + " with " +
                                std::to_string(types) + " types");
  }
  return irreducible_subspaces(x, rep, irrep);
}

Eigen::MatrixXd irrep_radii(const Eigen::MatrixXd& x, const Representation& rep) {
  check_signal("irrep_radii", x, rep);
  const Eigen::MatrixXd spectral = x * rep.change_of_basis();  // rows Qᵀ x_n
  const auto& g = *rep.group();
  Eigen::MatrixXd r(x.rows(), static_cast<Eigen::Index>(rep.irreps().size()));
  Eigen::Index offset = 0;
  for (size_t i = 0; i < rep.irreps().size(); ++i) {
    const int d = g.irrep(rep.irreps()[i]).dim;
    r.col(i) = spectral.middleCols(offset, d).rowwise().norm();
    offset += d;
  }
  return r;
}

}  // namespace symm::linalg
