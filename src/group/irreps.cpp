#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>
#include <stdexcept>

#include "irreps_internal.h"
#include "symm/group/random.h"

namespace symm::group {

namespace {

constexpr double kTol = 1e-8;

// Frobenius-orthonormal basis of End_G(ρ) = {E : ρ(g)E = Eρ(g)}, starting from the identity:
// eigenvectors of the averaging projector (1/|G|) Σ ρ(g) ⊗ ρ(g) with eigenvalue 1, Gram–Schmidt after I/√d.
std::vector<Eigen::MatrixXd> endomorphism_basis(const std::vector<Eigen::MatrixXd>& mats, int expected) {
  const auto d = mats.front().rows();
  const auto d2 = d * d;
  Eigen::MatrixXd avg = Eigen::MatrixXd::Zero(d2, d2);
  for (const auto& m : mats)
    for (Eigen::Index i = 0; i < d; ++i)
      for (Eigen::Index j = 0; j < d; ++j) avg.block(i * d, j * d, d, d) += m(i, j) * m;
  avg /= static_cast<double>(mats.size());
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(0.5 * (avg + avg.transpose()));
  std::vector<Eigen::VectorXd> candidates{Eigen::MatrixXd::Identity(d, d).reshaped() / std::sqrt(double(d))};
  for (Eigen::Index k = d2 - 1; k >= 0 && eig.eigenvalues()(k) > 0.5; --k) candidates.push_back(eig.eigenvectors().col(k));
  std::vector<Eigen::MatrixXd> basis;
  std::vector<Eigen::VectorXd> kept;
  for (auto v : candidates) {
    for (int pass = 0; pass < 2; ++pass)
      for (const auto& u : kept) v -= u.dot(v) * u;
    if (v.norm() < 1e-6) continue;
    v.normalize();
    kept.push_back(v);
    basis.push_back(v.reshaped(d, d));
  }
  if (static_cast<int>(basis.size()) != expected) {
    std::ostringstream msg;
    msg << "irrep endomorphism algebra has dimension " << basis.size() << ", expected " << expected;
    throw std::logic_error(msg.str());
  }
  return basis;
}

bool character_less(const Irrep& a, const Irrep& b) {
  if (a.dim != b.dim) return a.dim < b.dim;
  if (a.type != b.type) return a.type < b.type;
  for (Eigen::Index g = 0; g < a.character.size(); ++g)
    if (std::abs(a.character(g) - b.character(g)) > 1e-6) return a.character(g) > b.character(g);
  return false;
}

}  // namespace

Irrep irrep_from_matrices(const Group& g, std::vector<Eigen::MatrixXd> mats) {
  const int n = g.order();
  const auto d = mats.front().rows();
  for (int a = 0; a < n; ++a) {
    const double err = (mats[a].transpose() * mats[a] - Eigen::MatrixXd::Identity(d, d)).cwiseAbs().maxCoeff();
    if (err > kTol) throw std::logic_error("irrep of " + g.name() + " is not orthogonal at element " + std::to_string(a));
    for (int s : g.generators()) {
      const double herr = (mats[a] * mats[s] - mats[g.mul(a, s)]).cwiseAbs().maxCoeff();
      if (herr > kTol) throw std::logic_error("irrep of " + g.name() + " is not a homomorphism");
    }
  }
  Irrep irrep;
  irrep.dim = static_cast<int>(d);
  irrep.character.resize(n);
  for (int a = 0; a < n; ++a) irrep.character(a) = mats[a].trace();
  const double norm2 = irrep.character.squaredNorm() / n;
  const long s = std::lround(norm2);
  if (std::abs(norm2 - s) > 1e-6 || (s != 1 && s != 2 && s != 4) || d % s != 0) {
    std::ostringstream msg;
    msg << "representation of " << g.name() << " of dim " << d << " is not irreducible over R (<χ,χ> = " << norm2 << ")";
    throw std::logic_error(msg.str());
  }
  irrep.type = static_cast<IrrepType>(s);
  irrep.endomorphisms = endomorphism_basis(mats, static_cast<int>(s));
  irrep.matrices = std::move(mats);
  return irrep;
}

std::vector<Irrep> numerical_irreps(const Group& g) {
  const int n = g.order();
  if (n > kMaxNumericalOrder) {
    throw std::invalid_argument("group '" + g.name() + "' of order " + std::to_string(n) +
                                ": real irreps are computed numerically only up to order " + std::to_string(kMaxNumericalOrder) +
                                " (kMaxNumericalOrder)");
  }
  for (std::uint64_t attempt = 0; attempt < 8; ++attempt) {
    Rng rng(0x53594d4dULL + attempt);
    Eigen::MatrixXd s(n, n);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j <= i; ++j) s(i, j) = s(j, i) = rng.uniform(-1.0, 1.0);
    // H = (1/|G|) Σ_g R(g) S R(g)ᵀ commutes with the left regular action, so H(a, b) = h(a⁻¹b).
    Eigen::VectorXd h = Eigen::VectorXd::Zero(n);
    for (int c = 0; c < n; ++c)
      for (int x = 0; x < n; ++x) h(c) += s(x, g.mul(x, c));
    h /= n;
    Eigen::MatrixXd hm(n, n);
    for (int a = 0; a < n; ++a)
      for (int b = 0; b < n; ++b) hm(a, b) = h(g.mul(g.inv(a), b));
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(hm);
    const Eigen::VectorXd& lam = eig.eigenvalues();
    const double tol = 1e-9 * std::max(1.0, lam.cwiseAbs().maxCoeff());
    std::vector<Irrep> found;
    std::vector<int> copies;  // clusters seen per found irrep
    bool ok = true;
    for (int start = 0; start < n && ok;) {
      int end = start + 1;
      while (end < n && lam(end) - lam(end - 1) < tol) ++end;
      const Eigen::MatrixXd v = eig.eigenvectors().middleCols(start, end - start);
      start = end;
      // Character of the eigenspace: χ(g) = Σ_a V[a,:]·V[g⁻¹a,:].
      Eigen::VectorXd chi(n);
      for (int x = 0; x < n; ++x) {
        double t = 0;
        for (int a = 0; a < n; ++a) t += v.row(a).dot(v.row(g.mul(g.inv(x), a)));
        chi(x) = t;
      }
      auto it = std::find_if(found.begin(), found.end(),
                             [&](const Irrep& r) { return (r.character - chi).cwiseAbs().maxCoeff() < 1e-6; });
      if (it != found.end()) { ++copies[it - found.begin()]; continue; }
      std::vector<Eigen::MatrixXd> mats(n);
      for (int x = 0; x < n; ++x) {
        Eigen::MatrixXd moved(v.rows(), v.cols());
        for (int a = 0; a < n; ++a) moved.row(a) = v.row(g.mul(g.inv(x), a));
        mats[x] = v.transpose() * moved;
      }
      try {
        found.push_back(irrep_from_matrices(g, std::move(mats)));
        copies.push_back(1);
      } catch (const std::logic_error&) {
        ok = false;  // two irreducible copies shared an eigenvalue: draw another matrix
      }
    }
    for (size_t k = 0; ok && k < found.size(); ++k) ok = copies[k] * found[k].endo_dim() == found[k].dim;
    if (ok) return found;
  }
  throw std::runtime_error("could not separate the irreps of " + g.name() + " numerically");
}

std::vector<Irrep> sort_and_validate_irreps(const Group& g, std::vector<Irrep> irreps) {
  std::stable_sort(irreps.begin(), irreps.end(), character_less);
  long total = 0;
  for (size_t k = 0; k < irreps.size(); ++k) {
    irreps[k].id = std::to_string(k);
    total += static_cast<long>(irreps[k].dim) * irreps[k].dim / irreps[k].endo_dim();
  }
  if (total != g.order() || irreps.empty() || !irreps.front().is_trivial()) {
    throw std::logic_error("irreps of " + g.name() + " are incomplete: Σ d²/S = " + std::to_string(total) +
                           ", |G| = " + std::to_string(g.order()));
  }
  return irreps;
}

}  // namespace symm::group
