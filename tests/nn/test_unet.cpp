// eConditionalUnet1D and ConditionalUnet1D (the diffusion-policy U-Net of symm_learning): equivariance on every
// group element with equivariant local and global conditions and an invariant timestep, in train and eval;
// output shapes for one to three levels; gradients against finite differences; training and checkpoints;
// the errors of bad input.
#include <gtest/gtest.h>

#include "symm/group/named.h"
#include "symm/nn/checkpoint.h"
#include "symm/nn/equivariance.h"
#include "symm/nn/unet.h"
#include "test_util.h"

using namespace symm::nn;
using symm::group::make_group;

namespace {

using Shape = std::vector<int64_t>;

/// ρ(g) applied to the channel axis (1) of (B, C, L) or (B, C).
torch::Tensor act_channels(const Representation& rep, int g, const torch::Tensor& x) {
  return x.dim() == 2 ? act(rep, g, x) : act(rep, g, x.transpose(1, 2)).transpose(1, 2);
}

/// max_g |f(ρ(g)x, ρ_loc(g)z, ρ_glob(g)c, t) − ρ(g) f(x, z, c, t)|∞ / |f(x, z, c, t)|∞ over every element checked.
/// act_on_local / act_on_film false leave that condition untransformed.
double unet_error(eConditionalUnet1D& net, const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& local,
                  const torch::Tensor& film, bool act_on_local = true, bool act_on_film = true) {
  const auto& o = net->options;
  const auto y = net(x, t, local, film);
  double worst = 0;
  for (int g : elements_to_check(*o.in_rep().group())) {
    const auto gl = local.defined() && act_on_local ? act_channels(*o.local_cond_rep(), g, local) : local;
    const auto gc = film.defined() && act_on_film ? act_channels(*o.global_cond_rep(), g, film) : film;
    const auto gy = net(act_channels(o.in_rep(), g, x), t, gl, gc);
    worst = std::max(worst, ((gy - act_channels(o.in_rep(), g, y)).abs().max() / y.abs().max()).item<double>());
  }
  return worst;
}

class UnetTest : public ::testing::TestWithParam<std::tuple<const char*, torch::Dtype>> {};

TEST_P(UnetTest, IsEquivariantWithEquivariantConditionsInTrainAndEval) {
  const auto [name, dtype] = GetParam();
  const auto g = make_group(name);
  const int n = std::max(4, g->order());  // at least 4 channels: two would often leave the final ReLU dead
  const auto reg = Representation::regular(g);
  // Inputs and conditions in scrambled bases: only the hidden layers need the permutation basis.
  const auto in = symm::test::scrambled(direct_sum(reg, Representation::trivial(g)), 1);
  const auto local = symm::test::scrambled(direct_sum(Representation::irrep(g, 1), Representation::trivial(g)), 2);
  const auto global = symm::test::scrambled(reg, 3);
  torch::manual_seed(7);
  // Stride down-sampling, both conditions, two levels; pooling, global only, no norm, three levels.
  eConditionalUnet1D strided(eConditionalUnet1DOptions(in).local_cond_rep(local).global_cond_rep(global)
                                 .diffusion_step_embed_dim(4).down_dims({n, 2 * n}));
  eConditionalUnet1D pooled(eConditionalUnet1DOptions(in).global_cond_rep(global).diffusion_step_embed_dim(4)
                                .down_dims({n, n, 2 * n}).downsample("pooling").normalize(false).activation(Activation::gelu()));
  strided->to(dtype);
  pooled->to(dtype);
  const auto opt = torch::dtype(dtype);
  const auto x4 = torch::randn({2, in.size(), 4}, opt), x8 = torch::randn({2, in.size(), 8}, opt);
  const auto z = torch::randn({2, local.size(), 4}, opt), c = torch::randn({2, global.size()}, opt);
  const auto t = torch::tensor({3.0, 17.0}, opt);
  const double tol = symm::test::tolerance(dtype);
  for (bool train : {true, false}) {
    strided->train(train);
    pooled->train(train);
    torch::NoGradGuard no_grad;
    EXPECT_LT(unet_error(strided, x4, t, z, c), tol) << "stride, local + global, train=" << train;
    EXPECT_LT(unet_error(pooled, x8, t, torch::Tensor(), c), tol) << "pooling, global, train=" << train;
  }
  // The conditions and the timestep reach the output (the checks above are not vacuous). The local
  // condition is equivariant: left untransformed it breaks the equality. The global one enters through its
  // irrep norms only (symm_learning's FiLM encoder), so the output is also equivariant without transforming it.
  torch::NoGradGuard no_grad;
  EXPECT_GT(unet_error(strided, x4, t, z, c, /*act_on_local=*/false), 1e-3);
  EXPECT_LT(unet_error(strided, x4, t, z, c, /*act_on_local=*/true, /*act_on_film=*/false), tol);
  const auto y = strided(x4, t, z, c);
  EXPECT_GT((strided(x4, t, z, torch::randn_like(c)) - y).abs().max().item<double>(), 1e-3 * y.abs().max().item<double>());
  EXPECT_GT((strided(x4, t, torch::randn_like(z), c) - y).abs().max().item<double>(), 1e-3 * y.abs().max().item<double>());
  EXPECT_GT((strided(x4, t + 5, z, c) - y).abs().max().item<double>(), 1e-3 * y.abs().max().item<double>());
}

INSTANTIATE_TEST_SUITE_P(Groups, UnetTest,
                         ::testing::Combine(::testing::Values("C2", "D4", "Q8"),
                                            ::testing::Values(torch::kFloat32, torch::kFloat64)),
                         symm::test::GroupAndDtypeName());

TEST(Unet, OutputKeepsTheHorizonForEveryDepthAndTimestepForm) {
  const auto g = make_group("C2");
  const auto rep = Representation::regular(g).copies(2);
  torch::manual_seed(1);
  torch::NoGradGuard no_grad;
  for (const std::string downsample : {"stride", "pooling"}) {
    for (std::vector<int64_t> dims : {std::vector<int64_t>{4}, {4, 6}, {4, 4, 8}}) {
      eConditionalUnet1D net(eConditionalUnet1DOptions(rep).local_cond_rep(rep).diffusion_step_embed_dim(2).down_dims(dims)
                                 .downsample(downsample));
      const int64_t horizon = 2 * net->horizon_multiple();
      EXPECT_EQ(net->horizon_multiple(), int64_t{1} << (dims.size() - 1));
      EXPECT_EQ(net->up_modules->size(), dims.size() - 1);
      const auto x = torch::randn({3, 4, horizon}), z = torch::randn({3, 4, horizon});
      const auto y = net(x, torch::tensor({1.0, 2.0, 3.0}), z);
      EXPECT_EQ(y.sizes(), (Shape{3, 4, horizon})) << downsample << " levels=" << dims.size();
      // A scalar tensor, a (1) tensor and a number are the same timestep for every sample.
      const auto a = net(x, torch::tensor(5.0), z), b = net(x, torch::tensor({5.0}), z);
      EXPECT_TRUE(torch::equal(a, b));
      EXPECT_TRUE(torch::equal(a, net(x, torch::tensor(5, torch::kLong), z)));  // integer steps, as symm_learning's
      EXPECT_EQ(net(x, torch::tensor(5.0)).sizes(), y.sizes());  // the local condition may be left out, as there
    }
  }
  // Hidden widths are whole regular copies (5 channels of C2 → 3 copies) and the condition is the global
  // representation followed by the step embedding's trivial copies.
  eConditionalUnet1D net(eConditionalUnet1DOptions(rep).global_cond_rep(Representation::irrep(g, 1)).diffusion_step_embed_dim(6)
                             .down_dims({5}));
  EXPECT_EQ(net->cond_rep().size(), 7);
  EXPECT_EQ(net->final_conv->out_rep().size(), 6);
}

TEST(Unet, SinusoidalEmbeddingIsSymmLearnings) {
  const auto t = torch::tensor({0.0, 2.0}, torch::kFloat64);
  const auto e = functional::sinusoidal_pos_emb(t, 6);
  // half = 3, ω_i = 10000^(−i/2).
  const auto w = torch::tensor({1.0, 1e-2, 1e-4}, torch::kFloat64);
  const auto expected = torch::cat({torch::sin(t.unsqueeze(1) * w), torch::cos(t.unsqueeze(1) * w)}, 1);
  EXPECT_TRUE(torch::allclose(e, expected, 1e-12, 1e-12));
}

TEST(Unet, GradientsEqualFiniteDifferences) {
  const auto g = make_group("C2");
  const auto reg = Representation::regular(g);
  torch::manual_seed(2);
  // Smooth activation: finite differences across a ReLU kink would measure the kink, not the gradient.
  eConditionalUnet1D net(eConditionalUnet1DOptions(symm::test::scrambled(direct_sum(reg, Representation::trivial(g)), 9))
                             .local_cond_rep(reg).global_cond_rep(reg).diffusion_step_embed_dim(2).down_dims({2, 4})
                             .activation(Activation::silu()));
  net->to(torch::kFloat64);
  const auto opt = torch::dtype(torch::kFloat64);
  const auto x = torch::randn({2, 3, 4}, opt).requires_grad_(), z = torch::randn({2, 2, 4}, opt), c = torch::randn({2, 2}, opt);
  const auto t = torch::tensor({1.0, 4.0}, opt);
  const auto r = torch::randn({2, 3, 4}, opt);
  (net(x, t, z, c) * r).sum().backward();
  const auto loss = [&] {
    torch::NoGradGuard no_grad;
    return (net(x, t, z, c) * r).sum().item<double>();
  };
  // One coordinate of every parameter tensor (the middle one), three of the sample.
  const auto check = [&](const torch::Tensor& p, const torch::Tensor& grad, const std::string& what, bool ends) {
    std::vector<int64_t> at{p.numel() / 2};
    if (ends) at.insert(at.end(), {0, p.numel() - 1});
    symm::test::expect_central_differences(p, grad, loss, at, what);
  };
  int checked = 0;
  for (const auto& p : net->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key() << " gets no gradient";
    check(p.value(), p.value().grad(), p.key(), false);
    ++checked;
  }
  check(x, x.grad(), "sample", true);
  EXPECT_GT(checked, 40);
}

TEST(Unet, TrainsAndRoundTripsThroughACheckpoint) {
  const auto g = make_group("D4");
  const auto reg = Representation::regular(g);
  const auto options = eConditionalUnet1DOptions(reg).global_cond_rep(reg).diffusion_step_embed_dim(4).down_dims({8, 8});
  torch::manual_seed(0);
  eConditionalUnet1D a(options);
  const auto x = torch::randn({4, 8, 4}), c = torch::randn({4, 8}), t = torch::tensor({1.0, 5.0, 9.0, 20.0});
  const auto target = torch::randn({4, 8, 4});
  torch::optim::Adam opt(a->parameters(), 1e-2);
  double first = 0, last = 0;
  for (int step = 0; step < 25; ++step) {
    opt.zero_grad();
    const auto loss = (a(x, t, torch::Tensor(), c) - target).square().mean();
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_LT(last, 0.7 * first);
  const std::string path = ::testing::TempDir() + "econditional_unet1d.symm";
  torch::manual_seed(1);
  eConditionalUnet1D b(options);
  symm::save(a, path);
  symm::load(b, path);
  a->eval();
  b->eval();
  torch::NoGradGuard no_grad;
  const auto ya = a(x, t, torch::Tensor(), c);
  EXPECT_LT((ya - b(x, t, torch::Tensor(), c)).abs().max().item<double>(), 1e-5 * ya.abs().max().item<double>());
  // clone() rebuilds the levels' type-erased resamplers with the copied weights.
  const auto copy = std::dynamic_pointer_cast<eConditionalUnet1DImpl>(a->clone());
  ASSERT_TRUE(copy);
  EXPECT_TRUE(torch::allclose(copy->forward(x, t, torch::Tensor(), c), ya));
  // A model of another depth is refused, not half-loaded.
  eConditionalUnet1D deeper(eConditionalUnet1DOptions(options).down_dims({8, 8, 8}));
  EXPECT_THROW(symm::load(deeper, path), c10::Error);
}

TEST(Unet, PlainModelShapesAndTraining) {
  torch::manual_seed(3);
  {
    torch::NoGradGuard no_grad;
    for (std::vector<int64_t> dims : {std::vector<int64_t>{8}, {8, 16, 16}}) {
      ConditionalUnet1D net(ConditionalUnet1DOptions(3).local_cond_dim(2).global_cond_dim(5).diffusion_step_embed_dim(4)
                                .down_dims(dims));
      const int64_t horizon = 2 * net->horizon_multiple();
      const auto y = net(torch::randn({2, 3, horizon}), torch::tensor(7.0), torch::randn({2, 2}), torch::randn({2, 5}));
      EXPECT_EQ(y.sizes(), (Shape{2, 3, horizon}));
      EXPECT_EQ(net->up_modules->size(), dims.size());  // symm_learning's baseline decodes every level
    }
    // Bias-only FiLM and GroupNorm with several groups.
    ConditionalUnet1D bias_only(ConditionalUnet1DOptions(4).diffusion_step_embed_dim(4).down_dims({8, 8}).n_groups(2)
                                    .cond_predict_scale(false));
    EXPECT_EQ(bias_only(torch::randn({2, 4, 6}), torch::tensor({1.0, 2.0})).sizes(), (Shape{2, 4, 6}));
  }
  ConditionalUnet1D net(ConditionalUnet1DOptions(3).global_cond_dim(4).diffusion_step_embed_dim(4).down_dims({8, 16}));
  const auto x = torch::randn({4, 3, 8}), c = torch::randn({4, 4}), t = torch::tensor({0.0, 3.0, 6.0, 9.0});
  const auto target = torch::randn({4, 3, 8});
  torch::optim::Adam opt(net->parameters(), 1e-2);
  double first = 0, last = 0;
  for (int step = 0; step < 25; ++step) {
    opt.zero_grad();
    const auto loss = (net(x, t, torch::Tensor(), c) - target).square().mean();
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_LT(last, 0.7 * first);
}

TEST(Unet, BadInputsRaiseNamedErrors) {
  using symm::test::expect_error;
  const auto g = make_group("D4");
  const auto reg = Representation::regular(g);
  const auto small = eConditionalUnet1DOptions(reg).global_cond_rep(reg).diffusion_step_embed_dim(2).down_dims({8, 8});
  eConditionalUnet1D net(small);
  const auto x = torch::randn({2, 8, 4}), c = torch::randn({2, 8}), one = torch::tensor(1.0);
  const char* m = "eConditionalUnet1D";
  expect_error([&] { net(torch::randn({2, 7, 4}), one, torch::Tensor(), c); }, {m, "(B, 8, L)", "[2, 7, 4]"});
  expect_error([&] { net(torch::randn({2, 8, 5}), one, torch::Tensor(), c); }, {m, "multiple of 2", "L = 5"});
  expect_error([&] { net(x, one, torch::Tensor(), torch::randn({2, 5})); }, {m, "film_cond (2, 8)", "[2, 5]"});
  expect_error([&] { net(x, one); }, {m, "film_cond (2, 8)"});
  expect_error([&] { net(x, one, torch::randn({2, 8, 4}), c); }, {m, "no local_cond_rep"});
  expect_error([&] { net(x, torch::ones({3}), torch::Tensor(), c); }, {m, "scalar, (1) or (2)", "[3]"});
  eConditionalUnet1D with_local(eConditionalUnet1DOptions(reg).local_cond_rep(reg).diffusion_step_embed_dim(2).down_dims({8}));
  expect_error([&] { with_local(x, one, torch::randn({2, 8, 3})); }, {m, "local_cond (2, 8, 4)", "[2, 8, 3]"});
  expect_error([&] { with_local(x, one, torch::Tensor(), c); }, {m, "no global_cond_rep"});
  expect_error([&] { eConditionalUnet1D(eConditionalUnet1DOptions(small).diffusion_step_embed_dim(3)); }, {m, "even", "got 3"});
  expect_error([&] { eConditionalUnet1D(eConditionalUnet1DOptions(small).kernel_size(4)); }, {m, "odd", "got 4"});
  expect_error([&] { eConditionalUnet1D(eConditionalUnet1DOptions(small).downsample("avg")); }, {m, "'stride' or 'pooling'", "'avg'"});
  expect_error([&] { eConditionalUnet1D(eConditionalUnet1DOptions(small).down_dims({})); }, {m, "at least one level"});
  expect_error([&] { eConditionalUnet1D(eConditionalUnet1DOptions(small).cond_predict_scale(false)); }, {"cond_predict_scale=true"});
  expect_error([&] { eConditionalUnet1D(eConditionalUnet1DOptions(small).global_cond_rep(Representation::regular(make_group("C4")))); },
               {m, "in_rep's group D4", "C4"});
  // The block's output feeds a pointwise activation: regular copies in another basis would break equivariance.
  expect_error([&] { eConditionalResidualBlock1D(reg, symm::test::scrambled(reg, 1), reg); },
               {"eConditionalResidualBlock1D", "permutation basis"});
  eConditionalResidualBlock1D blk(reg, reg, reg);
  expect_error([&] { blk(x, torch::randn({2, 3})); }, {"eConditionalResidualBlock1D", "condition (2, 8)", "[2, 3]"});

  const char* p = "ConditionalUnet1D";
  ConditionalUnet1D plain(ConditionalUnet1DOptions(3).local_cond_dim(2).diffusion_step_embed_dim(4).down_dims({8, 8}));
  expect_error([&] { plain(torch::randn({2, 3, 4}), one, torch::randn({2, 2, 4})); }, {p, "local_cond (2, 2)", "[2, 2, 4]"});
  expect_error([&] { plain(torch::randn({2, 3, 4}), one); }, {p, "local_cond (2, 2)"});
  expect_error([&] { plain(torch::randn({2, 4, 4}), one, torch::randn({2, 2})); }, {p, "(B, 3, L)", "[2, 4, 4]"});
  expect_error([&] { plain(torch::randn({2, 3, 3}), one, torch::randn({2, 2})); }, {p, "multiple of 2", "L = 3"});
  expect_error([&] { plain(torch::randn({2, 3, 4}), one, torch::randn({2, 2}), torch::randn({2, 1})); }, {p, "no global_cond_dim"});
  expect_error([&] { ConditionalUnet1D(ConditionalUnet1DOptions(3).down_dims({8, 12}).n_groups(8)); }, {p, "n_groups=8", "got 12"});
  expect_error([&] { ConditionalUnet1D(ConditionalUnet1DOptions(3).down_dims({8}).n_groups(2)); },
               {p, "n_groups=2", "input_dim + local_cond_dim = 3"});
  expect_error([&] { ConditionalUnet1D(ConditionalUnet1DOptions(3).n_groups(0)); }, {p, "n_groups must be positive", "got 0"});
}

}  // namespace
