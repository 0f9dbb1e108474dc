// eConv1d and eConvTranspose1d: equivariance over every group element (train and eval, float32 and float64),
// channel groups, parity with torch's Conv1d / ConvTranspose1d for the trivial group, gradients against
// finite differences, the eval cache, checkpoints and the errors of bad input.
#include <gtest/gtest.h>

#include "symm/group/named.h"
#include "symm/nn/checkpoint.h"
#include "symm/nn/conv.h"
#include "symm/nn/equivariance.h"
#include "test_util.h"

using namespace symm::nn;
using symm::group::make_group;

namespace {

using Forward = std::function<torch::Tensor(const torch::Tensor&)>;

/// max_g |f(ρ_in(g)x) − ρ_out(g)f(x)| / |f(x)| for f on channel-first inputs (B, C, T).
double conv_error(const Forward& f, const Representation& in, const Representation& out, const torch::Tensor& x) {
  const auto channel_last = [&](const torch::Tensor& xl) { return f(xl.transpose(-1, -2)).transpose(-1, -2); };
  return equivariance_error(channel_last, in, out, x.transpose(-1, -2).contiguous(), elements_to_check(*in.group()))
      .max_relative;
}

/// D3 given by its generators (a rotation by 120° and a reflection of the plane), not by name.
symm::group::GroupPtr generated_group() {
  const double c = -0.5, s = std::sqrt(3.0) / 2;
  Eigen::Matrix2d rot, flip;
  rot << c, -s, s, c;
  flip << 1, 0, 0, -1;
  return symm::group::Group::from_generators("D3gen", {rot, flip});
}

/// A structured representation with a trivial summand and the same in a random basis (for the generated
/// group: its defining 2-D representation, from the generator images, plus the regular one).
std::pair<Representation, Representation> reps_of(const std::string& name) {
  if (name == "gen") {
    const auto g = generated_group();
    const double c = -0.5, s = std::sqrt(3.0) / 2;
    Eigen::Matrix2d rot, flip;
    rot << c, -s, s, c;
    flip << 1, 0, 0, -1;
    const auto plane = Representation::from_generators(g, {rot, flip}, "plane");
    return {direct_sum(plane, Representation::trivial(g)), direct_sum(Representation::regular(g), plane)};
  }
  const auto g = make_group(name);
  const auto in = direct_sum(Representation::regular(g), Representation::trivial(g));
  return {in, symm::test::scrambled(direct_sum(Representation::regular(g), Representation::trivial(g, 2)), 3)};
}

class ConvTest : public ::testing::TestWithParam<std::tuple<const char*, torch::Dtype>> {};

TEST_P(ConvTest, ConvolutionsAreEquivariantInTrainAndEval) {
  const auto [name, dtype] = GetParam();
  const auto [in, out] = reps_of(name);
  torch::manual_seed(1);
  const auto x = torch::randn({2, in.size(), 9}, torch::dtype(dtype));
  const double tol = symm::test::tolerance(dtype);
  eConv1d conv(eConv1dOptions(in, out, 3).stride(2).padding(2).dilation(2));
  eConv1d circular(eConv1dOptions(in, out, 3).padding(1).padding_mode("circular"));
  eConvTranspose1d up(eConvTranspose1dOptions(out, in, 4).stride(2).padding(1).output_padding(1));
  for (auto* m : std::initializer_list<torch::nn::Module*>{conv.get(), circular.get(), up.get()}) m->to(dtype);
  for (bool train : {true, false}) {
    for (auto* m : std::initializer_list<torch::nn::Module*>{conv.get(), circular.get(), up.get()}) m->train(train);
    EXPECT_LT(conv_error([&](const torch::Tensor& t) { return conv(t); }, in, out, x), tol) << "eConv1d train=" << train;
    EXPECT_LT(conv_error([&](const torch::Tensor& t) { return circular(t); }, in, out, x), tol) << "circular train=" << train;
    const auto y = torch::randn({2, out.size(), 5}, torch::dtype(dtype));
    EXPECT_LT(conv_error([&](const torch::Tensor& t) { return up(t); }, out, in, y), tol) << "eConvTranspose1d train=" << train;
    torch::NoGradGuard no_grad;
    EXPECT_EQ(conv(x).sizes(), (std::vector<int64_t>{2, out.size(), 5}));
    EXPECT_EQ(up(y).sizes(), (std::vector<int64_t>{2, in.size(), 11}));
    EXPECT_GT(conv(x).abs().max().item<double>(), 0.1);
  }
}

INSTANTIATE_TEST_SUITE_P(Groups, ConvTest,
                         ::testing::Combine(::testing::Values("C2", "D4", "C8", "Q8", "O", "gen"),
                                            ::testing::Values(torch::kFloat32, torch::kFloat64)),
                         symm::test::GroupAndDtypeName());

TEST(Conv, ChannelGroupsAreEquivariantAndIndependent) {
  const auto g = make_group("D4");
  const auto sigma_in = direct_sum(Representation::regular(g), Representation::trivial(g));
  const auto sigma_out = Representation::regular(g);
  const auto in = sigma_in.copies(3), out = sigma_out.copies(3);
  eConv1d conv(eConv1dOptions(in, out, 3).groups(3).padding(1));
  eConvTranspose1d up(eConvTranspose1dOptions(out, in, 3).groups(3).stride(2));
  conv->to(torch::kFloat64);
  up->to(torch::kFloat64);
  EXPECT_EQ(conv->weight().sizes(), (std::vector<int64_t>{out.size(), sigma_in.size(), 3}));
  EXPECT_EQ(up->weight().sizes(), (std::vector<int64_t>{out.size(), sigma_in.size(), 3}));
  const auto x = torch::randn({2, in.size(), 6}, torch::kFloat64);
  EXPECT_LT(conv_error([&](const torch::Tensor& t) { return conv(t); }, in, out, x), 1e-10);
  const auto y = torch::randn({2, out.size(), 6}, torch::kFloat64);
  EXPECT_LT(conv_error([&](const torch::Tensor& t) { return up(t); }, out, in, y), 1e-10);
  // Group 1's output depends on group 1's input channels only.
  auto x2 = x.clone();
  x2.narrow(1, 0, sigma_in.size()).normal_();
  const auto c = sigma_out.size();
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(conv(x).narrow(1, c, 2 * c), conv(x2).narrow(1, c, 2 * c)));
  EXPECT_FALSE(torch::equal(conv(x).narrow(1, 0, c), conv(x2).narrow(1, 0, c)));
}

