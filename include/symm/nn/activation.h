#pragma once
// A pointwise activation. Applied to regular copies in the permutation basis, where ρ(g) permutes
// coordinates, any pointwise function commutes with the group.
#include <functional>
#include <string>

#include <torch/torch.h>

namespace symm::nn {

class Activation {
 public:
  using Function = std::function<torch::Tensor(const torch::Tensor&)>;
  Activation(Function fn, std::string name = "custom") : fn_(std::move(fn)), name_(std::move(name)) {}
  /// Any LibTorch module holder with forward(Tensor) -> Tensor, e.g. torch::nn::GELU(), torch::nn::SiLU().
  template <typename Impl>
  Activation(torch::nn::ModuleHolder<Impl> module)  // NOLINT: implicit, as torch's own options take modules
      : fn_([module](const torch::Tensor& x) mutable { return module->forward(x); }), name_(module->name()) {}

  static Activation relu();
  static Activation gelu();       // exact (erf), torch's default
  static Activation gelu_tanh();  // tanh approximation
  static Activation silu();
  static Activation tanh();
  /// relu, gelu, gelu_tanh, silu or tanh; throws std::invalid_argument otherwise.
  static Activation from_name(const std::string& name);

  torch::Tensor operator()(const torch::Tensor& x) const { return fn_(x); }
  const std::string& name() const { return name_; }

 private:
  Function fn_;
  std::string name_;
};

}  // namespace symm::nn
