// eMLP, iMLP, eCondTransformerRegressor and its plain twin CondTransformerRegressor.
#include <gtest/gtest.h>

#include "symm/group/named.h"
#include "symm/nn/cond_regressor.h"
#include "symm/nn/mlp.h"
#include "test_util.h"

using namespace symm::nn;
using symm::group::make_group;

namespace {

/// The planar representation of D<n>: its two-dimensional irrep (rotation by 2π/n and a reflection).
Representation plane(const symm::group::GroupPtr& g) {
  for (int k = 0; k < static_cast<int>(g->irreps().size()); ++k)
    if (g->irrep(k).dim == 2) return Representation::irrep(g, k);
  throw std::runtime_error("no planar irrep");
}

eCondTransformerRegressorOptions regressor_options(const Representation& in, const Representation& cond, int64_t dim) {
  return eCondTransformerRegressorOptions(in, cond, in, 6, 3, 2, 2, dim).p_drop_emb(0.0).p_drop_attn(0.0);
}

}  // namespace

TEST(eMLP, EquivariantAndShaped) {
  const auto g = make_group("D4");
  const auto in = symm::test::scrambled(direct_sum(plane(g), Representation::trivial(g, 2)), 1);
  const auto out = symm::test::scrambled(Representation::regular(g), 2);
  torch::manual_seed(0);
  eMLP mlp(eMLPOptions(in, out, {20, 16}).activation(Activation::silu()));
  ASSERT_EQ(mlp->hidden_reps().size(), 2u);
  EXPECT_EQ(mlp->hidden_reps()[0].size(), 24);  // rounded up to whole regular copies
  EXPECT_EQ(mlp->hidden_reps()[1].size(), 16);
  const auto x = torch::randn({5, 3, in.size()});
  EXPECT_EQ(mlp->forward(x).sizes(), (std::vector<int64_t>{5, 3, out.size()}));
  const auto err = equivariance_error([&](const torch::Tensor& t) { return mlp->forward(t); }, in, out, x, elements_to_check(*g));
  EXPECT_LT(err.max_relative, symm::test::tolerance(torch::kFloat32));
  symm::test::expect_error([&] { mlp->forward(torch::randn({2, in.size() + 1})); }, {"eMLP", std::to_string(in.size())});
  symm::test::expect_error([&] { eMLP(eMLPOptions(in, out, {})); }, {"hidden_units"});
  symm::test::expect_error([&] { eMLP(eMLPOptions(in, Representation::regular(make_group("C4")), {8})); }, {"D4", "C4"});
}

TEST(iMLP, InvariantAndNotConstant) {
  const auto g = make_group("D4");
  const auto in = symm::test::scrambled(plane(g).copies(2), 4);
  torch::manual_seed(0);
  iMLP mlp(iMLPOptions(in, 3, {16, 16}));
  EXPECT_EQ(mlp->out_rep().size(), 3);
  const auto x = torch::randn({7, in.size()});
  const auto y = mlp->forward(x);
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{7, 3}));
  const auto err = equivariance_error([&](const torch::Tensor& t) { return mlp->forward(t); }, in, mlp->out_rep(), x, elements_to_check(*g));
  EXPECT_LT(err.max_relative, symm::test::tolerance(torch::kFloat32));
  // Invariant does not mean constant: different orbits give different outputs.
  EXPECT_GT((y[0] - y[1]).abs().max().item<double>(), 1e-4);
  // 2 regular copies of D4 pooled: each copy holds 4 one-dimensional irreps and 2 copies of the planar one.
  EXPECT_EQ(mlp->head->options.in_features(), 12);
}

