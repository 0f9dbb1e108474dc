#include "symm/nn/module.h"

#include "symm/nn/mixed_precision.h"

#include <algorithm>
#include <cstring>
#include <sstream>

namespace symm::nn {

Constants& Constants::operator=(const Constants& other) {
  if (this == &other) return *this;
  std::lock_guard<std::mutex> lock(mutex_);
  master_ = other.master_;
  materialised_.clear();
  return *this;
}

const std::vector<torch::Tensor>& Constants::get(const torch::Device& device, torch::Dtype dtype) const {
  std::ostringstream key;
  key << device << "/" << dtype;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = materialised_.find(key.str());
  if (it == materialised_.end()) {
    // Outside inference mode: a first forward under torch.inference_mode must not leave inference tensors
    // that later forwards with autograd save for backward.
    c10::InferenceMode normal(false);
    std::vector<torch::Tensor> out;
    // Index tensors keep their integer dtype; only floating-point constants take the module's.
    for (const auto& t : master_) out.push_back((t.is_floating_point() ? t.to(device, dtype) : t.to(device)).contiguous());
    it = materialised_.emplace(key.str(), std::move(out)).first;
  }
  return it->second;
}

torch::Tensor to_tensor(const Eigen::MatrixXd& m) {
  // Eigen is column-major: copy through the transpose's storage.
  const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> r = m;
  return torch::from_blob(const_cast<double*>(r.data()), {r.rows(), r.cols()}, torch::kFloat64).clone();
}

torch::Tensor to_tensor(const Eigen::VectorXd& v) {
  return torch::from_blob(const_cast<double*>(v.data()), {v.size()}, torch::kFloat64).clone();
}

Eigen::MatrixXd to_eigen(const torch::Tensor& t) {
  const auto c = t.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  const auto rows = c.dim() == 1 ? c.size(0) : c.size(0), cols = c.dim() == 1 ? 1 : c.size(1);
  return Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(c.data_ptr<double>(), rows, cols);
}

bool use_eval_cache(bool training, const std::vector<torch::Tensor>& params) {
  if (training) return false;
  if (!torch::GradMode::is_enabled()) return true;
  return std::none_of(params.begin(), params.end(), [](const torch::Tensor& p) { return p.defined() && p.requires_grad(); });
}

EvalCache& EvalCache::operator=(const EvalCache&) {
  clear();
  return *this;
}

void EvalCache::clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  values_.clear();
  filled_ = false;
  keys_.clear();
}

bool EvalCache::unchanged(const std::vector<torch::Tensor>& keys) const {
  if (keys.size() != keys_.size()) return false;
  for (size_t i = 0; i < keys.size(); ++i) {
    const auto &a = keys[i], &b = keys_[i];
    if (a.defined() != b.defined()) return false;
    if (!a.defined()) continue;
    if (a.device() != b.device() || a.scalar_type() != b.scalar_type() || !a.sizes().equals(b.sizes())) return false;
    // On the CPU compare the bytes: this runs on every eval forward, and torch::equal's dispatch costs more
    // than the comparison of a few thousand coefficients.
    if (a.device().is_cpu() && a.is_contiguous() && b.is_contiguous()) {
      if (std::memcmp(a.data_ptr(), b.data_ptr(), a.nbytes()) != 0) return false;
    } else if (!torch::equal(a, b)) {
      return false;
    }
  }
  return true;
}

void check_features(const std::string& module, const torch::Tensor& x, int64_t features, const char* what) {
  TORCH_CHECK(x.defined(), module, ": ", what, " is undefined");
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) == features, module, ": expected ", what, " with last dimension ", features,
              " (the representation's size), got shape ", x.sizes());
  TORCH_CHECK(x.is_floating_point(), module, ": expected a floating-point ", what, ", got ", x.scalar_type());
}

void check_device_and_dtype(const std::string& module, const torch::Tensor& x, const torch::Tensor& like, const char* what) {
  TORCH_CHECK(x.device() == like.device(), module, ": ", what, " is on ", x.device(), " but the module is on ", like.device(),
              "; move one of them with .to(device)");
  TORCH_CHECK(x.scalar_type() == like.scalar_type() || autocast_enabled(x.device()), module, ": ", what, " dtype ",
              x.scalar_type(), " differs from the module's ", like.scalar_type(), "; move the module with ->to(dtype)");
}

}  // namespace symm::nn
