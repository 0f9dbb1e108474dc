#include "symm/nn/feedforward.h"

#include <stdexcept>

#include "isotypic_layout.h"

namespace symm::nn {

Activation Activation::relu() { return Activation([](const torch::Tensor& x) { return torch::relu(x); }, "relu"); }
Activation Activation::gelu() { return Activation([](const torch::Tensor& x) { return torch::gelu(x); }, "gelu"); }
Activation Activation::gelu_tanh() {
  return Activation([](const torch::Tensor& x) { return torch::gelu(x, "tanh"); }, "gelu_tanh");
}
Activation Activation::silu() { return Activation([](const torch::Tensor& x) { return torch::silu(x); }, "silu"); }
Activation Activation::tanh() { return Activation([](const torch::Tensor& x) { return torch::tanh(x); }, "tanh"); }

Activation Activation::from_name(const std::string& name) {
  if (name == "relu") return relu();
  if (name == "gelu") return gelu();
  if (name == "gelu_tanh") return gelu_tanh();
  if (name == "silu") return silu();
  if (name == "tanh") return tanh();
  throw std::invalid_argument("unknown activation '" + name + "': expected relu, gelu, gelu_tanh, silu or tanh");
}

eFeedForwardImpl::eFeedForwardImpl(eFeedForwardOptions options_) : options(std::move(options_)) { reset(); }

void eFeedForwardImpl::reset() {
  const auto& g = options.in_rep().group();
  TORCH_CHECK(g, "eFeedForward: in_rep is not set");
  TORCH_CHECK(options.dim_feedforward() > 0, "eFeedForward: dim_feedforward must be positive, got ", options.dim_feedforward());
  const int64_t copies = (options.dim_feedforward() + g->order() - 1) / g->order();
  hidden_rep_ = Representation::regular(g).copies(static_cast<int>(copies));
  linear1 = register_module("linear1", eLinear(eLinearOptions(options.in_rep(), hidden_rep_).bias(options.bias()).init_scheme(options.init_scheme())));
  linear2 = register_module("linear2", eLinear(eLinearOptions(hidden_rep_, options.in_rep()).bias(options.bias()).init_scheme(options.init_scheme())));
  dropout = register_module("dropout", torch::nn::Dropout(options.dropout()));
}

void eFeedForwardImpl::reset_parameters() {
  linear1->reset_parameters();
  linear2->reset_parameters();
}

torch::Tensor eFeedForwardImpl::forward(const torch::Tensor& x) {
  return linear2->forward(dropout->forward(options.activation()(linear1->forward(x))));
}

torch::Tensor eFeedForwardImpl::forward_after(const torch::Tensor& x, eAffineImpl& pre) {
  return linear2->forward(dropout->forward(options.activation()(linear1->forward_after(x, pre))));
}

torch::Tensor eFeedForwardImpl::forward_isotypic(const torch::Tensor& z, eAffineImpl* pre) {
  const auto& hidden = linear1->isotypic_out();
  const auto h = hidden.to_chunk_basis(linear1->forward_isotypic(z, pre));
  return linear2->forward_isotypic(hidden.from_chunk_basis(dropout->forward(options.activation()(h))));
}

void eFeedForwardImpl::pretty_print(std::ostream& stream) const {
  stream << "symm::nn::eFeedForward(in=" << options.in_rep().name() << ", hidden=" << hidden_rep_.size()
         << ", activation=" << options.activation().name() << ", dropout=" << options.dropout() << ")";
}

}  // namespace symm::nn