TEST(eCondTransformerRegressor, EquivariantInEveryConfiguration) {
  const auto g = make_group("D4");
  const auto in = symm::test::scrambled(plane(g), 5);
  const auto cond = symm::test::scrambled(direct_sum(plane(g), direct_sum(plane(g), Representation::trivial(g))), 6);
  for (const bool causal : {false, true}) {
    for (const int64_t cond_layers : {0, 1}) {
      for (const std::string norm : {"rmsnorm", "layernorm"}) {
        torch::manual_seed(1);
        eCondTransformerRegressor model(regressor_options(in, cond, 32).causal_attn(causal).num_cond_layers(cond_layers).norm_module(norm));
        // Non-zero positional embeddings, so their projection matters.
        {
          torch::NoGradGuard no_grad;
          model->pos_emb.normal_();
          model->cond_pos_emb.normal_();
        }
        const auto err = model->check_equivariance(3, 5, 3, 64, 1e-5, 1e-5);
        EXPECT_LT(err.max_relative, 1e-5) << "causal " << causal << " cond_layers " << cond_layers << " " << norm;
        EXPECT_GT(err.max_relative, 0.0);  // float32 rounding: the check compared real outputs
      }
    }
  }
}

TEST(eCondTransformerRegressor, OneForwardOverAllElementsInFloat32) {
  const auto g = make_group("D4");
  const auto in = plane(g);
  const auto cond = plane(g).copies(2);
  torch::manual_seed(2);
  eCondTransformerRegressor model(regressor_options(in, cond, 64));
  model->eval();
  const auto X = torch::randn({4, 6, 2}), Z = torch::randn({4, 2, 4});
  const auto k = torch::rand({4}) * 100;
  const auto y = model->forward(X, k, Z);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{4, 6, 2}));
  const double scale = y.abs().max().item<double>();
  double worst = 0;
  for (int e = 0; e < g->order(); ++e) {
    const auto gy = model->forward(act(in, e, X), k, act(cond, e, Z));
    worst = std::max(worst, (gy - act(in, e, y)).abs().max().item<double>() / scale);
  }
  EXPECT_LT(worst, 1e-5);
  // The step matters, and a scalar step equals the same step for every batch element.
  EXPECT_GT((model->forward(X, 3.0, Z) - model->forward(X, 70.0, Z)).abs().max().item<double>(), 1e-4);
  EXPECT_TRUE(torch::allclose(model->forward(X, 3.0, Z), model->forward(X, torch::full({4}, 3.0), Z)));
}

TEST(eCondTransformerRegressor, CausalMasksHideTheFuture) {
  const auto g = make_group("D4");
  torch::manual_seed(3);
  for (const bool causal : {true, false}) {
    eCondTransformerRegressor model(regressor_options(plane(g), plane(g), 16).causal_attn(causal));
    model->eval();
    const auto X = torch::randn({2, 6, 2}), Z = torch::randn({2, 3, 2});
    const auto y = model->forward(X, 5.0, Z);
    auto X2 = X.clone();
    X2.select(1, 4).add_(1.0);  // change input token 4
    auto Z2 = Z.clone();
    Z2.select(1, 2).add_(1.0);  // change observation 2 (condition token 3)
    const auto dx = (model->forward(X2, 5.0, Z) - y).abs().amax({0, 2});
    const auto dz = (model->forward(X, 5.0, Z2) - y).abs().amax({0, 2});
    if (causal) {
      EXPECT_EQ(dx.narrow(0, 0, 4).max().item<double>(), 0.0);  // tokens 0..3 do not see token 4
      EXPECT_GT(dx[4].item<double>(), 0.0);
      EXPECT_EQ(dz.narrow(0, 0, 2).max().item<double>(), 0.0);  // tokens 0, 1 see observations 0..t only
      EXPECT_GT(dz[2].item<double>(), 0.0);
    } else {
      EXPECT_GT(dx[0].item<double>(), 0.0);
      EXPECT_GT(dz[0].item<double>(), 0.0);
    }
  }
}

