// FlowPolicy: the compiled regressor equals the regressor's forward (dense and isotypic execution, and the
// plain twin), a control step equals the Euler loop over forward, steady-state control steps allocate nothing,
// and bad input is refused before any work.
#include <gtest/gtest.h>

#include "counting_malloc.h"
#include "symm/group/named.h"
#include "symm/nn/policy.h"
#include "symm/threads.h"
#include "test_util.h"

using namespace symm::nn;
using symm::group::make_group;

namespace {

Representation plane(const symm::group::GroupPtr& g) {
  for (int k = 0; k < static_cast<int>(g->irreps().size()); ++k)
    if (g->irrep(k).dim == 2) return Representation::irrep(g, k);
  throw std::runtime_error("no planar irrep");
}

constexpr int64_t kHorizon = 6, kObs = 2, kSteps = 4;

eCondTransformerRegressor equivariant(const symm::group::GroupPtr& g) {
  const auto p = plane(g);
  torch::manual_seed(3);
  eCondTransformerRegressor model(
      eCondTransformerRegressorOptions(p, direct_sum(p, p), p, kHorizon, kObs, 2, 2, 32).p_drop_emb(0.0).p_drop_attn(0.0));
  torch::NoGradGuard no_grad;
  model->pos_emb.normal_();  // non-zero positions, so that their invariant projection matters
  model->cond_pos_emb.normal_();
  for (auto& p : model->parameters()) p.add_(torch::randn_like(p).mul_(0.05));  // non-zero biases and norm affines
  return model;
}

/// The Euler loop of FlowPolicy over the regressor's own forward.
template <typename Model>
torch::Tensor reference_chunk(Model& model, const torch::Tensor& obs, const torch::Tensor& noise, int64_t chunk,
                              bool predicts_action = false) {
  torch::NoGradGuard no_grad;
  model->eval();
  auto x = noise.clone();
  for (int64_t j = 0; j < kSteps; ++j) {
    const auto out = model->forward(x, 100.0 * j / kSteps, obs);
    x = predicts_action ? x + (out - x) / static_cast<double>(kSteps - j) : x + out / static_cast<double>(kSteps);
  }
  return x.narrow(1, 0, chunk);
}

}  // namespace

TEST(FlowPolicy, EqualsTheRegressorDenseAndIsotypic) {
  const auto g = make_group("D4");
  auto model = equivariant(g);
  const auto obs = torch::randn({3, kObs, 4}), noise = torch::randn({3, kHorizon, 2});
  for (const auto execution : {Execution::dense, Execution::isotypic}) {
    set_execution(*model, execution);
    FlowPolicy policy(*model, FlowPolicyOptions().flow_steps(kSteps).chunk(4));
    for (int64_t j = 0; j < kSteps; ++j) {
      torch::NoGradGuard no_grad;
      const auto expected = model->forward(noise, 100.0 * j / kSteps, obs);
      EXPECT_LT((policy.velocity(noise, j, obs) - expected).abs().max().item<double>(), 1e-5 * (1 + expected.abs().max().item<double>()))
          << to_string(execution) << " step " << j;
    }
    const auto expected = reference_chunk(model, obs, noise, 4);
    const auto got = policy.act(obs, noise);
    EXPECT_EQ(got.sizes(), expected.sizes());
    EXPECT_LT((got - expected).abs().max().item<double>(), 1e-5) << to_string(execution);
  }
}

TEST(FlowPolicy, EqualsThePlainRegressor) {
  torch::manual_seed(4);
  CondTransformerRegressor model(CondTransformerRegressorOptions(2, 4, 2, kHorizon, kObs, 2, 2, 32).p_drop_emb(0.0).p_drop_attn(0.0));
  {
    torch::NoGradGuard no_grad;
    model->pos_emb.normal_();
    model->cond_pos_emb.normal_();
    for (auto& p : model->parameters()) p.add_(torch::randn_like(p).mul_(0.05));
  }
  const auto obs = torch::randn({2, kObs, 4}), noise = torch::randn({2, kHorizon, 2});
  for (const bool predicts_action : {false, true}) {
    FlowPolicy policy(*model, FlowPolicyOptions().flow_steps(kSteps).predicts_action(predicts_action));
    EXPECT_LT((policy.act(obs, noise) - reference_chunk(model, obs, noise, kHorizon, predicts_action)).abs().max().item<double>(), 1e-5)
        << (predicts_action ? "action" : "velocity") << " prediction";
  }
}

