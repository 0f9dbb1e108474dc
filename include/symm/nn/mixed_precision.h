#pragma once
// Mixed precision: LibTorch's autocast, on and off by scope. Under autocast the modules keep float32
// coefficients (the master copy the optimiser updates) while matmuls run in bfloat16 or float16.
#include <torch/torch.h>

namespace symm::nn {

/// Whether autocast is on for the device's type: inputs may then come in a lower precision than the
/// module's parameters.
bool autocast_enabled(const torch::Device& device);

/// Turns autocast on for one device type (cpu or cuda) with the given lower precision (bfloat16 or
/// float16) for its lifetime; restores the previous state, and drops autocast's cast cache, on leaving.
class AutocastGuard {
 public:
  AutocastGuard(torch::DeviceType device, torch::Dtype dtype);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  torch::DeviceType device_;
  bool was_enabled_;
  torch::Dtype previous_dtype_;
};

/// "bfloat16", "float16" or "float32" (and "bf16", "fp16", "fp32") as a dtype; std::invalid_argument naming
/// `option` and the value otherwise.
torch::Dtype parse_dtype(const std::string& option, const std::string& value);

}  // namespace symm::nn