TEST(Conv, EqualsTorchConv1dForTheTrivialGroup) {
  const auto g = make_group("C1");
  for (const std::string mode : {"zeros", "reflect", "replicate", "circular"}) {
    for (int64_t groups : {1, 2}) {
      torch::manual_seed(2);
      auto opts = eConv1dOptions(Representation::trivial(g, 4), Representation::trivial(g, 6), 3)
                      .stride(2).padding(2).dilation(2).groups(groups).padding_mode(mode);
      eConv1d ours(opts);
      auto topts = torch::nn::Conv1dOptions(4, 6, 3).stride(2).padding(2).dilation(2).groups(groups);
      if (mode == "reflect") topts.padding_mode(torch::kReflect);
      if (mode == "replicate") topts.padding_mode(torch::kReplicate);
      if (mode == "circular") topts.padding_mode(torch::kCircular);
      torch::nn::Conv1d theirs(topts);
      // Tap k of group j: rows of group j of torch's weight, at position k.
      const auto w = theirs->weight.detach();  // (6, 4/groups, 3)
      const auto taps = w.view({groups, 6 / groups, 4 / groups, 3}).permute({0, 3, 1, 2}).reshape({groups * 3, 6 / groups, 4 / groups});
      ours->set_taps(taps, theirs->bias.detach());
      EXPECT_TRUE(torch::allclose(ours->weight(), w, 1e-6, 1e-6)) << mode << " groups=" << groups;
      const auto x = torch::randn({3, 4, 11});
      EXPECT_LT((ours(x) - theirs(x)).abs().max().item<double>(), 1e-5) << mode << " groups=" << groups;
      const auto x1 = torch::randn({4, 11});  // unbatched
      // torch 1.13's circular padding needs a batch dimension: compare with the batch of one.
      EXPECT_LT((ours(x1) - theirs(x1.unsqueeze(0)).squeeze(0)).abs().max().item<double>(), 1e-5)
          << mode << " groups=" << groups << " unbatched";
    }
  }
}

