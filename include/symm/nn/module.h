#pragma once
// What every equivariant module shares: its input and output representations, and constants derived from
// them (change-of-basis matrices, endomorphism bases) that are not learned state.
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "symm/group/representation.h"

namespace symm::nn {

using symm::group::Representation;

class eModule {
 public:
  virtual ~eModule() = default;
  virtual const Representation& in_rep() const = 0;
  virtual const Representation& out_rep() const = 0;
  /// The representation whose irrep copies this module's per-copy parameters belong to, where its irrep
  /// decomposition is not ours (hidden_rep.h); none otherwise. Dense checkpoints cannot see a decomposition,
  /// so symm::architecture writes it and symm::load refuses a file saved with another one.
  virtual std::optional<Representation> foreign_decomposition() const { return std::nullopt; }
};

/// Double-precision constants (and integer index tensors, which keep their dtype), materialised once per
/// (device, dtype). They are derived from the
/// representations, so they stay out of the state dict and keep full precision whatever the module's dtype.
/// get() may be called from several threads at once; a copy carries the masters, not the materialisations.
class Constants {
 public:
  Constants() = default;
  explicit Constants(std::vector<torch::Tensor> master) : master_(std::move(master)) {}
  Constants(const Constants& other) : master_(other.master_) {}
  Constants& operator=(const Constants& other);
  /// The returned tensors stay valid until this object is assigned to or destroyed.
  const std::vector<torch::Tensor>& get(const torch::Device& device, torch::Dtype dtype) const;
  const std::vector<torch::Tensor>& get(const torch::Tensor& like) const { return get(like.device(), like.scalar_type()); }
  size_t size() const { return master_.size(); }

 private:
  std::vector<torch::Tensor> master_;
  mutable std::mutex mutex_;  // guards materialised_ (std::map nodes never move, so references stay valid)
  mutable std::map<std::string, std::vector<torch::Tensor>> materialised_;
};

/// A float64 CPU tensor holding an Eigen matrix.
torch::Tensor to_tensor(const Eigen::MatrixXd& m);
torch::Tensor to_tensor(const Eigen::VectorXd& v);
Eigen::MatrixXd to_eigen(const torch::Tensor& t);

/// Throws c10::Error naming the module when x's last dimension is not `features`.
void check_features(const std::string& module, const torch::Tensor& x, int64_t features, const char* what = "input");

/// Throws c10::Error naming the module, both devices or both dtypes when x is not on the device of the
/// module's parameter `like`, or (outside autocast) not of its dtype.
void check_device_and_dtype(const std::string& module, const torch::Tensor& x, const torch::Tensor& like,
                            const char* what = "input");

/// Result of a dense map whose eval-mode value is cached until its parameters change. Parameters are
/// compared by value: optimisers, loading and device or dtype moves may change them without touching the
/// version counter, and the coefficients are far smaller than the dense maps derived from them.
/// Several threads may call get() at once (one module serving concurrent eval forwards): the check and the
/// refill run under a lock, so each thread sees either the old value or the complete new one. A copy starts
/// empty (clone() gives the copy its own parameters).
class EvalCache {
 public:
  EvalCache() = default;
  EvalCache(const EvalCache&) {}
  EvalCache& operator=(const EvalCache&);

  /// Returns the cached tensor while the key tensors are unchanged, else recomputes it under no_grad. The
  /// reference stays valid until the keys change or clear() is called, neither of which may race with a
  /// forward that uses it.
  template <typename F>
  const torch::Tensor& get(const std::vector<torch::Tensor>& keys, F compute) {
    return get_all(keys, [&] { return std::vector<torch::Tensor>{compute()}; }).front();
  }
  /// The same for a computation with several results.
  template <typename F>
  const std::vector<torch::Tensor>& get_all(const std::vector<torch::Tensor>& keys, F compute) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!filled_ || !unchanged(keys)) {
      torch::NoGradGuard no_grad;
      values_ = compute();
      filled_ = true;
      keys_.clear();
      for (const auto& t : keys) keys_.push_back(t.defined() ? t.detach().clone() : t);
    }
    return values_;
  }
  void clear();

 private:
  bool unchanged(const std::vector<torch::Tensor>& keys) const;

  std::mutex mutex_;
  std::vector<torch::Tensor> keys_;
  std::vector<torch::Tensor> values_;
  bool filled_ = false;
};

}  // namespace symm::nn
