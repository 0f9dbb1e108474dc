// Representations: regular, direct sums, decomposition of user representations, isotypic order.
#include <gtest/gtest.h>

#include "symm/group/named.h"
#include "symm/group/random.h"
#include "symm/group/representation.h"

using namespace symm::group;

namespace {

const char* kRepSpecs[] = {"C1", "C5", "C8", "D3", "D8", "K4", "A4", "S4", "Q8", "T", "O", "I", "C2xD3", "C3xC4"};

Eigen::MatrixXd random_orthogonal(int n, std::uint64_t seed) {
  Rng rng(seed);
  Eigen::MatrixXd a(n, n);
  for (Eigen::Index i = 0; i < a.size(); ++i) a.data()[i] = rng.normal();
  return Eigen::HouseholderQR<Eigen::MatrixXd>(a).householderQ();
}

double homomorphism_error(const Representation& r) {
  const auto& g = *r.group();
  double err = 0;
  std::vector<Eigen::MatrixXd> m(g.order());
  for (int a = 0; a < g.order(); ++a) m[a] = r(a);
  for (int a = 0; a < g.order(); ++a)
    for (int b = 0; b < g.order(); ++b) err = std::max(err, (m[a] * m[b] - m[g.mul(a, b)]).cwiseAbs().maxCoeff());
  return err;
}

class RepresentationTest : public ::testing::TestWithParam<const char*> {};

TEST_P(RepresentationTest, RegularIsThePermutationRepresentation) {
  const auto g = make_group(GetParam());
  const auto reg = Representation::regular(g);
  ASSERT_EQ(reg.size(), g->order());
  for (int a = 0; a < g->order(); ++a) {
    Eigen::MatrixXd perm = Eigen::MatrixXd::Zero(g->order(), g->order());
    for (int h = 0; h < g->order(); ++h) perm(g->mul(a, h), h) = 1.0;
    ASSERT_LT((reg(a) - perm).cwiseAbs().maxCoeff(), 1e-10) << "element " << a;
  }
}

TEST_P(RepresentationTest, RegularMultiplicitiesAreDimOverEndo) {
  const auto g = make_group(GetParam());
  const auto m = Representation::regular(g).multiplicities();
  for (size_t k = 0; k < m.size(); ++k) EXPECT_EQ(m[k], g->irrep(k).dim / g->irrep(k).endo_dim()) << "irrep " << k;
  int copies = 0;
  EXPECT_TRUE(Representation::regular(g).copies(3).is_regular_copies(&copies));
  EXPECT_EQ(copies, 3);
}

TEST_P(RepresentationTest, DecompositionOfARotatedPermutedRepresentationReconstructsIt) {
  const auto g = make_group(GetParam());
  // A user representation: two regular copies plus a trivial one, in a random orthogonal basis.
  const auto base = direct_sum(Representation::regular(g).copies(2), Representation::trivial(g));
  const Eigen::MatrixXd p = random_orthogonal(base.size(), 7);
  std::vector<Eigen::MatrixXd> images;
  for (int s : g->generators()) images.push_back(p * base(s) * p.transpose());
  const auto user = Representation::from_generators(g, images, "user");
  EXPECT_EQ(user.multiplicities(), base.multiplicities());
  for (int a = 0; a < g->order(); ++a)
    ASSERT_LT((user(a) - p * base(a) * p.transpose()).cwiseAbs().maxCoeff(), 1e-10) << "element " << a;
  EXPECT_LT(homomorphism_error(user), 1e-10);
  EXPECT_TRUE(user.change_of_basis().transpose().isApprox(user.change_of_basis().inverse(), 1e-10));
}

TEST_P(RepresentationTest, IsotypicOrderKeepsTheMatrices) {
  const auto g = make_group(GetParam());
  const auto r = direct_sum(Representation::regular(g), Representation::trivial(g, 2));
  const auto iso = r.isotypic_order();
  EXPECT_TRUE(std::is_sorted(iso.irreps().begin(), iso.irreps().end()));
  EXPECT_EQ(iso.irreps().front(), 0);
  for (int a = 0; a < g->order(); ++a) EXPECT_LT((iso(a) - r(a)).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_TRUE(iso.character().isApprox(r.character(), 1e-12));
}

TEST_P(RepresentationTest, InvariantBasisIsFixed) {
  const auto g = make_group(GetParam());
  const auto r = Representation::regular(g).copies(2);
  const Eigen::MatrixXd fix = r.invariant_basis();
  EXPECT_EQ(fix.cols(), 2);
  for (int a = 0; a < g->order(); ++a) EXPECT_LT((r(a) * fix - fix).cwiseAbs().maxCoeff(), 1e-10);
}

INSTANTIATE_TEST_SUITE_P(Named, RepresentationTest, ::testing::ValuesIn(kRepSpecs),
                         [](const auto& info) { return std::string(info.param); });

TEST(Representation, ParseSpecString) {
  const auto g = make_group("D4");
  const auto r = Representation::parse(g, "2*regular + 3*trivial + irrep(4)");
  EXPECT_EQ(r.size(), 2 * 8 + 3 + 2);
  EXPECT_EQ(r.multiplicities()[0], 2 + 3);
  EXPECT_THROW(Representation::parse(g, "2*regulr"), std::invalid_argument);
  EXPECT_THROW(Representation::parse(g, "irrep(9)"), std::invalid_argument);
  EXPECT_THROW(Representation::parse(g, "0*regular"), std::invalid_argument);
}

TEST(Representation, RejectsNonHomomorphismAndNonOrthogonal) {
  const auto g = make_group("D3");
  Eigen::Matrix2d rot, flip, bad;
  rot << 0, -1, 1, 0;  // order 4, not a rotation of order 3
  flip << 1, 0, 0, -1;
  try {
    Representation::from_generators(g, {rot, flip});
    ADD_FAILURE() << "accepted a non-homomorphism";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("not a homomorphism"), std::string::npos) << e.what();
  }
  bad << 1, 1, 0, 1;
  try {
    Representation::from_generators(g, {bad, flip});
    ADD_FAILURE() << "accepted a non-orthogonal generator";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("generator 0 is not orthogonal"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Representation::from_generators(g, {flip}), std::invalid_argument);
}

TEST(Representation, FingerprintIgnoresIrrepBasisButSeesTheMatrices) {
  const auto g = make_group("D8");
  const auto a = Representation::regular(g).copies(2);
  const auto b = a.isotypic_order();
  EXPECT_EQ(a.fingerprint(), b.fingerprint());
  EXPECT_NE(a.fingerprint(), a.change_basis(random_orthogonal(a.size(), 3)).fingerprint());
}

}  // namespace
