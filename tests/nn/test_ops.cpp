// The operators torch.ops.symm.* (symm/nn/functional.h), called through the dispatcher as Python calls them,
// with the constants the modules publish: equal to the modules and to the Eigen reference, and their first and
// second derivatives equal to finite differences.
#include <gtest/gtest.h>

#include <ATen/core/dispatch/Dispatcher.h>

#include "symm/group/named.h"
#include "symm/nn/functional.h"
#include "symm/nn/linear.h"
#include "symm/nn/normalization.h"
#include "test_util.h"

using namespace symm::nn;
using symm::group::make_group;
using symm::test::relative;

namespace {

double tolerance(torch::Dtype dtype) { return dtype == torch::kFloat64 ? 1e-12 : 1e-6; }

c10::OperatorHandle op(const char* name) { return c10::Dispatcher::singleton().findSchemaOrThrow(name, ""); }

torch::Tensor constant(const NamedConstants& c, const std::string& name) {
  for (const auto& [n, t] : c)
    if (n == name) return t;
  return {};
}

/// eLinear's dense weight through torch.ops.symm.hom_tiles or hom_blocks, from its published constants.
torch::Tensor weight_through_ops(const eLinearImpl& lin, const torch::Tensor& theta) {
  const auto c = functional::linear_constants(lin.in_rep(), lin.out_rep());
  const auto like = [&](const torch::Tensor& t) { return t.to(theta.scalar_type()); };
  if (const auto tiles = constant(c, "tiles"); tiles.defined()) {
    const auto index = constant(c, "tile_index");
    return op("symm::hom_tiles")
        .typed<torch::Tensor(const torch::Tensor&, const c10::optional<torch::Tensor>&, const torch::Tensor&, int64_t)>()
        .call(theta, index.defined() ? c10::optional<torch::Tensor>(index) : c10::nullopt, like(tiles),
              constant(c, "tile_m_out").item<int64_t>());
  }
  const auto m_in = constant(c, "m_in");
  std::vector<torch::Tensor> psi, q_out;
  for (int64_t b = 0; b < m_in.numel(); ++b) {
    psi.push_back(like(constant(c, "endomorphisms." + std::to_string(b))));
    q_out.push_back(like(constant(c, "q_out." + std::to_string(b))));
  }
  const std::vector<int64_t> m(m_in.data_ptr<int64_t>(), m_in.data_ptr<int64_t>() + m_in.numel());
  return op("symm::hom_blocks")
      .typed<torch::Tensor(const torch::Tensor&, torch::TensorList, torch::TensorList, const torch::Tensor&, c10::IntArrayRef)>()
      .call(theta, psi, q_out, like(constant(c, "q_in_t")), m);
}

/// <v, f(x)>'s gradient against central differences along a random direction, and, through a second
/// backward, the gradient of <grad, u> likewise (float64).
void expect_derivatives_match_differences(const std::function<torch::Tensor(const torch::Tensor&)>& f, const torch::Tensor& x0,
                                          bool second_order, const std::string& what) {
  const auto x = x0.detach().clone().requires_grad_(true);
  const auto y = f(x);
  const auto v = torch::randn_like(y), u = torch::randn_like(x), w = torch::randn_like(x);
  const auto g = torch::autograd::grad({(y * v).sum()}, {x}, {}, /*retain_graph=*/true, /*create_graph=*/second_order)[0];
  const double eps = 1e-6;
  auto directional = [&](const torch::Tensor& dir, const std::function<double(const torch::Tensor&)>& s) {
    torch::NoGradGuard no_grad;
    return (s(x0 + eps * dir) - s(x0 - eps * dir)) / (2 * eps);
  };
  auto first = [&](const torch::Tensor& t) { return (f(t) * v).sum().item<double>(); };
  const double want = directional(u, first), got = (g * u).sum().item<double>();
  EXPECT_NEAR(got, want, 1e-6 * std::max(1.0, std::abs(want))) << what << ": first derivative";
  if (!second_order) return;
  // d/dx <g(x), w> along u.
  // A map linear in x has a constant gradient (no graph): its second derivative is zero.
  const auto h = g.requires_grad()
                     ? torch::autograd::grad({(g * w).sum()}, {x}, {}, /*retain_graph=*/false, /*create_graph=*/false, /*allow_unused=*/true)[0]
                     : torch::Tensor();
  auto gradient_dot_w = [&](const torch::Tensor& t) {
    torch::AutoGradMode enable(true);
    const auto xt = t.detach().clone().requires_grad_(true);
    return (torch::autograd::grad({(f(xt) * v).sum()}, {xt})[0] * w).sum().item<double>();
  };
  const double want2 = (gradient_dot_w(x0 + eps * u) - gradient_dot_w(x0 - eps * u)) / (2 * eps);
  const double got2 = h.defined() ? (h * u).sum().item<double>() : 0.0;
  EXPECT_NEAR(got2, want2, 1e-5 * std::max(1.0, std::abs(want2))) << what << ": second derivative";
}

TEST(Ops, AreRegisteredInAStaticLink) {
  for (const char* name : {"symm::hom_tiles", "symm::hom_blocks", "symm::rms_normalise", "symm::layer_normalise", "symm::batch_norm_train"})
    EXPECT_TRUE(c10::Dispatcher::singleton().findSchema({name, ""}).has_value()) << name;
}

class OpsTest : public ::testing::TestWithParam<std::tuple<const char*, torch::Dtype>> {};

TEST_P(OpsTest, SynthesisEqualsTheModuleAndTheReference) {
  const auto [spec, dtype] = GetParam();
  const auto g = make_group(spec);
  const auto regular = Representation::regular(g);
  const std::vector<std::pair<Representation, Representation>> pairs = {
      {regular.copies(2), regular.copies(3)},                                              // tiles
      {direct_sum(regular, Representation::trivial(g)), regular.copies(2)},                // blocks
      {symm::test::scrambled(regular.copies(2), 7), symm::test::scrambled(regular, 8)},   // blocks, no structure
  };
  for (const auto& [in, out] : pairs) {
    const std::string what = std::string(spec) + " " + in.name() + " -> " + out.name();
    torch::manual_seed(4);
    eLinear lin(in, out);
    lin->to(dtype);
    const auto w = weight_through_ops(*lin, lin->weight_dof);
    EXPECT_LT(relative(w, lin->weight()), tolerance(dtype)) << what;
    const auto theta = lin->weight_dof.detach().to(torch::kFloat64);
    const Eigen::VectorXd t = to_eigen(theta);
    EXPECT_LT(relative(w.to(torch::kFloat64), to_tensor(lin->basis().synthesize(t))), dtype == torch::kFloat64 ? 1e-12 : 1e-6) << what;
    if (dtype == torch::kFloat64)
      expect_derivatives_match_differences([&](const torch::Tensor& th) { return weight_through_ops(*lin, th); }, theta, true, what);
  }
}

TEST_P(OpsTest, NormalisationsEqualTheModulesOnBothLayouts) {
  const auto [spec, dtype] = GetParam();
  const auto rep = symm::test::scrambled(direct_sum(Representation::regular(make_group(spec)), Representation::trivial(make_group(spec))), 3);
  torch::manual_seed(5);
  const auto x = torch::randn({4, rep.size()}, torch::dtype(dtype)) + 0.5;
  eRMSNorm rms(rep);
  eLayerNorm ln(rep);
  const double eps = 1e-5;
  const auto rms_op = op("symm::rms_normalise").typed<torch::Tensor(const torch::Tensor&, int64_t, double)>();
  const auto ln_op = op("symm::layer_normalise")
                         .typed<torch::Tensor(const torch::Tensor&, const c10::optional<torch::Tensor>&, int64_t, double)>();
  const auto centre = constant(functional::layer_norm_constants(rep), "centre");
  ASSERT_TRUE(centre.defined()) << "a trivial summand gives the all-ones direction an invariant part";
  const auto u = centre.to(dtype);
  EXPECT_LT(relative(rms_op.call(x, -1, eps), rms->normalise(x)), tolerance(dtype)) << spec;
  EXPECT_LT(relative(ln_op.call(x, u, -1, eps), ln->normalise(x)), tolerance(dtype)) << spec;
  // Features first (D, N), as the isotypic layers hold them: the same values transposed.
  const auto xt = x.t().contiguous();
  EXPECT_LT(relative(rms_op.call(xt, 0, eps).t(), rms->normalise(x)), tolerance(dtype)) << spec;
  EXPECT_LT(relative(ln_op.call(xt, u, 0, eps).t(), ln->normalise(x)), tolerance(dtype)) << spec;
  if (dtype != torch::kFloat64) return;
  expect_derivatives_match_differences([&](const torch::Tensor& t) { return rms_op.call(t, -1, eps); }, x, true, "rms dim -1");
  expect_derivatives_match_differences([&](const torch::Tensor& t) { return rms_op.call(t, 0, eps); }, xt, true, "rms dim 0");
  expect_derivatives_match_differences([&](const torch::Tensor& t) { return ln_op.call(t, u, -1, eps); }, x, true, "layer dim -1");
  expect_derivatives_match_differences([&](const torch::Tensor& t) { return ln_op.call(t, u, 0, eps); }, xt, true, "layer dim 0");
}

INSTANTIATE_TEST_SUITE_P(Groups, OpsTest,
                         ::testing::Combine(::testing::Values("C2", "C4", "D3", "Q8"), ::testing::Values(torch::kFloat32, torch::kFloat64)));

TEST(Ops, RmsNormaliseOverTheChannelsOfASeries) {
  // (N, C, T) over dim 1, T above one block of the kernel's columns: (N, T, C) over its last dim, transposed.
  torch::manual_seed(6);
  const auto x = torch::randn({3, 10, 300}, torch::kFloat64) + 0.3;
  const auto rms_op = op("symm::rms_normalise").typed<torch::Tensor(const torch::Tensor&, int64_t, double)>();
  EXPECT_LT(relative(rms_op.call(x, 1, 1e-6), rms_op.call(x.transpose(1, 2).contiguous(), -1, 1e-6).transpose(1, 2)), 1e-12);
  expect_derivatives_match_differences([&](const torch::Tensor& t) { return rms_op.call(t, 1, 1e-6); }, x.narrow(2, 0, 7), true,
                                       "rms dim 1");
}

TEST(Ops, BadInputIsNamed) {
  const auto tiles = torch::randn({2, 2, 2});
  symm::test::expect_error([&] { functional::hom_tiles(torch::randn({7}), c10::nullopt, tiles, 2); }, {"hom_tiles", "7 coefficients"});
  symm::test::expect_error([&] { functional::hom_tiles(torch::randn({8}), c10::nullopt, torch::randn({4, 4}), 2); },
                           {"hom_tiles", "expected tiles (r, s_out, s_in)"});
  symm::test::expect_error([&] { functional::layer_normalise(torch::randn({3, 5}), torch::randn({4}), -1, 1e-5); },
                           {"layer_normalise", "centre of shape [5]"});
}

}  // namespace
