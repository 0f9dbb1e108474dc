#include "symm/nn/mixed_precision.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <stdexcept>

namespace symm::nn {

// LibTorch 2.4 made the autocast state a function of the device type; 1.13 has one switch per backend.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define SYMM_AUTOCAST_BY_DEVICE 1
#endif

namespace {

void check_device(torch::DeviceType device) {
  TORCH_CHECK(device == torch::kCPU || device == torch::kCUDA, "autocast: expected device cpu or cuda, got ", device);
}

void set_enabled(torch::DeviceType device, bool on) {
#ifdef SYMM_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_enabled(device, on);
#else
  if (device == torch::kCUDA) at::autocast::set_enabled(on);
  else at::autocast::set_cpu_enabled(on);
#endif
}

torch::Dtype get_dtype(torch::DeviceType device) {
#ifdef SYMM_AUTOCAST_BY_DEVICE
  return at::autocast::get_autocast_dtype(device);
#else
  return device == torch::kCUDA ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

void set_dtype(torch::DeviceType device, torch::Dtype dtype) {
#ifdef SYMM_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_dtype(device, dtype);
#else
  if (device == torch::kCUDA) at::autocast::set_autocast_gpu_dtype(dtype);
  else at::autocast::set_autocast_cpu_dtype(dtype);
#endif
}

}  // namespace

bool autocast_enabled(const torch::Device& device) {
  if (!device.is_cpu() && !device.is_cuda()) return false;
#ifdef SYMM_AUTOCAST_BY_DEVICE
  return at::autocast::is_autocast_enabled(device.type());
#else
  return device.is_cuda() ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

AutocastGuard::AutocastGuard(torch::DeviceType device, torch::Dtype dtype) : device_(device) {
  check_device(device);
  TORCH_CHECK(dtype == torch::kBFloat16 || dtype == torch::kFloat16, "autocast: expected bfloat16 or float16, got ", dtype);
  was_enabled_ = autocast_enabled(torch::Device(device));
  previous_dtype_ = get_dtype(device);
  set_dtype(device, dtype);
  set_enabled(device, true);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  // As torch.autocast: the cache of lowered weights lives as long as the outermost autocast region.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_enabled(device_, was_enabled_);
  set_dtype(device_, previous_dtype_);
}

torch::Dtype parse_dtype(const std::string& option, const std::string& value) {
  if (value == "float32" || value == "fp32") return torch::kFloat32;
  if (value == "bfloat16" || value == "bf16") return torch::kBFloat16;
  if (value == "float16" || value == "fp16") return torch::kFloat16;
  if (value == "float64" || value == "fp64") return torch::kFloat64;
  throw std::invalid_argument(option + ": expected float32, bfloat16, float16 or float64, got '" + value + "'");
}

}  // namespace symm::nn
