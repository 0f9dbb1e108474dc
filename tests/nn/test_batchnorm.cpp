// eBatchNorm1d: equivariance (train and eval, float32 and float64, inputs (B, C) and (B, C, T)), parity
// with torch's BatchNorm1d for the trivial group (outputs and running statistics), gradients against finite
// differences, checkpoints and the errors of bad input.
#include <gtest/gtest.h>

#include "symm/group/named.h"
#include "symm/nn/batchnorm.h"
#include "symm/nn/checkpoint.h"
#include "symm/nn/equivariance.h"
#include "test_util.h"

using namespace symm::nn;
using symm::group::make_group;

namespace {

Representation rep_of(const std::string& name) {
  if (name == "gen") {
    const double c = -0.5, s = std::sqrt(3.0) / 2;
    Eigen::Matrix2d rot, flip;
    rot << c, -s, s, c;
    flip << 1, 0, 0, -1;
    const auto g = symm::group::Group::from_generators("D3gen", {rot, flip});
    return direct_sum(Representation::from_generators(g, {rot, flip}, "plane"), Representation::regular(g));
  }
  // "<group>x3": three regular copies unscrambled, Q block diagonal (batch_norm_train's blockwise products).
  if (name.size() > 2 && name.substr(name.size() - 2) == "x3") return Representation::regular(make_group(name.substr(0, name.size() - 2))).copies(3);
  const auto g = make_group(name);
  return symm::test::scrambled(direct_sum(Representation::regular(g), Representation::trivial(g)), 7);
}

class BatchNormTest : public ::testing::TestWithParam<std::tuple<const char*, torch::Dtype>> {};

TEST_P(BatchNormTest, IsEquivariantInTrainAndEval) {
  const auto [name, dtype] = GetParam();
  const auto rep = rep_of(name);
  torch::manual_seed(1);
  eBatchNorm1d bn(rep);
  bn->to(dtype);
  {
    torch::NoGradGuard no_grad;  // non-trivial affine values
    bn->affine->scale_dof.uniform_(0.5, 1.5);
    if (bn->affine->bias_dof.defined()) bn->affine->bias_dof.normal_();
  }
  const auto elements = elements_to_check(*rep.group());
  const double tol = symm::test::tolerance(dtype);
  for (bool train : {true, false}) {
    bn->train(train);
    if (!train) {  // running statistics from a few batches
      bn->train(true);
      for (int i = 0; i < 3; ++i) bn(torch::randn({6, rep.size()}, torch::dtype(dtype)) * 3 + 1);
      bn->train(false);
    }
    // Equivariance of the running statistics' update is the equality of the outputs below.
    const auto x2 = torch::randn({5, rep.size()}, torch::dtype(dtype)) * 2 + 0.5;
    const auto f2 = [&](const torch::Tensor& t) { return bn(t); };
    EXPECT_LT(equivariance_error(f2, rep, rep, x2, elements).max_relative, tol) << name << " (B, C) train=" << train;
    const auto x3 = torch::randn({3, rep.size(), 4}, torch::dtype(dtype)) * 2 + 0.5;
    const auto f3 = [&](const torch::Tensor& t) { return bn(t.transpose(1, 2)).transpose(1, 2); };
    EXPECT_LT(equivariance_error(f3, rep, rep, x3.transpose(1, 2).contiguous(), elements).max_relative, tol)
        << name << " (B, C, T) train=" << train;
  }
  // The running mean stays in Fix(ρ).
  const auto m = bn->running_mean.to(torch::kFloat64);
  for (int g : elements) EXPECT_LT((act(rep, g, m) - m).abs().max().item<double>(), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Groups, BatchNormTest,
                         ::testing::Combine(::testing::Values("C2", "D4", "C8", "Q8", "O", "gen", "C2x3", "D4x3", "Ox3"),
                                            ::testing::Values(torch::kFloat32, torch::kFloat64)),
                         symm::test::GroupAndDtypeName());

TEST(BatchNorm, NormalisesEachIrrepCopyToUnitVariance) {
  const auto rep = rep_of("D4");
  eBatchNorm1d bn(eBatchNorm1dOptions(rep).affine(false));
  bn->to(torch::kFloat64);
  const auto x = torch::randn({200, rep.size()}, torch::kFloat64) * 3 + 2;
  const auto z = torch::matmul(bn(x), to_tensor(rep.change_of_basis()));  // isotypic coordinates
  const auto fix = to_tensor(rep.invariant_basis());
  EXPECT_LT(torch::mv(fix.t(), bn(x).mean(0)).abs().max().item<double>(), 1e-10);  // invariant part centred
  int64_t col = 0;
  for (int k : rep.irreps()) {
    const int d = rep.group()->irrep(k).dim;
    const auto block = z.narrow(1, col, d) - (k == 0 ? z.narrow(1, col, d).mean(0) : torch::zeros({d}, torch::kFloat64));
    EXPECT_NEAR(block.square().mean().item<double>(), 1.0, 1e-4) << "copy at column " << col;
    col += d;
  }
}

TEST(BatchNorm, EqualsTorchBatchNorm1dForTheTrivialGroup) {
  const auto g = make_group("C1");
  for (const bool momentum : {true, false}) {
    for (const bool track : {true, false}) {
      torch::manual_seed(2);
      auto o = eBatchNorm1dOptions(Representation::trivial(g, 5)).track_running_stats(track);
      auto t = torch::nn::BatchNorm1dOptions(5).track_running_stats(track);
      if (!momentum) {
        o.momentum(c10::nullopt);
        t.momentum(c10::nullopt);
      }
      eBatchNorm1d ours(o);
      torch::nn::BatchNorm1d theirs(t);
      const auto w = torch::rand({5}) + 0.5, b = torch::randn({5});
      ours->affine->set_dense(w, b);
      {
        torch::NoGradGuard no_grad;
        theirs->weight.copy_(w);
        theirs->bias.copy_(b);
      }
      for (int step = 0; step < 3; ++step) {
        const auto x = step == 1 ? torch::randn({4, 5, 6}) * 2 + 1 : torch::randn({7, 5}) * 2 + 1;
        EXPECT_LT((ours(x) - theirs(x)).abs().max().item<double>(), 1e-5) << "train step " << step;
      }
      if (track) {
        EXPECT_LT((ours->running_mean - theirs->running_mean).abs().max().item<double>(), 1e-6);
        EXPECT_LT((ours->running_var - theirs->running_var).abs().max().item<double>(), 1e-5);
        EXPECT_EQ(ours->num_batches_tracked.item<int64_t>(), 3);
      }
      ours->eval();
      theirs->eval();
      const auto x = torch::randn({3, 5, 2}) * 2;
      EXPECT_LT((ours(x) - theirs(x)).abs().max().item<double>(), 1e-5) << "eval momentum=" << momentum << " track=" << track;
    }
  }
}

TEST(BatchNorm, GradientsEqualFiniteDifferences) {
  for (const char* name : {"C8", "D4x3"}) {  // Q one dense block, Q in blocks
    const auto rep = rep_of(name);
    // Without running statistics, so that evaluating the loss does not change the module.
    eBatchNorm1d bn(eBatchNorm1dOptions(rep).track_running_stats(false));
    bn->to(torch::kFloat64);
    {
      torch::NoGradGuard no_grad;
      bn->affine->scale_dof.uniform_(0.5, 1.5);
      bn->affine->bias_dof.normal_();
    }
    const auto x = torch::randn({4, rep.size(), 2}, torch::dtype(torch::kFloat64).requires_grad(true));
    const auto r = torch::randn({4, rep.size(), 2}, torch::kFloat64);
    (bn(x) * r).sum().backward();
    auto loss = [&] { torch::NoGradGuard no_grad; return (bn(x) * r).sum().item<double>(); };
    symm::test::expect_central_differences(x, x.grad(), loss, {0, 5, 17, 40}, std::string(name) + " input");
    for (const auto& s : {bn->affine->scale_dof, bn->affine->bias_dof})
      symm::test::expect_central_differences(s, s.grad().clone(), loss, symm::test::all_coordinates(s.numel()),
                                             std::string(name) + " affine coefficient");
  }
}

TEST(BatchNorm, SaveLoadRoundTripKeepsTheRunningStatistics) {
  const auto rep = rep_of("Q8");
  const std::string path = ::testing::TempDir() + "ebn.symm";
  eBatchNorm1d a(rep), b(rep);
  for (int i = 0; i < 2; ++i) a(torch::randn({6, rep.size()}) * 2 + 1);
  symm::save(a, path);
  symm::load(b, path);
  a->eval();
  b->eval();
  const auto x = torch::randn({3, rep.size()});
  EXPECT_TRUE(torch::equal(a(x), b(x)));
  eBatchNorm1d fresh(rep);
  fresh->eval();
  EXPECT_FALSE(torch::allclose(b(x), fresh(x)));
  EXPECT_TRUE(torch::equal(a->running_var, b->running_var));
  EXPECT_EQ(b->num_batches_tracked.item<int64_t>(), 2);
}

TEST(BatchNorm, BadInputsRaiseNamedErrors) {
  using symm::test::expect_error;
  const auto rep = rep_of("D4");
  eBatchNorm1d bn(rep);
  expect_error([&] { bn(torch::randn({1, rep.size()})); }, {"eBatchNorm1d", "more than 1 value per channel", "[1, 9]"});
  expect_error([&] { bn(torch::randn({1, rep.size(), 1})); }, {"eBatchNorm1d", "more than 1 value per channel", "[1, 9, 1]"});
  expect_error([&] { bn(torch::randn({4, 8})); }, {"eBatchNorm1d", "expected 9 channels", "[4, 8]"});
  expect_error([&] { bn(torch::randn({9})); }, {"eBatchNorm1d", "(B, 9)", "[9]"});
  expect_error([&] { bn(torch::randn({2, 9}, torch::kFloat64)); }, {"eBatchNorm1d", "Double", "Float"});
  expect_error([&] { eBatchNorm1d(eBatchNorm1dOptions(rep).eps(0)); }, {"eBatchNorm1d", "eps > 0", "got 0"});
  expect_error([&] { eBatchNorm1d(eBatchNorm1dOptions(rep).momentum(1.5)); }, {"eBatchNorm1d", "momentum", "1.5"});
  bn->eval();  // one sample is fine in eval
  EXPECT_EQ(bn(torch::randn({1, rep.size()})).sizes(), (std::vector<int64_t>{1, rep.size()}));
}

}  // namespace
