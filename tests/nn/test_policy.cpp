// FlowPolicy: the compiled regressor equals the regressor's forward (dense and isotypic execution, and the
// plain twin), a control step equals the Euler loop over forward, bad input is refused before any work, and
// steady-state control steps allocate nothing.
#include <gtest/gtest.h>
#include <malloc.h>

#include <atomic>

#include "symm/group/named.h"
#include "symm/nn/policy.h"
#include "test_util.h"

using namespace symm::nn;
using symm::group::make_group;

// Counting allocator: every malloc-family call of the process (torch's CPU allocator, Eigen, operator new)
// goes through these definitions, which forward to glibc's. Not under the sanitizers, which own malloc.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SYMM_COUNT_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define SYMM_COUNT_ALLOCATIONS 0
#endif
#endif
#if !defined(SYMM_COUNT_ALLOCATIONS) && defined(__GLIBC__)
#define SYMM_COUNT_ALLOCATIONS 1
#endif
#ifndef SYMM_COUNT_ALLOCATIONS
#define SYMM_COUNT_ALLOCATIONS 0
#endif

namespace {
std::atomic<int64_t> g_allocations{0};
}  // namespace

#if SYMM_COUNT_ALLOCATIONS
extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void* malloc(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t m) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_calloc(n, m);
}
void* realloc(void* p, size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_realloc(p, n);
}
void* memalign(size_t a, size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_memalign(a, n);
}
void* aligned_alloc(size_t a, size_t n) { return memalign(a, n); }
int posix_memalign(void** p, size_t a, size_t n) {
  *p = memalign(a, n);
  return *p ? 0 : 12;  // ENOMEM
}
}
#endif

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
torch::Tensor reference_chunk(Model& model, const torch::Tensor& obs, const torch::Tensor& noise, int64_t chunk) {
  torch::NoGradGuard no_grad;
  model->eval();
  auto x = noise.clone();
  for (int64_t j = 0; j < kSteps; ++j) x = x + model->forward(x, 100.0 * j / kSteps, obs) / static_cast<double>(kSteps);
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
  FlowPolicy policy(*model, FlowPolicyOptions().flow_steps(kSteps));
  const auto obs = torch::randn({2, kObs, 4}), noise = torch::randn({2, kHorizon, 2});
  EXPECT_LT((policy.act(obs, noise) - reference_chunk(model, obs, noise, kHorizon)).abs().max().item<double>(), 1e-5);
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

TEST(FlowPolicy, SteadyStateAllocatesNothing) {
#if !SYMM_COUNT_ALLOCATIONS
  GTEST_SKIP() << "the allocation counter needs glibc's malloc (not under a sanitizer)";
#else
  auto model = equivariant(make_group("D4"));
  FlowPolicy policy(*model, FlowPolicyOptions().flow_steps(kSteps));
  for (const int64_t batch : {1, 5}) {
    const auto obs = torch::randn({batch, kObs, 4}), noise = torch::randn({batch, kHorizon, 2});
    auto out = torch::empty({batch, kHorizon, 2});
    policy.act_into(obs, noise, out);  // sizes the buffers
    const int64_t before = g_allocations.load();
    for (int i = 0; i < 3; ++i) policy.act_into(obs, noise, out);
    EXPECT_EQ(g_allocations.load() - before, 0) << "batch " << batch;
  }
  // The counter counts: a tensor allocates.
  const int64_t before = g_allocations.load();
  const auto t = torch::empty({1000});
  EXPECT_GT(g_allocations.load() - before, 0);
#endif
}
