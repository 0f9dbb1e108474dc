// torch.nn's contracts that the eval caches must keep: eval changes dropout and norms only, so gradients
// reach every coefficient in eval as in training; and a first forward under inference mode or no_grad leaves
// nothing behind that a later forward with autograd cannot save for backward.
#include <gtest/gtest.h>

#include "symm/group/named.h"
#include "symm/nn/attention.h"
#include "symm/nn/encoder_layer.h"
#include "symm/nn/linear.h"
#include "test_util.h"

using namespace symm::nn;
using symm::group::make_group;

namespace {

double tolerance(torch::Dtype dtype) { return dtype == torch::kFloat64 ? 1e-12 : 1e-6; }

eTransformerEncoderLayer make_layer(const Representation& rep, double dropout, Execution execution, const std::string& norm) {
  return eTransformerEncoderLayer(eTransformerEncoderLayerOptions(rep, eMultiheadAttention(rep, 2).ptr())
                                      .dim_feedforward(2 * rep.size())
                                      .dropout(dropout)
                                      .norm_module(norm)
                                      .execution(execution));
}

/// The gradient of every parameter of `module` for a loss that weighs every output differently.
std::map<std::string, torch::Tensor> gradients(torch::nn::Module& module, const std::function<torch::Tensor()>& forward) {
  module.zero_grad();
  const auto y = forward();
  (y * torch::linspace(0.5, 1.5, y.numel(), y.options()).view(y.sizes())).sum().backward();
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : module.named_parameters()) out[p.key()] = p.value().grad().defined() ? p.value().grad().clone() : torch::Tensor();
  return out;
}

void expect_same_gradients(const std::map<std::string, torch::Tensor>& got, const std::map<std::string, torch::Tensor>& want,
                           torch::Dtype dtype, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (const auto& [name, g] : want) {
    ASSERT_TRUE(g.defined()) << what << ": training gave no gradient to " << name;
    ASSERT_TRUE(got.at(name).defined()) << what << ": eval cut the gradient of " << name;
    const double scale = std::max(g.abs().max().item<double>(), 1e-30);
    EXPECT_LT((got.at(name) - g).abs().max().item<double>() / scale, tolerance(dtype)) << what << ": gradient of " << name;
  }
}

class EvalGradientTest : public ::testing::TestWithParam<std::tuple<const char*, torch::Dtype>> {};

TEST_P(EvalGradientTest, EvalWithAutogradGivesTheTrainingGradients) {
  const auto [spec, dtype] = GetParam();
  const auto rep = Representation::regular(make_group(spec)).copies(2);
  const auto x = torch::randn({2, 3, rep.size()}, torch::dtype(dtype));
  for (const auto execution : {Execution::dense, Execution::isotypic}) {
    const std::string what = std::string(spec) + " " + to_string(execution);
    {
      torch::manual_seed(1);
      eLinear lin(eLinearOptions(rep, rep).execution(execution));
      lin->to(dtype);
      const auto want = gradients(*lin, [&] { return lin->forward(x); });
      lin->eval();
      {
        torch::NoGradGuard no_grad;  // fills the eval caches
        lin->forward(x);
      }
      expect_same_gradients(gradients(*lin, [&] { return lin->forward(x); }), want, dtype, "eLinear " + what);
    }
    for (const std::string norm : {"rmsnorm", "layernorm"}) {
      // Training without dropout is what eval computes; eval of the layer with dropout must give its gradients.
      torch::manual_seed(2);
      auto reference = make_layer(rep, 0.0, execution, norm);
      torch::manual_seed(2);
      auto layer = make_layer(rep, 0.3, execution, norm);
      reference->to(dtype);
      layer->to(dtype);
      const auto want = gradients(*reference, [&] { return reference->forward(x); });
      layer->eval();
      {
        torch::NoGradGuard no_grad;
        layer->forward(x);
      }
      expect_same_gradients(gradients(*layer, [&] { return layer->forward(x); }), want, dtype, "layer " + norm + " " + what);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Groups, EvalGradientTest,
                         ::testing::Combine(::testing::Values("C3", "D2"), ::testing::Values(torch::kFloat32, torch::kFloat64)));

/// After `first` ran an eval forward: an eval forward with frozen parameters and an input that requires grad,
/// then a training step, both with autograd.
template <typename M>
void expect_autograd_after(M& module, const torch::Tensor& x, const std::function<void()>& first, const std::string& what) {
  module->eval();
  first();
  for (auto& p : module->parameters()) p.requires_grad_(false);
  const auto xg = x.clone().requires_grad_(true);
  ASSERT_NO_THROW(module->forward(xg).sum().backward()) << what << ": frozen parameters, input requiring grad";
  ASSERT_TRUE(xg.grad().defined()) << what;
  for (auto& p : module->parameters()) p.requires_grad_(true);
  module->train();
  module->zero_grad();
  ASSERT_NO_THROW(module->forward(x).sum().backward()) << what << ": training step";
  for (const auto& p : module->named_parameters()) EXPECT_TRUE(p.value().grad().defined()) << what << ": " << p.key();
  module->eval();
  ASSERT_NO_THROW(module->forward(xg).sum().backward()) << what << ": eval with autograd";
}

TEST(InferenceMode, AFirstForwardUnderInferenceModeOrNoGradPoisonsNothing) {
  const auto rep = Representation::regular(make_group("D2")).copies(2);
  const auto x = torch::randn({2, 3, rep.size()});
  for (const auto execution : {Execution::dense, Execution::isotypic}) {
    for (const bool inference : {true, false}) {
      const std::string what = std::string(inference ? "inference_mode" : "no_grad") + " " + to_string(execution);
      auto first_forward = [&](auto& module) {
        return [&, inference] {
          if (inference) {
            c10::InferenceMode guard;
            module->forward(x);
          } else {
            torch::NoGradGuard guard;
            module->forward(x);
          }
        };
      };
      eLinear lin(eLinearOptions(rep, rep).execution(execution));
      expect_autograd_after(lin, x, first_forward(lin), "eLinear " + what);
      auto layer = make_layer(rep, 0.1, execution, "layernorm");
      expect_autograd_after(layer, x, first_forward(layer), "layer " + what);
    }
  }
}

}  // namespace
