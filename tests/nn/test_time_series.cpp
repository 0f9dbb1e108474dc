// eTimeCNNEncoder (equivariant and invariant heads, stride and pooling), TimeCNNEncoder and MLP: equivariance on
// every group element in train and eval, shapes, gradients, checkpoints and errors.
#include <gtest/gtest.h>

#include "symm/group/named.h"
#include "symm/nn/checkpoint.h"
#include "symm/nn/equivariance.h"
#include "symm/nn/time_cnn.h"
#include "test_util.h"

using namespace symm::nn;
using symm::group::make_group;

namespace {

symm::group::GroupPtr series_group(const std::string& name) {
  if (name != "gen") return make_group(name);
  const double c = -0.5, s = std::sqrt(3.0) / 2;
  Eigen::Matrix2d rot, flip;
  rot << c, -s, s, c;
  flip << 1, 0, 0, -1;
  return symm::group::Group::from_generators("D3gen", {rot, flip});
}

/// max_g |f(ρ_in(g)x) − ρ_out(g)f(x)| / |f(x)| for f on series (N, C, H).
double series_error(const std::function<torch::Tensor(const torch::Tensor&)>& f, const Representation& in,
                    const Representation& out, const torch::Tensor& x) {
  const auto channel_last = [&](const torch::Tensor& xl) { return f(xl.transpose(1, 2)); };
  return equivariance_error(channel_last, in, out, x.transpose(1, 2).contiguous(), elements_to_check(*in.group())).max_relative;
}

class TimeCNNTest : public ::testing::TestWithParam<std::tuple<const char*, torch::Dtype>> {};

TEST_P(TimeCNNTest, EncoderIsEquivariantOrInvariantInTrainAndEval) {
  const auto [name, dtype] = GetParam();
  const auto g = series_group(name);
  const auto in = symm::test::scrambled(direct_sum(Representation::regular(g), Representation::trivial(g)), 5);
  const auto out = direct_sum(Representation::regular(g), Representation::trivial(g));
  torch::manual_seed(3);
  eTimeCNNEncoder equivariant(eTimeCNNEncoderOptions(in, out, {g->order(), 2 * g->order()}, 7).mlp_hidden({g->order()}));
  eTimeCNNEncoder invariant(eTimeCNNEncoderOptions(in, Representation::trivial(g, 3), {g->order()}, 6)
                                .downsample("pooling").batch_norm(true).append_last_frame(true).mlp_hidden({g->order()})
                                .activation(Activation::gelu()));
  EXPECT_EQ(equivariant->time_horizon_out(), 2);
  EXPECT_EQ(invariant->time_horizon_out(), 3);
  equivariant->to(dtype);
  invariant->to(dtype);
  const double tol = symm::test::tolerance(dtype);
  for (bool train : {true, false}) {
    equivariant->train(train);
    invariant->train(train);
    const auto x7 = torch::randn({3, in.size(), 7}, torch::dtype(dtype));
    const auto x6 = torch::randn({3, in.size(), 6}, torch::dtype(dtype));
    EXPECT_LT(series_error([&](const torch::Tensor& t) { return equivariant(t); }, in, out, x7), tol) << "eMLP head train=" << train;
    EXPECT_LT(series_error([&](const torch::Tensor& t) { return invariant(t); }, in, invariant->out_rep(), x6), tol)
        << "iMLP head train=" << train;
    torch::NoGradGuard no_grad;
    EXPECT_EQ(equivariant(x7).sizes(), (std::vector<int64_t>{3, out.size()}));
    EXPECT_EQ(invariant(x6).sizes(), (std::vector<int64_t>{3, 3}));
    EXPECT_GT(invariant(x6).std().item<double>(), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Groups, TimeCNNTest,
                         ::testing::Combine(::testing::Values("C2", "D4", "C8", "Q8", "O", "gen"),
                                            ::testing::Values(torch::kFloat32, torch::kFloat64)),
                         symm::test::GroupAndDtypeName());

TEST(TimeCNN, EncoderTrainsAndRoundTripsThroughACheckpoint) {
  torch::manual_seed(0);  // unseeded, 30 steps on a random target at times fell short of halving the loss
  const auto g = make_group("C2");
  const auto rep = Representation::regular(g).copies(2);
  eTimeCNNEncoder a(eTimeCNNEncoderOptions(rep, rep, {4, 4}, 8).mlp_hidden({8}).batch_norm(true));
  const auto x = torch::randn({5, rep.size(), 8});
  const auto target = torch::randn({5, rep.size()});
  torch::optim::Adam opt(a->parameters(), 1e-2);
  double first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    opt.zero_grad();
    const auto loss = (a(x) - target).square().mean();
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_LT(last, 0.5 * first);
  const std::string path = ::testing::TempDir() + "etimecnn.symm";
  eTimeCNNEncoder b(eTimeCNNEncoderOptions(rep, rep, {4, 4}, 8).mlp_hidden({8}).batch_norm(true));
  symm::save(a, path);
  symm::load(b, path);
  a->eval();
  b->eval();
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::allclose(a(x), b(x), 1e-6, 1e-6));
}

TEST(TimeCNN, PlainEncoderShapesHeadAndNormalisation) {
  torch::manual_seed(4);
  for (const std::string downsample : {"stride", "pooling"}) {
    TimeCNNEncoder enc(TimeCNNEncoderOptions(3, 5, {8, 16}, 9).downsample(downsample).normalize(true).append_last_frame(true));
    EXPECT_EQ(enc->horizon_out(), downsample == "stride" ? 3 : 2);
    const auto x = torch::randn({4, 3, 9});
    const auto y = enc(x);
    EXPECT_EQ(y.sizes(), (std::vector<int64_t>{4, 5}));
    // The head's last weight is orthogonal at initialisation (rows orthonormal: out_dim < 128).
    const auto w = enc->head->linears[enc->head->linears->size() - 1]->as<torch::nn::LinearImpl>()->weight;
    EXPECT_LT((torch::mm(w, w.t()) - torch::eye(5)).abs().max().item<double>(), 1e-5);
    y.sum().backward();
    for (const auto& p : enc->parameters()) EXPECT_TRUE(p.grad().defined());
  }
}

TEST(TimeCNN, MLPEqualsItsLayersAndBatchNormFollowsTorch) {
  torch::manual_seed(5);
  MLP mlp(MLPOptions(4, 3, {6, 5}).activation(Activation::tanh()));
  const auto x = torch::randn({7, 4});
  auto h = x;
  for (size_t i = 0; i < 2; ++i) h = torch::tanh(mlp->linears[i]->as<torch::nn::LinearImpl>()->forward(h));
  EXPECT_TRUE(torch::allclose(mlp(x), mlp->linears[2]->as<torch::nn::LinearImpl>()->forward(h)));
  MLP bn(MLPOptions(4, 3, {6}).batch_norm(true));
  EXPECT_EQ(bn(x).sizes(), (std::vector<int64_t>{7, 3}));
  EXPECT_THROW(bn(torch::randn({1, 4})), c10::Error);  // torch's BatchNorm1d refuses one sample in training
  symm::test::expect_error([&] { mlp(torch::randn({2, 5})); }, {"MLP", "last dimension 4", "[2, 5]"});
}

TEST(TimeCNN, BadInputsRaiseNamedErrors) {
  using symm::test::expect_error;
  const auto g = make_group("D4");
  const auto rep = Representation::regular(g);
  eTimeCNNEncoder enc(eTimeCNNEncoderOptions(rep, rep, {8}, 6).mlp_hidden({8}));
  expect_error([&] { enc(torch::randn({2, 8, 5})); }, {"eTimeCNNEncoder", "(N, 8, 6)", "[2, 8, 5]"});
  expect_error([&] { enc(torch::randn({2, 7, 6})); }, {"eTimeCNNEncoder", "(N, 8, 6)", "[2, 7, 6]"});
  expect_error([&] { eTimeCNNEncoder(eTimeCNNEncoderOptions(rep, rep, {8, 8}, 3).downsample("pooling")); },
               {"eTimeCNNEncoder", "horizon of 3", "2 pooling blocks"});
  expect_error([&] { eTimeCNNEncoder(eTimeCNNEncoderOptions(rep, rep, {8}, 3).downsample("avg")); },
               {"eTimeCNNEncoder", "'stride' or 'pooling'", "'avg'"});
  expect_error([&] { eTimeCNNEncoder(eTimeCNNEncoderOptions(rep, rep, {}, 3)); }, {"eTimeCNNEncoder", "at least one"});
  expect_error([&] { TimeCNNEncoder(TimeCNNEncoderOptions(3, 2, {4}, 0)); }, {"TimeCNNEncoder", "horizon > 0", "got 0"});
  TimeCNNEncoder plain(TimeCNNEncoderOptions(3, 2, {4}, 5));
  expect_error([&] { plain(torch::randn({2, 3, 4})); }, {"TimeCNNEncoder", "(N, 3, 5)", "[2, 3, 4]"});
}

}  // namespace
