// EMAStats and eEMAStats: the moving averages written out for two batches, train/eval semantics, the
// gradient of the newest batch only, and the symmetry of the equivariant statistics.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "symm/group/named.h"
#include "symm/linalg/projection.h"
#include "symm/nn/checkpoint.h"
#include "symm/nn/running_stats.h"
#include "symm/stats/stats.h"
#include "test_util.h"

using namespace symm::group;
using symm::nn::to_eigen;
using symm::nn::to_tensor;

namespace {

torch::Tensor batch(int64_t n, int64_t d, int64_t seed) {
  torch::manual_seed(seed);
  return torch::randn({n, d}, torch::kFloat64) + torch::linspace(0, 1, d, torch::kFloat64);
}

double max_abs(const torch::Tensor& t) { return t.abs().max().item<double>(); }

TEST(EMAStats, TwoBatchesWrittenOut) {
  symm::nn::EMAStats stats(symm::nn::EMAStatsOptions(3).dim_y(2).momentum(0.25));
  stats->to(torch::kFloat64);
  const auto x1 = batch(6, 3, 1), y1 = batch(6, 2, 2), x2 = batch(5, 3, 3), y2 = batch(5, 2, 4);
  stats->forward(x1, y1);
  const auto m1 = x1.mean(0), my1 = y1.mean(0);
  const auto c1 = torch::matmul((x1 - m1).t(), y1 - my1) / 5.0;
  EXPECT_LT(max_abs(stats->mean_x() - m1), 1e-12);
  EXPECT_LT(max_abs(stats->cov_xy() - c1), 1e-12);
  // The second batch is centred at the running means (center_with_running_mean).
  stats->forward(x2, y2);
  const auto xc = x2 - m1, yc = y2 - my1;
  EXPECT_LT(max_abs(stats->mean_x() - (0.75 * m1 + 0.25 * x2.mean(0))), 1e-12);
  EXPECT_LT(max_abs(stats->cov_xx() - (0.75 * torch::matmul((x1 - m1).t(), x1 - m1) / 5.0 + 0.25 * torch::matmul(xc.t(), xc) / 4.0)), 1e-12);
  EXPECT_LT(max_abs(stats->cov_xy() - (0.75 * c1 + 0.25 * torch::matmul(xc.t(), yc) / 4.0)), 1e-12);
  EXPECT_EQ(stats->num_batches_tracked.item<int64_t>(), 2);
  // Eval leaves the statistics as they are.
  stats->eval();
  const auto before = stats->cov_xy().clone();
  stats->forward(x1, y1);
  EXPECT_TRUE(torch::equal(before, stats->cov_xy()));
  EXPECT_EQ(stats->num_batches_tracked.item<int64_t>(), 2);
}

TEST(EMAStats, GradientOfTheNewestBatchOnly) {
  symm::nn::EMAStats stats(symm::nn::EMAStatsOptions(3).momentum(0.5));
  stats->to(torch::kFloat64);
  const auto x1 = batch(4, 3, 5).requires_grad_(), x2 = batch(4, 3, 6).requires_grad_();
  stats->forward(x1, x1);
  stats->forward(x2, x2);
  const auto grads = torch::autograd::grad({stats->mean_x().sum()}, {x1, x2}, {}, false, false, true);
  EXPECT_FALSE(grads[0].defined() && grads[0].abs().max().item<double>() > 0);  // the old state is detached
  EXPECT_LT(max_abs(grads[1] - 0.5 / 4.0), 1e-12);                             // α / N per sample
}

TEST(EMAStats, BadInputIsNamed) {
  using symm::test::expect_error;
  symm::nn::EMAStats stats(3);
  expect_error([&] { stats->forward(torch::randn({4, 2}), torch::randn({4, 3})); }, {"EMAStats", "x of shape (N, 3)", "[4, 2]"});
  expect_error([&] { stats->forward(torch::randn({4, 3}), torch::randn({5, 3})); }, {"same number of samples", "4 and 5"});
  expect_error([&] { stats->forward(torch::randn({1, 3}), torch::randn({1, 3})); }, {"at least 2 samples", "got 1"});
  expect_error([&] { symm::nn::EMAStats(symm::nn::EMAStatsOptions(3).momentum(0.0)); }, {"momentum must be in (0, 1]"});
}

Representation rep_of(const std::string& spec, std::uint64_t seed) {
  // One group object for both representations (make_group caches; the permutation group is built once here).
  static const auto perm = Group::from_permutations("perm", {{1, 2, 0}, {1, 0, 2}});
  const auto g = spec == "perm" ? perm : make_group(spec);
  const int last = static_cast<int>(g->irreps().size()) - 1;
  return symm::test::scrambled(direct_sum(Representation::regular(g), Representation::irrep(g, last)), seed);
}

class eEMAStatsTest : public ::testing::TestWithParam<const char*> {};

TEST_P(eEMAStatsTest, SymmetricStatisticsOfTwoBatches) {
  const auto rx = rep_of(GetParam(), 41), ry = rep_of(GetParam(), 42);
  const auto g = rx.group();
  const auto trivial = Representation::trivial(g);
  symm::nn::eEMAStats stats(symm::nn::eEMAStatsOptions(rx).y_rep(ry).momentum(0.3));
  stats->to(torch::kFloat64);
  const auto x1 = batch(5, rx.size(), 7), y1 = batch(5, ry.size(), 8), x2 = batch(4, rx.size(), 9), y2 = batch(4, ry.size(), 10);
  stats->forward(x1, y1);
  stats->forward(x2, y2);
  // Written out with group averages: invariant means, covariances of the centred batches over N.
  auto mean = [&](const torch::Tensor& x, const Representation& r) {
    return symm::test::group_average(to_eigen(x.mean(0).unsqueeze(1)), trivial, r);
  };
  const Eigen::MatrixXd mx1 = mean(x1, rx), my1 = mean(y1, ry);
  auto centred = [](const torch::Tensor& x, const Eigen::MatrixXd& m) { return Eigen::MatrixXd(to_eigen(x).rowwise() - m.col(0).transpose()); };
  const Eigen::MatrixXd a1 = centred(x1, mx1), b1 = centred(y1, my1), a2 = centred(x2, mx1), b2 = centred(y2, my1);
  const Eigen::MatrixXd mx = 0.7 * mx1 + 0.3 * mean(x2, rx);
  const Eigen::MatrixXd cxx = 0.7 * symm::test::group_average(a1.transpose() * a1 / 5.0, rx, rx) + 0.3 * symm::test::group_average(a2.transpose() * a2 / 4.0, rx, rx);
  const Eigen::MatrixXd cxy = 0.7 * symm::test::group_average(a1.transpose() * b1 / 5.0, ry, rx) + 0.3 * symm::test::group_average(a2.transpose() * b2 / 4.0, ry, rx);
  const Eigen::MatrixXd cyy = 0.7 * symm::test::group_average(b1.transpose() * b1 / 5.0, ry, ry) + 0.3 * symm::test::group_average(b2.transpose() * b2 / 4.0, ry, ry);
  EXPECT_LT((to_eigen(stats->mean_x().unsqueeze(1)) - mx).cwiseAbs().maxCoeff(), 1e-10);
  EXPECT_LT((to_eigen(stats->cov_xx()) - cxx).cwiseAbs().maxCoeff(), 1e-10);
  EXPECT_LT((to_eigen(stats->cov_yy()) - cyy).cwiseAbs().maxCoeff(), 1e-10);
  EXPECT_LT((to_eigen(stats->cov_xy()) - cxy).cwiseAbs().maxCoeff(), 1e-10);
  // Eval: the cached dense maps are the same, and forwards change nothing.
  stats->eval();
  EXPECT_LT((to_eigen(stats->cov_xy()) - cxy).cwiseAbs().maxCoeff(), 1e-10);
  stats->forward(x1, y1);
  EXPECT_LT((to_eigen(stats->cov_xx()) - cxx).cwiseAbs().maxCoeff(), 1e-10);
  EXPECT_EQ(stats->num_batches_tracked.item<int64_t>(), 2);
}

INSTANTIATE_TEST_SUITE_P(Groups, eEMAStatsTest, ::testing::Values("C2", "D4", "C8", "Q8", "O", "perm"));

TEST(eEMAStats, StartsAtTheIdentityAndClones) {
  const auto rep = rep_of("Q8", 43);
  symm::nn::eEMAStats stats(rep);
  EXPECT_LT(max_abs(stats->cov_xx() - torch::eye(rep.size())), 1e-6);
  EXPECT_LT(max_abs(stats->cov_xy()), 1e-12);
  stats->forward(torch::randn({4, rep.size()}), torch::randn({4, rep.size()}));
  const auto copy = std::dynamic_pointer_cast<symm::nn::eEMAStatsImpl>(stats->clone());
  EXPECT_LT(max_abs(copy->cov_xy() - stats->cov_xy()), 1e-6);
  stats->reset_parameters();
  EXPECT_EQ(stats->num_batches_tracked.item<int64_t>(), 0);
  EXPECT_LT(max_abs(stats->cov_yy() - torch::eye(rep.size())), 1e-6);
}

// Their 0-dim batch counter and statistics survive symm::save / symm::load (the counter once stopped the load).
TEST(RunningStats, CheckpointRoundTrip) {
  const auto rep = rep_of("D4", 44);
  symm::nn::EMAStats plain(symm::nn::EMAStatsOptions(3).dim_y(2)), plain_back(symm::nn::EMAStatsOptions(3).dim_y(2));
  symm::nn::eEMAStats sym(rep), sym_back(rep);
  for (int i = 0; i < 3; ++i) {
    plain->forward(torch::randn({5, 3}), torch::randn({5, 2}));
    sym->forward(torch::randn({5, rep.size()}), torch::randn({5, rep.size()}));
  }
  const std::string dir = ::testing::TempDir();
  symm::save(plain, dir + "ema.symm");
  symm::save(sym, dir + "eema.symm");
  symm::load(plain_back, dir + "ema.symm");
  symm::load(sym_back, dir + "eema.symm");
  EXPECT_EQ(plain_back->num_batches_tracked.item<int64_t>(), 3);
  EXPECT_EQ(sym_back->num_batches_tracked.item<int64_t>(), 3);
  EXPECT_TRUE(torch::equal(plain_back->running_cov_xy, plain->running_cov_xy));
  EXPECT_LT(max_abs(sym_back->cov_xy() - sym->cov_xy()), 1e-6);
  EXPECT_LT(max_abs(sym_back->mean_x() - sym->mean_x()), 1e-6);
}

TEST(eEMAStats, BadInputIsNamed) {
  using symm::test::expect_error;
  const auto rep = Representation::regular(make_group("D4"));
  symm::nn::eEMAStats stats(rep);
  expect_error([&] { stats->forward(torch::randn({4, 7}), torch::randn({4, 8})); }, {"eEMAStats", "(N, 8)", "[4, 7]"});
  expect_error([&] { stats->forward(torch::randn({4, 8}, torch::kFloat64), torch::randn({4, 8})); }, {"eEMAStats", "Double"});
  expect_error([&] { symm::nn::eEMAStats(symm::nn::eEMAStatsOptions(rep).y_rep(Representation::regular(make_group("C4")))); },
               {"same group", "D4", "C4"});
}

}  // namespace