TEST(Conv, EqualsTorchConvTranspose1dForTheTrivialGroup) {
  const auto g = make_group("C1");
  for (int64_t groups : {1, 2}) {
    torch::manual_seed(3);
    eConvTranspose1d ours(eConvTranspose1dOptions(Representation::trivial(g, 4), Representation::trivial(g, 6), 4)
                              .stride(3).padding(1).output_padding(2).dilation(1).groups(groups));
    torch::nn::ConvTranspose1d theirs(
        torch::nn::ConvTranspose1dOptions(4, 6, 4).stride(3).padding(1).output_padding(2).groups(groups));
    const auto w = theirs->weight.detach();  // (4, 6/groups, 4)
    const auto taps = w.view({groups, 4 / groups, 6 / groups, 4}).permute({0, 3, 2, 1}).reshape({groups * 4, 6 / groups, 4 / groups});
    ours->set_taps(taps, theirs->bias.detach());
    EXPECT_TRUE(torch::allclose(ours->weight(), w, 1e-6, 1e-6)) << "groups=" << groups;
    const auto x = torch::randn({2, 4, 7});
    EXPECT_LT((ours(x) - theirs(x)).abs().max().item<double>(), 1e-5) << "groups=" << groups;
  }
}

TEST(Conv, GradientsEqualFiniteDifferences) {
  const auto g = make_group("D4");
  const auto in = direct_sum(Representation::regular(g), Representation::trivial(g));
  const auto out = symm::test::scrambled(direct_sum(Representation::irrep(g, 4), Representation::trivial(g)), 4);
  for (bool transposed : {false, true}) {
    torch::manual_seed(4);
    eConv1d conv(eConv1dOptions(in, out, 3).stride(2).padding(1));
    eConvTranspose1d up(eConvTranspose1dOptions(in, out, 3).stride(2).padding(1));
    symm::nn::detail::eConvBase& m = transposed ? static_cast<symm::nn::detail::eConvBase&>(*up) : static_cast<symm::nn::detail::eConvBase&>(*conv);
    torch::nn::Module& module = transposed ? static_cast<torch::nn::Module&>(*up) : static_cast<torch::nn::Module&>(*conv);
    module.to(torch::kFloat64);
    const Forward f = [&](const torch::Tensor& t) { return transposed ? up(t) : conv(t); };
    const auto x = torch::randn({2, in.size(), 5}, torch::dtype(torch::kFloat64).requires_grad(true));
    const auto r = f(x).detach().clone().normal_();
    (f(x) * r).sum().backward();
    auto loss = [&] { torch::NoGradGuard no_grad; return (f(x) * r).sum().item<double>(); };
    const std::string what = transposed ? "transposed " : "";
    for (auto* p : {&m.weight_dof, &m.bias_dof})
      symm::test::expect_central_differences(*p, p->grad().clone(), loss, symm::test::all_coordinates(p->numel()), what + "coefficient");
    symm::test::expect_central_differences(x, x.grad().clone(), loss, {0, 7, 20}, what + "input");
  }
}

TEST(Conv, EvalCachesTheKernelOnlyWhenNoGradientIsNeeded) {
  const auto g = make_group("C8");
  const auto rep = Representation::regular(g);
  eConv1d conv(eConv1dOptions(rep, rep, 3).padding(1));
  const auto x = torch::randn({2, rep.size(), 6});
  const auto y_train = conv(x).detach();
  conv->eval();
  {
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(torch::allclose(conv(x), y_train, 1e-6, 1e-6));
    conv->weight_dof.mul_(2);  // an optimiser step: the cache sees the new coefficients
    EXPECT_FALSE(torch::allclose(conv(x), y_train, 1e-3, 1e-3));
    conv->weight_dof.div_(2);
  }
  // Eval with autograd on: the gradient still reaches the coefficients.
  conv(x).sum().backward();
  ASSERT_TRUE(conv->weight_dof.grad().defined());
  EXPECT_GT(conv->weight_dof.grad().abs().sum().item<double>(), 0);
}

TEST(Conv, SaveLoadRoundTripAndClone) {
  const auto g = make_group("Q8");
  const auto in = direct_sum(Representation::regular(g), Representation::trivial(g));
  const std::string path = ::testing::TempDir() + "econv.symm";
  eConv1d a(eConv1dOptions(in, in, 3).padding(1)), b(eConv1dOptions(in, in, 3).padding(1));
  symm::save(a, path);
  symm::load(b, path);
  const auto x = torch::randn({2, in.size(), 5});
  a->eval();
  b->eval();
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(a(x), b(x)));
  const auto c = std::dynamic_pointer_cast<eConv1dImpl>(a->clone());
  EXPECT_TRUE(torch::equal(a(x), c->forward(x)));
  EXPECT_NE(c->weight_dof.data_ptr(), a->weight_dof.data_ptr());
  eConvTranspose1d ta(eConvTranspose1dOptions(in, in, 2).stride(2)), tb(eConvTranspose1dOptions(in, in, 2).stride(2));
  symm::save(ta, path);
  symm::load(tb, path);
  EXPECT_TRUE(torch::equal(ta(x), tb(x)));
  // A checkpoint of another kernel size is refused.
  eConv1d other(eConv1dOptions(in, in, 5));
  symm::test::expect_error([&] { symm::load(other, path); }, {"symm::load"});
}

