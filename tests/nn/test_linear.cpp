// eLinear and InvariantBias: equivariance, train/eval parity, the eval cache, autograd, dtype, save/load.
#include <gtest/gtest.h>

#include "symm/group/named.h"
#include "symm/nn/equivariance.h"
#include "symm/nn/linear.h"
#include "test_util.h"

using namespace symm::nn;
using symm::group::make_group;

namespace {

class LinearTest : public ::testing::TestWithParam<std::tuple<const char*, torch::Dtype>> {};

TEST_P(LinearTest, EquivariantInTrainAndEval) {
  const auto [spec, dtype] = GetParam();
  const auto g = make_group(spec);
  const auto in = direct_sum(Representation::regular(g).copies(2), Representation::trivial(g));
  const auto out = symm::test::scrambled(Representation::regular(g).copies(3), 5);
  torch::manual_seed(0);
  eLinear lin(in, out);
  lin->to(dtype);
  const auto x = torch::randn({4, 3, in.size()}, torch::dtype(dtype));
  const auto elements = elements_to_check(*g);
  for (bool train : {true, false}) {
    lin->train(train);
    const auto err = equivariance_error([&](const torch::Tensor& t) { return lin->forward(t); }, in, out, x, elements);
    EXPECT_LT(err.max_relative, symm::test::tolerance(dtype)) << spec << " train=" << train << " element " << err.worst_element;
  }
}

TEST_P(LinearTest, TrainAndEvalAgreeAndEvalIsPlainLinear) {
  const auto [spec, dtype] = GetParam();
  const auto g = make_group(spec);
  const auto rep = Representation::regular(g).copies(2);
  eLinear lin(rep, rep);
  lin->to(dtype);
  const auto x = torch::randn({5, rep.size()}, torch::dtype(dtype));
  const auto y_train = lin->forward(x);
  lin->eval();
  const auto y_eval = lin->forward(x);
  EXPECT_TRUE(torch::allclose(y_train, y_eval, 1e-5, 1e-6));
  const auto w = lin->weight();
  EXPECT_TRUE(torch::equal(y_eval, torch::nn::functional::linear(x, w, lin->bias())));
}

INSTANTIATE_TEST_SUITE_P(Groups, LinearTest,
                         ::testing::Combine(::testing::Values("C5", "D8", "I", "Q8", "C2xD3"),
                                            ::testing::Values(torch::kFloat32, torch::kFloat64)),
                         symm::test::GroupAndDtypeName());

TEST(Linear, EvalCacheIsReusedAndRefreshedAfterAnOptimiserStep) {
  const auto rep = Representation::regular(make_group("D4")).copies(2);
  eLinear lin(rep, rep);
  lin->eval();
  // The cache serves forwards that need no autograd; with autograd, eval synthesises W as training does.
  auto cached_weight = [&] {
    torch::NoGradGuard no_grad;
    return lin->weight();
  };
  const auto w1 = cached_weight();
  EXPECT_EQ(w1.data_ptr(), cached_weight().data_ptr()) << "eval weight is recomputed on every call";
  EXPECT_TRUE(lin->weight().requires_grad()) << "eval with autograd cut the coefficients off";
  lin->train();
  torch::optim::SGD opt(lin->parameters(), 0.1);
  const auto x = torch::randn({8, rep.size()});
  lin->forward(x).pow(2).sum().backward();
  ASSERT_TRUE(lin->weight_dof.grad().defined());
  EXPECT_GT(lin->weight_dof.grad().abs().sum().item<double>(), 0.0);
  opt.step();
  lin->eval();
  const auto w2 = cached_weight();
  EXPECT_FALSE(torch::equal(w1, w2)) << "stale cache after an optimiser step";
  lin->train();
  EXPECT_TRUE(torch::allclose(lin->weight(), w2, 1e-6, 1e-6));
}

TEST(Linear, ParityWithTorchLinearForTheTrivialGroup) {
  const auto g = make_group("C1");
  const auto in = Representation::regular(g).copies(6), out = Representation::regular(g).copies(4);
  eLinear lin(in, out);
  torch::nn::Linear ref(6, 4);
  lin->set_dense(ref->weight, ref->bias);
  const auto x = torch::randn({3, 6});
  EXPECT_TRUE(torch::allclose(lin->forward(x), ref->forward(x), 1e-6, 1e-6));
}

TEST(Linear, SetDenseProjectsOntoHom) {
  const auto g = make_group("D3");
  const auto rep = Representation::regular(g).copies(2);
  eLinear lin(rep, rep);
  lin->to(torch::kFloat64);
  const auto w = torch::randn({rep.size(), rep.size()}, torch::kFloat64);
  lin->set_dense(w);
  const auto p = lin->weight();
  lin->set_dense(p);
  EXPECT_TRUE(torch::allclose(lin->weight(), p, 1e-10, 1e-12)) << "projection is not idempotent";
}

TEST(Linear, SaveLoadRoundTrip) {
  const auto rep = Representation::regular(make_group("Q8")).copies(2);
  eLinear a(rep, rep), b(rep, rep);
  const std::string path = ::testing::TempDir() + "elinear.pt";
  torch::save(a, path);
  torch::load(b, path);
  a->eval();
  b->eval();
  const auto x = torch::randn({2, rep.size()});
  EXPECT_TRUE(torch::equal(a->forward(x), b->forward(x)));
}

TEST(Linear, CloneIsIndependent) {
  const auto rep = Representation::regular(make_group("C3")).copies(2);
  eLinear a(rep, rep);
  auto b = std::dynamic_pointer_cast<eLinearImpl>(a->clone());
  ASSERT_TRUE(b);
  const auto x = torch::randn({2, rep.size()});
  EXPECT_TRUE(torch::allclose(a->forward(x), b->forward(x)));
  torch::NoGradGuard no_grad;
  b->weight_dof.add_(1.0);
  EXPECT_FALSE(torch::allclose(a->forward(x), b->forward(x)));
}

TEST(Linear, BadInputsRaiseNamedErrors) {
  const auto g = make_group("C4");
  const auto rep = Representation::regular(g).copies(2);
  eLinear lin(rep, rep);
  symm::test::expect_error([&] { lin->forward(torch::randn({3, 7})); }, {"eLinear", "last dimension 8", "[3, 7]"});
  symm::test::expect_error([&] { lin->forward(torch::randn({3, 8}, torch::kFloat64)); }, {"eLinear", "dtype"});
  symm::test::expect_error([&] { eLinear(Representation::irrep(g, 1), Representation::trivial(g)); },
                           {"eLinear", "zero-dimensional"});
  symm::test::expect_error([&] { eLinear(eLinearOptions(rep, rep).init_scheme("bogus")); }, {"init_scheme", "bogus"});
  symm::test::expect_error([&] { eLinear(rep, Representation::regular(make_group("C5"))); }, {"eLinear", "C4", "C5"});
}

TEST(InvariantBias, AddsAFixedVectorAndIsIdentityWithoutTrivialIrreps) {
  const auto g = make_group("D3");
  const auto rep = Representation::regular(g).copies(2);
  InvariantBias bias(rep);
  {
    torch::NoGradGuard no_grad;
    bias->bias_dof.normal_();
  }
  const auto x = torch::randn({4, rep.size()}, torch::kFloat64);
  bias->to(torch::kFloat64);
  const auto err = equivariance_error([&](const torch::Tensor& t) { return bias->forward(t); }, rep, rep, x, elements_to_check(*g));
  EXPECT_LT(err.max_relative, 1e-12);
  EXPECT_GT((bias->forward(x) - x).abs().max().item<double>(), 0.0);
  InvariantBias none(Representation::irrep(g, 2));
  const auto y = torch::randn({3, 2});
  EXPECT_TRUE(torch::equal(none->forward(y), y));
}

}  // namespace
