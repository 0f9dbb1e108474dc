#pragma once
// Helpers shared by the attention tests (test_attention.cpp, test_additive_attention.cpp). Apart from
// test_util.h so that the other nn tests do not compile the attention headers.
#include <algorithm>
#include <utility>

#include "symm/nn/attention.h"
#include "symm/nn/equivariance.h"
#include "test_util.h"

namespace symm::test {

/// Batch, query and key lengths of the attention tests.
constexpr int64_t kBatch = 2, kT = 5, kS = 4;

/// ρ(g) on query, key and value, keeping shared tensors shared (self-attention stays self-attention).
inline symm::nn::AttentionCall act_on(const symm::group::Representation& rep, int g, const symm::nn::AttentionCall& call) {
  using symm::nn::act;
  symm::nn::AttentionCall out = call;
  out.query = act(rep, g, call.query);
  out.key = call.key.is_same(call.query) ? out.query : act(rep, g, call.key);
  out.value = call.value.is_same(call.query) ? out.query : call.value.is_same(call.key) ? out.key : act(rep, g, call.value);
  return out;
}

/// max_g |f(ρ(g)·call) − ρ(g) f(call)|∞ / |f(call)|∞, and the same for the (invariant) weights.
inline std::pair<double, double> equivariance(symm::nn::AttentionBackend& attn, const symm::group::Representation& rep,
                                              const symm::nn::AttentionCall& call) {
  using symm::nn::act;
  torch::NoGradGuard no_grad;
  const auto [y, w] = attn.attend(call);
  const double scale = y.abs().max().item<double>();
  double err = 0, werr = 0;
  for (int g : symm::nn::elements_to_check(*rep.group())) {
    const auto [yg, wg] = attn.attend(act_on(rep, g, call));
    err = std::max(err, (yg - act(rep, g, y)).abs().max().item<double>() / scale);
    if (w.defined()) werr = std::max(werr, (wg - w).abs().max().item<double>());
  }
  return {err, werr};
}

}  // namespace symm::test