TEST(Conv, BadInputsRaiseNamedErrors) {
  using symm::test::expect_error;
  const auto g = make_group("D4");
  const auto rep = Representation::regular(g);
  eConv1d conv(eConv1dOptions(rep, rep, 3));
  expect_error([&] { conv(torch::randn({2, 7, 5})); }, {"eConv1d", "expected 8 input channels", "[2, 7, 5]"});
  expect_error([&] { conv(torch::randn({1, 2, 8, 5})); }, {"eConv1d", "(B, 8, T)", "[1, 2, 8, 5]"});
  expect_error([&] { conv(torch::randn({2, 8, 2})); }, {"eConv1d", "2 time steps", "spans 3"});
  expect_error([&] { conv(torch::randn({2, 8, 5}, torch::kFloat64)); }, {"eConv1d", "Double", "Float"});
  expect_error([&] { eConv1d(eConv1dOptions(rep, rep, 0)); }, {"eConv1d", "kernel_size > 0", "got 0"});
  expect_error([&] { eConv1d(eConv1dOptions(rep, rep, 3).stride(0)); }, {"eConv1d", "stride > 0", "got 0"});
  expect_error([&] { eConv1d(eConv1dOptions(rep, rep, 3).padding(-1)); }, {"eConv1d", "padding >= 0", "got -1"});
  expect_error([&] { eConv1d(eConv1dOptions(rep, rep, 3).padding_mode("mirror")); }, {"eConv1d", "padding_mode", "'mirror'"});
  expect_error([&] { eConvTranspose1d(eConvTranspose1dOptions(rep, rep, 3).padding_mode("reflect")); },
               {"eConvTranspose1d", "zeros", "'reflect'"});
  expect_error([&] { eConvTranspose1d(eConvTranspose1dOptions(rep, rep, 3).stride(2).output_padding(2)); },
               {"eConvTranspose1d", "output_padding", "got 2"});
  expect_error([&] { eConv1d(eConv1dOptions(rep, rep, 3).groups(3)); }, {"eConv1d", "groups=3", "got 8"});
  // Regular copies in a scrambled basis: the channel groups are not sub-representations.
  const auto mixed = symm::test::scrambled(rep.copies(2), 5);
  expect_error([&] { eConv1d(eConv1dOptions(mixed, mixed, 3).groups(2)); }, {"eConv1d", "groups=2", "equal sub-representations"});
  // Hom_G(trivial, sign irrep) = 0.
  expect_error([&] { eConv1d(eConv1dOptions(Representation::trivial(g), Representation::irrep(g, 1), 3)); },
               {"eConv1d", "zero-dimensional"});
  eConv1d reflect(eConv1dOptions(rep, rep, 3).padding(4).padding_mode("reflect"));
  expect_error([&] { reflect(torch::randn({1, 8, 4})); }, {"eConv1d", "reflect", "padding < the 4 time steps"});
  eConvTranspose1d up(eConvTranspose1dOptions(rep, rep, 1).padding(3));
  expect_error([&] { up(torch::randn({1, 8, 2})); }, {"eConvTranspose1d", "2 time steps", "at least 1"});
  expect_error([&] { functional::econv1d(torch::randn({1, 8, 5}), torch::randn({8, 8, 2}), {}, conv->options); },
               {"eConv1d", "weight of shape [8, 8, 3]", "[8, 8, 2]"});
}

TEST(Conv, PrettyPrintShowsTheConfiguration) {
  const auto g = make_group("C2");
  std::ostringstream s;
  s << *eConv1d(eConv1dOptions(Representation::regular(g), Representation::regular(g), 3).stride(2).padding_mode("circular"));
  EXPECT_NE(s.str().find("eConv1d(in="), std::string::npos) << s.str();
  EXPECT_NE(s.str().find("stride=2"), std::string::npos) << s.str();
  EXPECT_NE(s.str().find("padding_mode=circular"), std::string::npos) << s.str();
}

}  // namespace
