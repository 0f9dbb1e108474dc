// One module in eval mode serving several threads at once: the eval caches (dense weights, folded norms,
// materialised constants) are filled concurrently from cold and every thread gets the sequential result.
#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "symm/group/named.h"
#include "symm/nn/attention.h"
#include "symm/nn/encoder.h"
#include "symm/nn/encoder_layer.h"

namespace {

using symm::group::make_group;
using symm::group::Representation;
using namespace symm::nn;

eTransformerEncoder make_model(const std::string& norm) {
  torch::manual_seed(0);
  const auto rep = Representation::regular(make_group("D4")).copies(2);
  eTransformerEncoder model(eTransformerEncoderLayer(eTransformerEncoderLayerOptions(rep, eMultiheadAttention(rep, 2).ptr())
                                                         .dim_feedforward(32)
                                                         .dropout(0.0)
                                                         .norm_module(norm)),
                            2);
  torch::NoGradGuard no_grad;  // non-trivial norm scales, so the folded affine maps matter
  for (auto& p : model->named_parameters())
    if (p.key().find("scale_dof") != std::string::npos) p.value().uniform_(0.5, 1.5);
  model->eval();
  return model;
}

void check_concurrent_eval(const std::string& norm) {
  // The reference runs sequentially on a twin (same seed, same parameters); the model starts with cold caches.
  auto reference = make_model(norm), model = make_model(norm);
  const auto rp = reference->parameters(), mp = model->parameters();
  ASSERT_EQ(rp.size(), mp.size());
  for (size_t i = 0; i < rp.size(); ++i) ASSERT_TRUE(torch::equal(rp[i], mp[i]));
  const int64_t features = model->in_rep().size();
  constexpr int kThreads = 4, kCalls = 8;
  std::vector<torch::Tensor> inputs, expected;
  for (int t = 0; t < kThreads; ++t) {
    inputs.push_back(torch::randn({2, 5, features}));
    expected.push_back(reference->forward(inputs.back()));
  }
  std::atomic<int> ready{0};
  std::vector<std::vector<torch::Tensor>> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ++ready;
      while (ready.load() < kThreads) std::this_thread::yield();  // start together: the caches fill under contention
      for (int i = 0; i < kCalls; ++i) results[t].push_back(model->forward(inputs[t]));
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t)
    for (const auto& y : results[t])
      EXPECT_TRUE(torch::allclose(y, expected[t], 1e-6, 1e-6))
          << norm << ", thread " << t << ": max difference " << (y - expected[t]).abs().max().item<double>();
}

TEST(Concurrency, EvalFromFourThreadsMatchesSequentialRMSNorm) { check_concurrent_eval("rmsnorm"); }
TEST(Concurrency, EvalFromFourThreadsMatchesSequentialLayerNorm) { check_concurrent_eval("layernorm"); }

}  // namespace