TEST(FlowPolicy, TheSampledChunkIsEquivariant) {
  // act(ρ(g)Z, ρ(g)ε) = ρ(g) act(Z, ε): the compiled program keeps the symmetry.
  const auto g = make_group("D4");
  auto model = equivariant(g);
  FlowPolicy policy(*model, FlowPolicyOptions().flow_steps(kSteps));
  const auto p = plane(g), cond = direct_sum(p, p);
  const auto obs = torch::randn({2, kObs, 4}), noise = torch::randn({2, kHorizon, 2});
  const auto y = policy.act(obs, noise);
  for (int e : elements_to_check(*g)) {
    const auto diff = policy.act(act(cond, e, obs).contiguous(), act(p, e, noise).contiguous()) - act(p, e, y);
    EXPECT_LT(diff.abs().max().item<double>(), 1e-5) << "element " << e;
  }
}

TEST(FlowPolicy, SteadyStateControlStepsAllocateNothing) {
  if (!symm::test::counts_allocations()) GTEST_SKIP() << "allocations are not counted under a sanitizer";
  // A control loop's thread: OpenMP's and OpenBLAS's pools allocate when they hand work to their threads.
  const int threads = at::get_num_threads();
  symm::set_num_threads(1);
  auto model = equivariant(make_group("D4"));
  FlowPolicy policy(*model, FlowPolicyOptions().flow_steps(kSteps).chunk(3));
  for (const int64_t batch : {1, 5, 64, 5}) {
    const auto obs = torch::randn({batch, kObs, 4}), noise = torch::randn({batch, kHorizon, 2});
    auto out = torch::empty({batch, 3, 2});
    policy.act_into(obs, noise, out);  // the first call of a batch size sizes the buffers
    const long before = symm::test::allocations();
    for (int i = 0; i < 3; ++i) policy.act_into(obs, noise, out);
    EXPECT_EQ(symm::test::allocations() - before, 0) << "batch " << batch;
    EXPECT_TRUE(torch::equal(out, policy.act(obs, noise))) << "batch " << batch;
  }
  const long before = symm::test::allocations();
  const auto t = torch::empty({16});
  EXPECT_GT(symm::test::allocations(), before) << "the counter does not see a tensor's allocation";
  symm::set_num_threads(threads);
}

TEST(FlowPolicy, RefusesBadInputAndStaysUsable) {
  auto model = equivariant(make_group("D4"));
  FlowPolicy policy(*model, FlowPolicyOptions().flow_steps(kSteps).chunk(3));
  const auto obs = torch::randn({2, kObs, 4}), noise = torch::randn({2, kHorizon, 2});
  const auto good = policy.act(obs, noise);
  symm::test::expect_error([&] { policy.act(torch::randn({2, kObs, 5}), noise); }, {"observations", "(B, 2, 4)", "[2, 2, 5]"});
  symm::test::expect_error([&] { policy.act(torch::randn({2, kObs + 1, 4}), noise); }, {"observations", "[2, 3, 4]"});
  symm::test::expect_error([&] { policy.act(obs, torch::randn({2, kHorizon - 1, 2})); }, {"noise", "(2, 6, 2)", "[2, 5, 2]"});
  auto bad = obs.clone();
  bad[1][0][2] = std::numeric_limits<float>::quiet_NaN();
  symm::test::expect_error([&] { policy.act(bad, noise); }, {"observation 1", "non-finite", "nan"});
  bad[1][0][2] = std::numeric_limits<float>::infinity();
  symm::test::expect_error([&] { policy.act(bad, noise); }, {"non-finite", "inf"});
  symm::test::expect_error([&] { policy.act(obs.to(torch::kFloat64), noise); }, {"float32", "Double"});
  symm::test::expect_error([&] { FlowPolicy(*model, FlowPolicyOptions().chunk(kHorizon + 1)); }, {"chunk", "6", "7"});
  EXPECT_TRUE(torch::equal(policy.act(obs, noise), good));
}
