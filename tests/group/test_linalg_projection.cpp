// symm::linalg projections, least squares and isotypic signals against direct dense computations: group
// averages over every element, the null space of the commutation constraints, Q's columns read off directly.
#include <gtest/gtest.h>

#include <unsupported/Eigen/KroneckerProduct>

#include "symm/group/named.h"
#include "symm/group/random.h"
#include "symm/linalg/isotypic_signal.h"
#include "symm/linalg/projection.h"
#include "test_util.h"

using namespace symm::group;
using symm::test::random_matrix;
namespace la = symm::linalg;

namespace {

Representation scrambled(const Representation& rep, std::uint64_t seed) {
  const Eigen::MatrixXd q = Eigen::HouseholderQR<Eigen::MatrixXd>(random_matrix(rep.size(), rep.size(), seed)).householderQ();
  return rep.change_basis(q, rep.name() + "'");
}

GroupPtr group_of(const std::string& spec) {
  // "perm": S3 given by two permutations, its irreps computed numerically.
  if (spec == "perm") return Group::from_permutations("perm", {{1, 2, 0}, {1, 0, 2}});
  return make_group(spec);
}

// In: base ⊕ the last irrep ⊕ trivial; out: 2 × the last irrep ⊕ base ⊕ trivial, base the regular
// representation (every irrep once for groups above order 8, keeping the dense reference small). Both in random
// bases, so no structure of Q survives; the last irrep is 2-dimensional for the C-type groups, 4 for Q8's H type.
struct Reps {
  GroupPtr g;
  Representation x, y;
};
Reps reps_of(const std::string& spec) {
  const auto g = group_of(spec);
  const int last = static_cast<int>(g->irreps().size()) - 1;
  Representation base = Representation::regular(g);
  if (g->order() > 8) {
    base = Representation::irrep(g, 0);
    for (int k = 1; k <= last; ++k) base = direct_sum(base, Representation::irrep(g, k));
  }
  const auto x = direct_sum(direct_sum(base, Representation::irrep(g, last)), Representation::trivial(g));
  const auto y = direct_sum(direct_sum(Representation::irrep(g, last).copies(2), base), Representation::trivial(g));
  return {g, scrambled(x, 11), scrambled(y, 12)};
}

Eigen::MatrixXd group_average(const Eigen::MatrixXd& w, const Representation& x, const Representation& y) {
  Eigen::MatrixXd sum = Eigen::MatrixXd::Zero(w.rows(), w.cols());
  for (int g = 0; g < x.group()->order(); ++g) sum += y(g) * w * x(g).transpose();
  return sum / x.group()->order();
}

double commutation_error(const Eigen::MatrixXd& a, const Representation& x, const Representation& y) {
  double err = 0;
  for (int g = 0; g < x.group()->order(); ++g) err = std::max(err, (y(g) * a - a * x(g)).cwiseAbs().maxCoeff());
  return err;
}

// Orthonormal basis (columns, vec(A) column-major) of {A : ρ_y(s) A = A ρ_x(s)} over the generators s, from
// the null space of the Kronecker form of the constraints: no HomBasis involved.
Eigen::MatrixXd dense_hom_basis(const Representation& x, const Representation& y) {
  const auto dx = x.size(), dy = y.size();
  const auto& gens = x.group()->generators();
  Eigen::MatrixXd c(static_cast<Eigen::Index>(gens.size()) * dx * dy, dx * dy);
  for (size_t i = 0; i < gens.size(); ++i)
    c.middleRows(static_cast<Eigen::Index>(i) * dx * dy, dx * dy) =
        Eigen::kroneckerProduct(Eigen::MatrixXd::Identity(dx, dx), y(gens[i])) -
        Eigen::kroneckerProduct(x(gens[i]).transpose(), Eigen::MatrixXd::Identity(dy, dy));
  // Null space of C: the eigenvectors of CᵀC of eigenvalue 0 (the others are O(1) for orthogonal ρ).
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(c.transpose() * c);
  Eigen::Index null = 0;
  while (null < eig.eigenvalues().size() && eig.eigenvalues()(null) < 1e-8) ++null;
  return eig.eigenvectors().leftCols(null);
}

class LinalgTest : public ::testing::TestWithParam<const char*> {};

TEST_P(LinalgTest, ProjectionIsTheGroupAverage) {
  const auto r = reps_of(GetParam());
  const Eigen::MatrixXd w = random_matrix(r.y.size(), r.x.size(), 1);
  const Eigen::MatrixXd p = la::equiv_orthogonal_projection(w, r.x, r.y);
  EXPECT_LT((p - group_average(w, r.x, r.y)).cwiseAbs().maxCoeff(), 1e-10);
  // The coefficients synthesise the same map, in a space of the dimension the constraints leave.
  const Eigen::VectorXd theta = la::equiv_orthogonal_projection_coefficients(w, r.x, r.y);
  EXPECT_EQ(theta.size(), dense_hom_basis(r.x, r.y).cols());
  EXPECT_LT((la::equiv_linear_map(theta, r.x, r.y) - p).cwiseAbs().maxCoeff(), 1e-10);
  // An orthonormal basis: the coefficients of Π(W) are its inner products with the basis maps.
  EXPECT_NEAR(theta.norm(), p.norm(), 1e-10);
}

TEST_P(LinalgTest, InvariantProjectorIsTheAverageOfTheGroup) {
  const auto r = reps_of(GetParam());
  Eigen::MatrixXd avg = Eigen::MatrixXd::Zero(r.x.size(), r.x.size());
  for (int g = 0; g < r.g->order(); ++g) avg += r.x(g);
  avg /= r.g->order();
  EXPECT_LT((la::invariant_orthogonal_projector(r.x) - avg).cwiseAbs().maxCoeff(), 1e-10);
}

TEST_P(LinalgTest, LstsqIsTheConstrainedMinimiser) {
  const auto r = reps_of(GetParam());
  const Eigen::Index n = 3;  // few samples: the unconstrained problem is underdetermined, the constrained one not
  const Eigen::MatrixXd x = random_matrix(n, r.x.size(), 2), y = random_matrix(n, r.y.size(), 3);
  const Eigen::MatrixXd a = la::lstsq(x, y, r.x, r.y);
  EXPECT_LT(commutation_error(a, r.x, r.y), 1e-10);
  // Dense reference: vec(A Xᵀ) = (X ⊗ I) vec(A), A = Σ c_i B_i over the null-space basis.
  const Eigen::MatrixXd basis = dense_hom_basis(r.x, r.y);
  const Eigen::MatrixXd design = Eigen::kroneckerProduct(x, Eigen::MatrixXd::Identity(r.y.size(), r.y.size())) * basis;
  const Eigen::MatrixXd yt = y.transpose();
  const Eigen::VectorXd c = design.completeOrthogonalDecomposition().solve(Eigen::Map<const Eigen::VectorXd>(yt.data(), yt.size()));
  const Eigen::VectorXd vec_a = basis * c;
  EXPECT_LT((a - Eigen::Map<const Eigen::MatrixXd>(vec_a.data(), r.y.size(), r.x.size())).cwiseAbs().maxCoeff(), 1e-9);
}

TEST_P(LinalgTest, LstsqRecoversAnEquivariantMapAndAgreesWithTheProjectedSolutionOnOrbits) {
  const auto r = reps_of(GetParam());
  const Eigen::MatrixXd a0 = la::equiv_orthogonal_projection(random_matrix(r.y.size(), r.x.size(), 4), r.x, r.y);
  const Eigen::MatrixXd x = random_matrix(2 * r.x.size(), r.x.size(), 5);
  EXPECT_LT((la::lstsq(x, x * a0.transpose(), r.x, r.y) - a0).cwiseAbs().maxCoeff(), 1e-9);
  // On data closed under the group the unconstrained solution is itself equivariant, so projecting it (what
  // symm_learning's lstsq does) gives the constrained minimiser.
  const Eigen::MatrixXd x0 = random_matrix(2, r.x.size(), 6), y0 = random_matrix(2, r.y.size(), 7);
  const int order = r.g->order();
  Eigen::MatrixXd xo(2 * order, r.x.size()), yo(2 * order, r.y.size());
  for (int g = 0; g < order; ++g) {
    xo.middleRows(2 * g, 2) = x0 * r.x(g).transpose();
    yo.middleRows(2 * g, 2) = y0 * r.y(g).transpose();
  }
  const Eigen::MatrixXd free = xo.completeOrthogonalDecomposition().solve(yo).transpose();
  EXPECT_LT((la::lstsq(xo, yo, r.x, r.y) - la::equiv_orthogonal_projection(free, r.x, r.y)).cwiseAbs().maxCoeff(), 1e-9);
}

TEST_P(LinalgTest, IrrepRadiiAreInvariantNormsOfTheCopies) {
  const auto r = reps_of(GetParam());
  const Eigen::MatrixXd x = random_matrix(4, r.x.size(), 8);
  const Eigen::MatrixXd radii = la::irrep_radii(x, r.x);
  ASSERT_EQ(radii.cols(), static_cast<Eigen::Index>(r.x.irreps().size()));
  EXPECT_LT((radii.rowwise().squaredNorm() - x.rowwise().squaredNorm()).cwiseAbs().maxCoeff(), 1e-10);
  for (int g = 0; g < r.g->order(); ++g)
    ASSERT_LT((la::irrep_radii(x * r.x(g).transpose(), r.x) - radii).cwiseAbs().maxCoeff(), 1e-10) << "g = " << g;
  // Copy 0 is the first block of Q's columns.
  const int d0 = r.g->irrep(r.x.irreps()[0]).dim;
  EXPECT_NEAR(radii(1, 0), (x.row(1) * r.x.change_of_basis().leftCols(d0)).norm(), 1e-12);
}

TEST_P(LinalgTest, IrreducibleSubspacesOfAnIsotypicSignal) {
  const auto g = group_of(GetParam());
  const int last = static_cast<int>(g->irreps().size()) - 1, d = g->irrep(last).dim;
  const auto rep = scrambled(Representation::irrep(g, last).copies(3), 9);
  const Eigen::MatrixXd x = random_matrix(5, rep.size(), 10);
  const Eigen::MatrixXd z = la::isotypic_signal2irreducible_subspaces(x, rep);
  ASSERT_EQ(z.rows(), 5 * d);
  ASSERT_EQ(z.cols(), 3);
  const Eigen::MatrixXd spectral = x * rep.change_of_basis();
  for (int n = 0; n < 5; ++n)
    for (int c = 0; c < 3; ++c)
      for (int i = 0; i < d; ++i) ASSERT_NEAR(z(n * d + i, c), spectral(n, c * d + i), 1e-12);
  // The Gram matrix of the copies is invariant: g mixes coordinates within each copy only.
  for (int e = 0; e < g->order(); ++e) {
    const Eigen::MatrixXd zg = la::isotypic_signal2irreducible_subspaces(x * rep(e).transpose(), rep);
    ASSERT_LT((zg.transpose() * zg - z.transpose() * z).cwiseAbs().maxCoeff(), 1e-10);
  }
}

INSTANTIATE_TEST_SUITE_P(Groups, LinalgTest, ::testing::Values("C2", "D4", "C8", "Q8", "O", "perm"));

TEST(Linalg, BadInputIsNamed) {
  const auto g = make_group("D4");
  const auto reg = Representation::regular(g), triv = Representation::trivial(g);
  auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message([&] { la::lstsq(Eigen::MatrixXd(4, 8), Eigen::MatrixXd(3, 1), reg, triv); }).find("x (N, 8) and y (N, 1)"),
            std::string::npos);
  EXPECT_NE(message([&] { la::irrep_radii(Eigen::MatrixXd(2, 7), reg); }).find("expected x (N, 8)"), std::string::npos);
  EXPECT_NE(message([&] { la::isotypic_signal2irreducible_subspaces(Eigen::MatrixXd(2, 8), reg); }).find("single irrep type"),
            std::string::npos);
  EXPECT_NE(message([&] { la::irreducible_subspaces(Eigen::MatrixXd(2, 1), triv, 2); }).find("no copy of irrep 2"),
            std::string::npos);
  EXPECT_NE(message([&] { la::equiv_orthogonal_projection(Eigen::MatrixXd(8, 7), reg, reg); }).find("expected 8x8"),
            std::string::npos);
}

}  // namespace
