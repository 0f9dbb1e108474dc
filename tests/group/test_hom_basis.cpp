// Hom_G bases: every element commutes with the group, projection is idempotent and orthogonal.
#include <gtest/gtest.h>

#include "symm/group/named.h"
#include "symm/group/random.h"
#include "symm/linalg/hom_basis.h"
#include "test_util.h"

using namespace symm::group;
using symm::test::random_matrix;
using symm::linalg::HomBasis;
using symm::linalg::InitScheme;

namespace {

const char* kHomSpecs[] = {"C1", "C5", "D8", "K4", "A4", "S4", "Q8", "I", "C2xD3"};

double commutation_error(const HomBasis& h, const Eigen::MatrixXd& w) {
  double err = 0;
  for (int g = 0; g < h.in_rep().group()->order(); ++g)
    err = std::max(err, (h.out_rep()(g) * w - w * h.in_rep()(g)).cwiseAbs().maxCoeff());
  return err;
}

class HomBasisTest : public ::testing::TestWithParam<const char*> {};

TEST_P(HomBasisTest, DimensionIsSumOfMultiplicityProductsTimesEndo) {
  const auto g = make_group(GetParam());
  const auto in = direct_sum(Representation::regular(g), Representation::trivial(g));
  const auto out = Representation::regular(g).copies(2);
  const HomBasis h(in, out);
  int expected = 0;
  const auto mi = in.multiplicities(), mo = out.multiplicities();
  for (size_t k = 0; k < mi.size(); ++k) expected += mi[k] * mo[k] * g->irrep(k).endo_dim();
  EXPECT_EQ(h.dim(), expected);
  // Hom_G(regular, regular) ≅ the group algebra: dimension |G|.
  EXPECT_EQ(HomBasis(Representation::regular(g), Representation::regular(g)).dim(), g->order());
}

TEST_P(HomBasisTest, EveryBasisElementCommutes) {
  const auto g = make_group(GetParam());
  const auto in = Representation::regular(g);
  const auto out = direct_sum(Representation::regular(g), Representation::trivial(g, 2));
  const HomBasis h(in, out);
  for (int i = 0; i < h.dim(); ++i) {
    Eigen::VectorXd e = Eigen::VectorXd::Zero(h.dim());
    e(i) = 1.0;
    const Eigen::MatrixXd w = h.synthesize(e);
    ASSERT_LT(commutation_error(h, w), 1e-10) << "basis element " << i;
    ASSERT_NEAR(w.norm(), 1.0, 1e-10) << "basis element " << i;
  }
}

TEST_P(HomBasisTest, ProjectionIsIdempotentAndOrthogonal) {
  const auto g = make_group(GetParam());
  const auto rep = Representation::regular(g).copies(2);
  const HomBasis h(rep, rep);
  const Eigen::MatrixXd w = random_matrix(rep.size(), rep.size(), 11);
  const Eigen::MatrixXd p = h.project(w);
  EXPECT_LT(commutation_error(h, p), 1e-10);
  EXPECT_LT((h.project(p) - p).cwiseAbs().maxCoeff(), 1e-10);
  // The residual is orthogonal to every equivariant map.
  const Eigen::MatrixXd other = h.synthesize(h.initial(InitScheme::xavier_normal, 5));
  EXPECT_NEAR(((w - p).array() * other.array()).sum(), 0.0, 1e-9);
  // Equivariant maps are fixed; coefficients round-trip.
  const Eigen::VectorXd theta = h.initial(InitScheme::kaiming_uniform, 3);
  EXPECT_LT((h.coefficients(h.synthesize(theta)) - theta).cwiseAbs().maxCoeff(), 1e-10);
  // Projection equals the group average (1/|G|) Σ ρ(g) W ρ(g)ᵀ.
  Eigen::MatrixXd avg = Eigen::MatrixXd::Zero(w.rows(), w.cols());
  for (int a = 0; a < g->order(); ++a) avg += rep(a) * w * rep(a).transpose();
  EXPECT_LT((avg / g->order() - p).cwiseAbs().maxCoeff(), 1e-10);
}

INSTANTIATE_TEST_SUITE_P(Named, HomBasisTest, ::testing::ValuesIn(kHomSpecs),
                         [](const auto& info) { return std::string(info.param); });

TEST(HomBasis, InitialisationMatchesTheSchemeVariance) {
  const auto g = make_group("D8");
  const auto rep = Representation::regular(g).copies(8);
  const HomBasis h(rep, rep);
  const double n = rep.size();
  struct Case { InitScheme scheme; double var; };
  for (const auto& c : {Case{InitScheme::xavier_uniform, 2.0 / (2 * n)}, Case{InitScheme::kaiming_normal, 2.0 / n}}) {
    const Eigen::MatrixXd w = h.synthesize(h.initial(c.scheme, 1));
    const double var = w.squaredNorm() / w.size();
    EXPECT_NEAR(var / c.var, 1.0, 0.15) << symm::linalg::to_string(c.scheme);
  }
}

TEST(HomBasis, ZeroDimensionalAndMismatchedInputs) {
  const auto g = make_group("C4");
  const HomBasis h(Representation::irrep(g, 1), Representation::trivial(g));
  EXPECT_EQ(h.dim(), 0);
  EXPECT_THROW(h.synthesize(Eigen::VectorXd::Zero(3)), std::invalid_argument);
  EXPECT_THROW(HomBasis(Representation::regular(g), Representation::regular(make_group("C5"))), std::invalid_argument);
  EXPECT_THROW(symm::linalg::parse_init_scheme("orthogonal"), std::invalid_argument);
}

}  // namespace
