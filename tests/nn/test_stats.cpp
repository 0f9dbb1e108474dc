// symm::stats on tensors against direct dense computations: group averages over every element, the
// estimators written out coordinate by coordinate, and symm::linalg's Eigen forms.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "symm/group/named.h"
#include "symm/linalg/isotypic_signal.h"
#include "symm/linalg/projection.h"
#include "symm/nn/module.h"
#include "symm/stats/linalg.h"
#include "symm/stats/stats.h"
#include "test_util.h"

using namespace symm::group;
using symm::nn::to_eigen;
using symm::nn::to_tensor;
namespace st = symm::stats;

namespace {

GroupPtr group_of(const std::string& spec) {
  if (spec == "perm") return Group::from_permutations("perm", {{1, 2, 0}, {1, 0, 2}});  // S3, numerical irreps
  return make_group(spec);
}

// Every irrep once (multiplicity free), and regular ⊕ the last irrep ⊕ trivial (multiplicities), scrambled.
Representation all_irreps(const GroupPtr& g) {
  Representation r = Representation::irrep(g, 0);
  for (int k = 1; k < static_cast<int>(g->irreps().size()); ++k) r = direct_sum(r, Representation::irrep(g, k));
  return symm::test::scrambled(r, 21);
}
Representation mixed(const GroupPtr& g, std::uint64_t seed) {
  const int last = static_cast<int>(g->irreps().size()) - 1;
  return symm::test::scrambled(
      direct_sum(direct_sum(Representation::regular(g), Representation::irrep(g, last)), Representation::trivial(g)), seed);
}

// Samples with a non-invariant mean, so that centring matters.
torch::Tensor samples(int64_t n, int64_t d, int64_t seed) {
  torch::manual_seed(seed);
  return torch::randn({n, d}, torch::kFloat64) + torch::linspace(-1, 2, d, torch::kFloat64);
}

double max_abs(const Eigen::MatrixXd& a) { return a.size() ? a.cwiseAbs().maxCoeff() : 0.0; }

class StatsTest : public ::testing::TestWithParam<const char*> {};

TEST_P(StatsTest, MeanIsTheGroupAverageOfTheEmpiricalMean) {
  const auto rep = mixed(group_of(GetParam()), 1);
  const auto x = samples(7, rep.size(), 1);
  const Eigen::MatrixXd xbar = to_eigen(x.mean(0).unsqueeze(1));
  const auto trivial = Representation::trivial(rep.group());
  EXPECT_LT(max_abs(to_eigen(st::mean(x, rep).unsqueeze(1)) - symm::test::group_average(xbar, trivial, rep)), 1e-10);
  // A time axis joins the samples: (N, D, T) is the same as its (N·T, D) samples.
  const auto xt = samples(6, rep.size(), 2).view({3, 2, rep.size()}).transpose(1, 2);  // (3, D, 2)
  EXPECT_LT((st::mean(xt, rep) - st::mean(xt.transpose(1, 2).reshape({6, rep.size()}), rep)).abs().max().item<double>(), 1e-12);
  const auto p = st::invariant_orthogonal_projector(rep);
  EXPECT_LT(max_abs(to_eigen(p) - symm::linalg::invariant_orthogonal_projector(rep)), 1e-12);
}

TEST_P(StatsTest, VarianceIsConstantOnEachCopy) {
  const auto rep = mixed(group_of(GetParam()), 2);
  const auto x = samples(9, rep.size(), 3);
  const auto c = st::mean(x, rep);
  // Written out: spectral coordinates, per-copy averages of their squares, back through Q⊙Q.
  const Eigen::MatrixXd q = rep.change_of_basis();
  const Eigen::MatrixXd s = (to_eigen(x).rowwise() - to_eigen(c.unsqueeze(0)).row(0)) * q;
  Eigen::VectorXd v(rep.size());
  int offset = 0;
  for (int k : rep.irreps()) {
    const int d = rep.group()->irrep(k).dim;
    v.segment(offset, d).setConstant(s.middleCols(offset, d).squaredNorm() / (d * (x.size(0) - 1)));
    offset += d;
  }
  const Eigen::VectorXd expected = q.cwiseAbs2() * v;
  const auto [var, mean] = st::var_mean(x, rep);
  EXPECT_LT(max_abs(to_eigen(var.unsqueeze(1)) - expected), 1e-10);
  EXPECT_LT((mean - c).abs().max().item<double>(), 1e-14);
  // Without multiplicities it is the diagonal of the group-averaged covariance.
  const auto free = all_irreps(rep.group());
  const auto y = samples(9, free.size(), 4);
  const Eigen::MatrixXd yc = to_eigen(y - st::mean(y, free));
  const Eigen::MatrixXd sym = symm::test::group_average(yc.transpose() * yc / (y.size(0) - 1), free, free);
  EXPECT_LT(max_abs(to_eigen(st::var(y, free).unsqueeze(1)) - sym.diagonal()), 1e-10);
  // An explicit center replaces the mean.
  const auto zero = torch::zeros({free.size()}, torch::kFloat64);
  const Eigen::MatrixXd ye = to_eigen(y);
  EXPECT_LT(max_abs(to_eigen(st::var(y, free, zero).unsqueeze(1)) -
                    symm::test::group_average(ye.transpose() * ye / (y.size(0) - 1), free, free).diagonal()), 1e-10);
}

TEST_P(StatsTest, CovarianceIsTheGroupAveragedEmpiricalCovariance) {
  const auto g = group_of(GetParam());
  const auto rx = mixed(g, 3), ry = all_irreps(g);
  const auto x = samples(8, rx.size(), 5), y = samples(8, ry.size(), 6);
  const Eigen::MatrixXd xc = to_eigen(x - st::mean(x, rx)), yc = to_eigen(y - st::mean(y, ry));
  EXPECT_LT(max_abs(to_eigen(st::cov(x, y, rx, ry)) - symm::test::group_average(yc.transpose() * xc / 7.0, rx, ry)), 1e-10);
  const Eigen::MatrixXd xe = to_eigen(x), ye = to_eigen(y);
  EXPECT_LT(max_abs(to_eigen(st::cov(x, y, rx, ry, true)) - symm::test::group_average(ye.transpose() * xe / 8.0, rx, ry)), 1e-10);
}

TEST_P(StatsTest, TensorProjectionIsBatchedAndSelfAdjoint) {
  const auto g = group_of(GetParam());
  const auto rx = mixed(g, 4), ry = all_irreps(g);
  torch::manual_seed(7);
  const auto w = torch::randn({2, 3, ry.size(), rx.size()}, torch::kFloat64).requires_grad_();
  const auto p = st::equiv_orthogonal_projection(w, rx, ry);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      ASSERT_LT(max_abs(to_eigen(p[i][j].detach()) - symm::test::group_average(to_eigen(w[i][j].detach()), rx, ry)), 1e-10);
  const auto theta = st::equiv_orthogonal_projection_coefficients(w, rx, ry);
  EXPECT_LT(max_abs(to_eigen(theta[1][2].detach().unsqueeze(1)) -
                    symm::linalg::equiv_orthogonal_projection_coefficients(to_eigen(w[1][2].detach()), rx, ry)), 1e-10);
  EXPECT_LT((st::equiv_linear_map(theta, rx, ry) - p).abs().max().item<double>(), 1e-10);
  // Π is an orthogonal projection: the gradient of ⟨Π(W), V⟩ is Π(V).
  const auto v = torch::randn_like(w);
  const auto grad = torch::autograd::grad({(p * v).sum()}, {w})[0];
  EXPECT_LT((grad - st::equiv_orthogonal_projection(v, rx, ry)).abs().max().item<double>(), 1e-10);
}

TEST_P(StatsTest, TensorLstsqRadiiAndSubspacesMatchTheEigenForms) {
  const auto g = group_of(GetParam());
  const auto rx = mixed(g, 5), ry = all_irreps(g);
  const auto x = samples(4, rx.size(), 8), y = samples(4, ry.size(), 9);
  EXPECT_LT(max_abs(to_eigen(st::lstsq(x, y, rx, ry)) - symm::linalg::lstsq(to_eigen(x), to_eigen(y), rx, ry)), 1e-12);
  const auto batch = x.view({2, 2, rx.size()});
  const auto radii = st::irrep_radii(batch, rx);
  ASSERT_EQ(radii.sizes(), (std::vector<int64_t>{2, 2, static_cast<int64_t>(rx.irreps().size())}));
  EXPECT_LT(max_abs(to_eigen(radii.reshape({4, -1})) - symm::linalg::irrep_radii(to_eigen(x), rx)), 1e-12);
  const int last = static_cast<int>(g->irreps().size()) - 1;
  const auto iso = symm::test::scrambled(Representation::irrep(g, last).copies(3), 22);
  const auto z = samples(5, iso.size(), 10);
  EXPECT_LT(max_abs(to_eigen(st::isotypic_signal2irreducible_subspaces(z, iso)) -
                    symm::linalg::isotypic_signal2irreducible_subspaces(to_eigen(z), iso)), 1e-12);
}

INSTANTIATE_TEST_SUITE_P(Groups, StatsTest, ::testing::Values("C2", "D4", "C8", "Q8", "O", "perm"));

TEST(Stats, KeepsDtypeAndDevice) {
  const auto rep = Representation::regular(make_group("D4"));
  const auto x = torch::randn({5, 8});
  EXPECT_EQ(st::mean(x, rep).scalar_type(), torch::kFloat32);
  EXPECT_EQ(st::var(x, rep).scalar_type(), torch::kFloat32);
  EXPECT_EQ(st::cov(x, x, rep, rep).scalar_type(), torch::kFloat32);
  EXPECT_LT((st::cov(x, x, rep, rep) - st::cov(x.to(torch::kFloat64), x.to(torch::kFloat64), rep, rep).to(torch::kFloat32))
                .abs().max().item<double>(), 1e-5);
}

TEST(Stats, BadInputIsNamed) {
  const auto rep = Representation::regular(make_group("D4"));
  using symm::test::expect_error;
  expect_error([&] { st::mean(torch::randn({4, 7}), rep); }, {"symm::stats::mean", "D = 8", "[4, 7]"});
  expect_error([&] { st::var(torch::randn({1, 8}), rep); }, {"symm::stats::var", "at least 2 samples", "got 1"});
  expect_error([&] { st::var(torch::randn({3, 8}), rep, torch::zeros({7})); }, {"center of shape (8)", "[7]"});
  expect_error([&] { st::cov(torch::randn({3, 8}), torch::randn({4, 8}), rep, rep); }, {"symm::stats::cov", "same N"});
  expect_error([&] { st::equiv_linear_map(torch::randn({3}), rep, rep); }, {"coefficients of shape (..., 8)", "[3]"});
  expect_error([&] { st::irrep_radii(torch::randn({2, 5}), rep); }, {"irrep_radii", "(..., 8)"});
}

}  // namespace
