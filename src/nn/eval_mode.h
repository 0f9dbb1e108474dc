#pragma once
// Internal: when an eval forward may take values cached from the parameters (EvalCache), and how they are made.
#include <algorithm>
#include <vector>

#include "symm/nn/module.h"

namespace symm::nn::detail {

/// Whether an eval forward may take a value cached from `params`: only when autograd needs nothing from them
/// (grad mode off, or none requires grad). Otherwise eval computes as training does, so that eval changes
/// dropout and norms only and never cuts the gradients of the parameters.
inline bool use_eval_cache(bool training, const std::vector<torch::Tensor>& params) {
  if (training) return false;
  if (!torch::GradMode::is_enabled()) return true;
  return std::none_of(params.begin(), params.end(), [](const torch::Tensor& p) { return p.defined() && p.requires_grad(); });
}

/// cache.get_all(keys, compute) outside inference mode: a value first made under torch.inference_mode is later
/// saved for backward by forwards whose input requires grad, which an inference tensor cannot be.
template <typename F>
const std::vector<torch::Tensor>& eval_cached_all(EvalCache& cache, const std::vector<torch::Tensor>& keys, F compute) {
  c10::InferenceMode normal(false);
  return cache.get_all(keys, compute);
}

template <typename F>
const torch::Tensor& eval_cached(EvalCache& cache, const std::vector<torch::Tensor>& keys, F compute) {
  return eval_cached_all(cache, keys, [&] { return std::vector<torch::Tensor>{compute()}; }).front();
}

}  // namespace symm::nn::detail
