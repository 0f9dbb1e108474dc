// Groups and their real irreps: every named group, products and JSON-defined groups.
#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>

#include "symm/group/named.h"

using namespace symm::group;

namespace {

struct Expected {
  const char* spec;
  int order;
  int classes;
  int r, c, h;  // irreps of each type
};

const Expected kGroups[] = {
    {"C1", 1, 1, 1, 0, 0},   {"C2", 2, 2, 2, 0, 0},     {"C5", 5, 5, 1, 2, 0},     {"C8", 8, 8, 2, 3, 0},
    {"D1", 2, 2, 2, 0, 0},   {"D3", 6, 3, 3, 0, 0},     {"D8", 16, 7, 7, 0, 0},    {"K4", 4, 4, 4, 0, 0},
    {"S3", 6, 3, 3, 0, 0},   {"S4", 24, 5, 5, 0, 0},    {"A4", 12, 4, 2, 1, 0},    {"A5", 60, 5, 5, 0, 0},
    {"Q8", 8, 5, 4, 0, 1},   {"T", 12, 4, 2, 1, 0},     {"O", 24, 5, 5, 0, 0},     {"I", 60, 5, 5, 0, 0},
    {"C2xD3", 12, 6, 6, 0, 0}, {"C2xC2xD3", 24, 12, 12, 0, 0}, {"C3xC4", 12, 12, 2, 5, 0}, {"Q8xC3", 24, 15, 4, 5, 1},
};

class GroupTest : public ::testing::TestWithParam<Expected> {};

TEST_P(GroupTest, OrderClassesAndIrrepTypes) {
  const auto& e = GetParam();
  const auto g = make_group(e.spec);
  EXPECT_EQ(g->order(), e.order);
  EXPECT_EQ(static_cast<int>(g->classes().size()), e.classes);
  int count[5] = {0, 0, 0, 0, 0};
  for (const auto& psi : g->irreps()) ++count[psi.endo_dim()];
  EXPECT_EQ(count[1], e.r);
  EXPECT_EQ(count[2], e.c);
  EXPECT_EQ(count[4], e.h);
  // Each C-type real irrep is a pair of complex irreps; complex irreps are as many as the classes.
  EXPECT_EQ(e.r + 2 * e.c + e.h, e.classes);
}

TEST_P(GroupTest, TableIsAGroup) {
  const auto g = make_group(GetParam().spec);
  const int n = g->order();
  for (int a = 0; a < n; ++a) {
    EXPECT_EQ(g->mul(0, a), a);
    EXPECT_EQ(g->mul(a, 0), a);
    EXPECT_EQ(g->mul(a, g->inv(a)), 0);
    for (int b = 0; b < n; ++b)
      for (int c = 0; c < n; c += std::max(1, n / 7)) ASSERT_EQ(g->mul(g->mul(a, b), c), g->mul(a, g->mul(b, c)));
  }
}

TEST_P(GroupTest, IrrepsAreOrthogonalHomomorphisms) {
  const auto g = make_group(GetParam().spec);
  const int n = g->order();
  for (const auto& psi : g->irreps()) {
    const Eigen::MatrixXd id = Eigen::MatrixXd::Identity(psi.dim, psi.dim);
    for (int a = 0; a < n; ++a) {
      ASSERT_TRUE((psi.matrices[a].transpose() * psi.matrices[a]).isApprox(id, 1e-10)) << "irrep " << psi.id << " at " << a;
      for (int b = 0; b < n; ++b) {
        const double err = (psi.matrices[a] * psi.matrices[b] - psi.matrices[g->mul(a, b)]).cwiseAbs().maxCoeff();
        ASSERT_LT(err, 1e-10) << "irrep " << psi.id << " elements " << a << ", " << b;
      }
    }
  }
}

TEST_P(GroupTest, SumOfSquaresAndCharacterOrthogonality) {
  const auto g = make_group(GetParam().spec);
  const int n = g->order();
  double total = 0;
  const auto& irreps = g->irreps();
  EXPECT_TRUE(irreps.front().is_trivial());
  for (size_t i = 0; i < irreps.size(); ++i) {
    total += double(irreps[i].dim) * irreps[i].dim / irreps[i].endo_dim();
    for (size_t j = 0; j < irreps.size(); ++j) {
      const double inner = irreps[i].character.dot(irreps[j].character) / n;
      EXPECT_NEAR(inner, i == j ? irreps[i].endo_dim() : 0.0, 1e-9) << i << "," << j;
    }
  }
  EXPECT_NEAR(total, n, 1e-12);
}

TEST_P(GroupTest, EndomorphismBasisCommutesAndIsOrthonormal) {
  const auto g = make_group(GetParam().spec);
  for (const auto& psi : g->irreps()) {
    ASSERT_EQ(static_cast<int>(psi.endomorphisms.size()), psi.endo_dim());
    EXPECT_TRUE(psi.endomorphisms[0].isApprox(Eigen::MatrixXd::Identity(psi.dim, psi.dim) / std::sqrt(psi.dim), 1e-10));
    for (int s = 0; s < psi.endo_dim(); ++s) {
      for (int t = 0; t < psi.endo_dim(); ++t)
        EXPECT_NEAR((psi.endomorphisms[s].array() * psi.endomorphisms[t].array()).sum(), s == t ? 1.0 : 0.0, 1e-10);
      for (int a = 0; a < g->order(); ++a)
        EXPECT_LT((psi.matrices[a] * psi.endomorphisms[s] - psi.endomorphisms[s] * psi.matrices[a]).cwiseAbs().maxCoeff(), 1e-10);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Named, GroupTest, ::testing::ValuesIn(kGroups),
                         [](const auto& info) { return std::string(info.param.spec); });

TEST(Group, IcosahedralIrrepDimensions) {
  const auto g = icosahedral_group();
  std::vector<int> dims;
  for (const auto& psi : g->irreps()) dims.push_back(psi.dim);
  EXPECT_EQ(dims, (std::vector<int>{1, 3, 3, 4, 5}));
}

TEST(Group, QuaternionHasOneQuaternionicIrrepOfDimFour) {
  const auto g = quaternion_group();
  const auto& last = g->irreps().back();
  EXPECT_EQ(last.dim, 4);
  EXPECT_EQ(last.type, IrrepType::H);
}

TEST(Group, DeterministicAcrossConstructions) {
  const auto a = alternating_group(4), b = alternating_group(4);
  ASSERT_EQ(a->irreps().size(), b->irreps().size());
  for (size_t k = 0; k < a->irreps().size(); ++k)
    for (int g = 0; g < a->order(); ++g) EXPECT_EQ(a->irrep(k).matrices[g], b->irrep(k).matrices[g]);
}

TEST(Group, ClassesPartitionTheElements) {
  const auto g = make_group("S4");
  std::vector<int> seen(g->order(), 0);
  for (const auto& c : g->classes())
    for (int x : c) ++seen[x];
  for (int count : seen) EXPECT_EQ(count, 1);
  EXPECT_EQ(g->classes().front(), std::vector<int>{0});
}

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << text;
  return path;
}

TEST(Group, FromJsonMatricesAndPermutations) {
  const auto m = make_group(write_temp("c4.json", R"({"name": "rot4", "generators": [[[0,-1],[1,0]]]})"));
  EXPECT_EQ(m->name(), "rot4");
  EXPECT_EQ(m->order(), 4);
  const auto p = make_group(write_temp("s3.json", R"({"name": "perm3", "permutations": [[1,0,2],[1,2,0]]})"));
  EXPECT_EQ(p->order(), 6);
  EXPECT_EQ(p->irreps().size(), 3u);
}

TEST(Group, BadSpecsThrowWithAMessage) {
  const std::pair<std::string, std::string> cases[] = {
      {"C0", "at least 1"},
      {"X7", "unknown group 'X7'"},
      {"C", "expected a number"},
      {"D3x", "unknown group ''"},
      {"Cabc", "expected a number"},
      {write_temp("bad.json", "{not json"), "malformed JSON"},
      {write_temp("nonorth.json", R"({"generators": [[[2,0],[0,1]]]})"), "not orthogonal"},
      {write_temp("infinite.json", R"({"generators": [[[0.8,-0.6],[0.6,0.8]]]})"), "kMaxNumericalOrder"},
      {write_temp("badperm.json", R"({"permutations": [[0,0,1]]})"), "not a permutation"},
      {write_temp("nogens.json", R"({"name": "x"})"), "\"generators\""},
      {write_temp("ragged.json", R"({"generators": [[[1,0],[0]]]})"), "rows of different lengths"},
  };
  for (const auto& [spec, expected] : cases) {
    try {
      make_group(spec);
      ADD_FAILURE() << spec << " was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << spec << ": " << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "one line: " << e.what();
    }
  }
}

}  // namespace