TEST(eCondTransformerRegressor, ClearErrors) {
  const auto g = make_group("D4");
  const auto in = plane(g), cond = plane(g).copies(2);
  symm::test::expect_error([&] { eCondTransformerRegressor(regressor_options(in, cond, 20)); },
                           {"embedding_dim (20)", "multiple of |D4| = 8"});
  symm::test::expect_error([&] { eCondTransformerRegressor(regressor_options(in, cond, 24)); },
                           {"3 regular copies", "num_attention_heads 2"});
  symm::test::expect_error([&] { eCondTransformerRegressor(regressor_options(in, Representation::regular(make_group("C4")), 16)); },
                           {"one group"});
  eCondTransformerRegressor model(regressor_options(in, cond, 16));
  const auto X = torch::randn({2, 6, 2}), Z = torch::randn({2, 3, 4});
  symm::test::expect_error([&] { model->forward(torch::randn({2, 7, 2}), 1.0, Z); }, {"X of shape (B, 1..6, 2)", "[2, 7, 2]"});
  symm::test::expect_error([&] { model->forward(torch::randn({2, 6, 3}), 1.0, Z); }, {"X of shape"});
  symm::test::expect_error([&] { model->forward(torch::randn({6, 2}), 1.0, Z); }, {"X of shape"});
  symm::test::expect_error([&] { model->forward(X, 1.0, torch::randn({2, 4, 4})); }, {"Z of shape (B, 1..3, 4)"});
  symm::test::expect_error([&] { model->forward(X, 1.0, torch::randn({3, 3, 4})); }, {"same batch size"});
  symm::test::expect_error([&] { model->forward(X, torch::ones({3}), Z); }, {"step k", "(2)"});
}

TEST(CondTransformerRegressor, ShapesMasksAndErrors) {
  torch::manual_seed(4);
  for (const int64_t cond_layers : {0, 1}) {
    CondTransformerRegressor model(
        CondTransformerRegressorOptions(2, 4, 3, 6, 3, 2, 2, 16).p_drop_emb(0).p_drop_attn(0).causal_attn(true).num_cond_layers(cond_layers));
    model->eval();
    const auto X = torch::randn({2, 5, 2}), Z = torch::randn({2, 2, 4});
    const auto y = model->forward(X, torch::tensor({1.0, 2.0}), Z);
    ASSERT_EQ(y.sizes(), (std::vector<int64_t>{2, 5, 3}));
    auto X2 = X.clone();
    X2.select(1, 3).add_(1.0);
    const auto dx = (model->forward(X2, torch::tensor({1.0, 2.0}), Z) - y).abs().amax({0, 2});
    EXPECT_EQ(dx.narrow(0, 0, 3).max().item<double>(), 0.0);
    EXPECT_GT(dx[3].item<double>(), 0.0);
  }
  symm::test::expect_error([] { CondTransformerRegressor(CondTransformerRegressorOptions(2, 4, 2, 6, 3, 2, 3, 16)); },
                           {"embedding_dim (16)", "num_attention_heads (3)"});
  CondTransformerRegressor model(CondTransformerRegressorOptions(2, 4, 2, 6, 3, 1, 2, 16));
  symm::test::expect_error([&] { model->forward(torch::randn({2, 6, 2}), 1.0, torch::randn({2, 3, 5})); }, {"Z of shape (B, 1..3, 4)"});
}

TEST(eCondTransformerRegressor, ParametersLearn) {
  // A few Adam steps on a fixed batch reduce the loss: gradients reach every part through the projections.
  const auto g = make_group("D4");
  torch::manual_seed(5);
  eCondTransformerRegressor model(regressor_options(plane(g), plane(g), 16));
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(3e-3));
  const auto X = torch::randn({8, 6, 2}), Z = torch::randn({8, 3, 2}), target = torch::randn({8, 6, 2});
  const auto k = torch::rand({8}) * 100;
  double first = 0, last = 0;
  for (int i = 0; i < 30; ++i) {
    const auto loss = torch::mse_loss(model->forward(X, k, Z), target);
    if (i == 0) first = loss.item<double>();
    last = loss.item<double>();
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  EXPECT_LT(last, 0.9 * first);
  EXPECT_GT(model->pos_emb.grad().abs().sum().item<double>(), 0.0);
}
