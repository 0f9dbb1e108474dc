// eAffine, eRMSNorm and eLayerNorm: equivariance, train/eval parity, the eval cache, autograd, FiLM mode,
// parity with torch's LayerNorm for the trivial group, dtype, save/load, errors and deep-stack stability.
#include <chrono>
#include <cmath>

#include <gtest/gtest.h>

#include "symm/group/named.h"
#include "symm/nn/equivariance.h"
#include "symm/nn/linear.h"
#include "symm/nn/normalization.h"
#include "test_util.h"

using namespace symm::nn;
using symm::group::make_group;

namespace {

/// Non-trivial learned values: scales in ±[0.5, 1.5], bias coordinates N(0, 1).
void randomise(eAffineImpl& a) {
  torch::NoGradGuard no_grad;
  a.scale_dof.uniform_(0.5, 1.5).mul_(torch::randint(0, 2, a.scale_dof.sizes(), a.scale_dof.options()).mul(2).sub(1));
  if (a.bias_dof.defined()) a.bias_dof.normal_();
}

/// The two representations the parameterised tests use: one in a structured basis with a trivial summand,
/// and the same scrambled by a random orthogonal change of basis.
std::vector<Representation> reps_of(const symm::group::GroupPtr& g) {
  const auto base = direct_sum(Representation::regular(g).copies(2), Representation::trivial(g));
  return {base, symm::test::scrambled(base, 11)};
}

using Forward = std::function<torch::Tensor(const torch::Tensor&)>;

class NormTest : public ::testing::TestWithParam<std::tuple<const char*, torch::Dtype>> {};

/// Checks f in train and eval mode: equivariant, the same in both modes, and not the identity.
void check_module(torch::nn::Module& m, const Forward& f, const Representation& rep, torch::Dtype dtype, const std::string& what) {
  const auto x = torch::randn({4, 3, rep.size()}, torch::dtype(dtype)) * 2 + 0.5;
  const auto elements = elements_to_check(*rep.group());
  torch::Tensor y_train;
  for (bool train : {true, false}) {
    m.train(train);
    const auto err = equivariance_error(f, rep, rep, x, elements);
    EXPECT_LT(err.max_relative, symm::test::tolerance(dtype))
        << what << " on " << rep.name() << " train=" << train << " element " << err.worst_element;
    torch::NoGradGuard no_grad;
    const auto y = f(x);
    EXPECT_EQ(y.sizes(), x.sizes());
    EXPECT_GT((y - x).abs().max().item<double>(), 0.1) << what << ": output is (nearly) the input";
    if (train) {
      y_train = y;
    } else {
      const double tol = dtype == torch::kFloat64 ? 1e-12 : 1e-5;
      EXPECT_TRUE(torch::allclose(y, y_train, tol, tol)) << what << ": train and eval outputs differ by "
                                                         << (y - y_train).abs().max().item<double>();
    }
  }
}

TEST_P(NormTest, AffineIsEquivariantAndAgreesInTrainAndEval) {
  const auto [spec, dtype] = GetParam();
  torch::manual_seed(1);
  for (const auto& rep : reps_of(make_group(spec))) {
    eAffine a(rep);
    a->to(dtype);
    randomise(*a);
    ASSERT_TRUE(a->bias_dof.defined());
    EXPECT_EQ(a->bias_dof.numel(), 3);  // regular x2 + trivial: three invariant directions
    check_module(*a, [&](const torch::Tensor& t) { return a->forward(t); }, rep, dtype, "eAffine");
  }
}

TEST_P(NormTest, RMSNormIsEquivariantAndAgreesInTrainAndEval) {
  const auto [spec, dtype] = GetParam();
  torch::manual_seed(2);
  for (const auto& rep : reps_of(make_group(spec))) {
    eRMSNorm n(rep);
    n->to(dtype);
    randomise(*n->affine);
    check_module(*n, [&](const torch::Tensor& t) { return n->forward(t); }, rep, dtype, "eRMSNorm");
  }
}

TEST_P(NormTest, LayerNormIsEquivariantAndAgreesInTrainAndEval) {
  const auto [spec, dtype] = GetParam();
  torch::manual_seed(3);
  for (const auto& rep : reps_of(make_group(spec))) {
    eLayerNorm n(rep);
    n->to(dtype);
    randomise(*n->affine);
    check_module(*n, [&](const torch::Tensor& t) { return n->forward(t); }, rep, dtype, "eLayerNorm");
  }
}

TEST_P(NormTest, FiLMIsEquivariantWithScaleAndBiasPerBatchElement) {
  const auto [spec, dtype] = GetParam();
  torch::manual_seed(4);
  for (const auto& rep : reps_of(make_group(spec))) {
    eAffine film(eAffineOptions(rep).learnable(false));
    EXPECT_TRUE(film->parameters().empty());
    const int64_t batch = 3;
    const auto scale = torch::randn({batch, 1, film->num_copies()}, torch::dtype(dtype));
    const auto bias = torch::randn({batch, 1, film->num_fix()}, torch::dtype(dtype));
    const auto x = torch::randn({batch, 5, rep.size()}, torch::dtype(dtype));
    const Forward f = [&](const torch::Tensor& t) { return film->forward(t, scale, bias); };
    const auto err = equivariance_error(f, rep, rep, x, elements_to_check(*rep.group()));
    EXPECT_LT(err.max_relative, symm::test::tolerance(dtype)) << rep.name() << " element " << err.worst_element;
    // Batch element b is the learned map with scale_dof = scale[b] and bias_dof = bias[b].
    const auto y = f(x);
    eAffine learned(rep);
    learned->to(dtype);
    for (int64_t b = 0; b < batch; ++b) {
      {
        torch::NoGradGuard no_grad;
        learned->scale_dof.copy_(scale[b][0]);
        learned->bias_dof.copy_(bias[b][0]);
      }
      const double tol = dtype == torch::kFloat64 ? 1e-12 : 1e-5;
      EXPECT_TRUE(torch::allclose(y[b], learned->forward(x[b]), tol, tol)) << rep.name() << " batch element " << b;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Groups, NormTest,
                         ::testing::Combine(::testing::Values("C5", "D8", "I", "Q8", "C2xD3"),
                                            ::testing::Values(torch::kFloat32, torch::kFloat64)),
                         symm::test::GroupAndDtypeName());

TEST(Affine, ElementwiseAndDensePathsAgreeWithTheDenseMatrix) {
  const auto g = make_group("D8");
  torch::manual_seed(5);
  // Q = identity (C1), trivial copies and copies of a 2-d irrep are elementwise; the regular representation
  // and a scrambled one are not.
  const std::vector<std::pair<Representation, bool>> cases = {
      {Representation::regular(make_group("C1")).copies(6), true},
      {Representation::trivial(g, 3), true},
      {Representation::irrep(g, 5).copies(3), true},
      {Representation::regular(g).copies(2), false},
      {symm::test::scrambled(Representation::trivial(g, 4), 3), false},
  };
  for (const auto& [rep, diagonal] : cases) {
    eAffine a(rep);
    a->to(torch::kFloat64);
    randomise(*a);
    EXPECT_EQ(a->is_diagonal(), diagonal) << rep.name();
    const auto s = a->scale_matrix();
    const auto x = torch::randn({7, rep.size()}, torch::kFloat64);
    const auto b = a->bias_vector();
    const auto expected = b.defined() ? torch::matmul(x, s.t()) + b : torch::matmul(x, s.t());
    EXPECT_TRUE(torch::allclose(a->forward(x), expected, 1e-12, 1e-12)) << rep.name();
    // S = Q diag(α expanded) Qᵀ.
    const auto q = to_tensor(rep.change_of_basis());
    std::vector<torch::Tensor> alpha;
    for (int64_t k = 0; k < a->num_copies(); ++k)
      alpha.push_back(a->scale_dof[k].expand({g->irrep(rep.irreps()[k]).dim}));
    const auto dense = torch::matmul(q * torch::cat(alpha).detach(), q.t());
    EXPECT_TRUE(torch::allclose(s, dense, 1e-12, 1e-12)) << rep.name();
  }
}

TEST(Affine, SetDenseAveragesPerCopyAndProjectsTheBias) {
  const auto g = make_group("D4");
  const auto rep = symm::test::scrambled(direct_sum(Representation::regular(g), Representation::trivial(g, 2)), 9);
  eAffine a(rep);
  a->to(torch::kFloat64);
  // A uniform per-channel scale is a multiple of the identity: every copy gets it exactly.
  a->set_dense(torch::full({rep.size()}, 2.5, torch::kFloat64), torch::randn({rep.size()}, torch::kFloat64));
  EXPECT_TRUE(torch::allclose(a->scale_dof, torch::full({a->num_copies()}, 2.5, torch::kFloat64), 1e-12, 1e-12));
  EXPECT_TRUE(torch::allclose(a->scale_matrix(), 2.5 * torch::eye(rep.size(), torch::kFloat64), 1e-12, 1e-12));
  // The bias lands in Fix(ρ), and a bias already there is kept.
  const auto b = a->bias_vector();
  const auto err = equivariance_error([&](const torch::Tensor& t) { return t + b; }, rep, rep, torch::zeros({1, rep.size()}, torch::kFloat64),
                                      elements_to_check(*g));
  EXPECT_LT(err.max_absolute, 1e-12);
  a->set_dense(torch::ones({rep.size()}, torch::kFloat64), b);
  EXPECT_TRUE(torch::allclose(a->bias_vector(), b, 1e-12, 1e-12));
}

TEST(Affine, EvalCacheIsRefreshedAfterAnOptimiserStep) {
  const auto g = make_group("D4");
  for (const auto& rep : {Representation::regular(g).copies(2), Representation::trivial(g, 5)}) {
    eAffine a(rep);
    const auto x = torch::randn({8, rep.size()});
    a->eval();
    auto cached_forward = [&] {  // the eval cache serves forwards that need no autograd
      torch::NoGradGuard no_grad;
      return a->forward(x);
    };
    const auto y1 = cached_forward();
    EXPECT_TRUE(torch::equal(y1, cached_forward()));
    a->train();
    torch::optim::SGD opt(a->parameters(), 0.1);
    (a->forward(x) * torch::randn_like(x)).sum().backward();
    opt.step();
    a->eval();
    const auto y2 = cached_forward();
    EXPECT_FALSE(torch::allclose(y1, y2)) << rep.name() << ": stale eval cache after an optimiser step";
    a->train();
    EXPECT_TRUE(torch::allclose(a->forward(x), y2, 1e-6, 1e-6)) << rep.name();
  }
}

TEST(Affine, GradientsReachScaleAndBiasInBothModes) {
  const auto g = make_group("C2xD3");
  const auto rep = direct_sum(Representation::regular(g), Representation::trivial(g));
  eLayerNorm n(rep);
  const auto x = torch::randn({6, rep.size()});
  (n->forward(x) * torch::randn({6, rep.size()})).sum().backward();
  const auto& a = n->affine;
  ASSERT_TRUE(a->scale_dof.grad().defined());
  ASSERT_TRUE(a->bias_dof.grad().defined());
  EXPECT_GT(a->scale_dof.grad().abs().min().item<double>(), 0.0) << "a scale got no gradient";
  EXPECT_GT(a->bias_dof.grad().abs().sum().item<double>(), 0.0);
  // FiLM: gradients reach the scale and bias given to forward (the conditioning network's output).
  eAffine film(eAffineOptions(rep).learnable(false));
  const auto scale = torch::randn({6, film->num_copies()}, torch::requires_grad());
  const auto bias = torch::randn({6, film->num_fix()}, torch::requires_grad());
  (film->forward(x, scale, bias) * torch::randn({6, rep.size()})).sum().backward();
  ASSERT_TRUE(scale.grad().defined() && bias.grad().defined());
  EXPECT_GT(scale.grad().abs().sum().item<double>(), 0.0);
  EXPECT_GT(bias.grad().abs().sum().item<double>(), 0.0);
}

TEST(LayerNorm, EqualsTorchLayerNormForTheTrivialGroup) {
  const int64_t d = 10;
  const auto rep = Representation::regular(make_group("C1")).copies(d);
  torch::manual_seed(6);
  torch::nn::LayerNorm ref(torch::nn::LayerNormOptions({d}).eps(1e-5));
  {
    torch::NoGradGuard no_grad;
    ref->weight.normal_();
    ref->bias.normal_();
  }
  eLayerNorm n(rep);
  n->affine->set_dense(ref->weight, ref->bias);
  EXPECT_TRUE(n->affine->is_diagonal());
  const auto x = torch::randn({4, 3, d}) * 3 + 1.5;
  for (bool train : {true, false}) {
    n->train(train);
    const auto diff = (n->forward(x) - ref->forward(x)).abs().max().item<double>();
    EXPECT_LT(diff, 1e-6) << "train=" << train;
  }
  // Without affine: zero mean and unit (biased) variance per token.
  eLayerNorm plain(eLayerNormOptions(rep).equiv_affine(false));
  EXPECT_FALSE(plain->affine);
  const auto y = plain->forward(x);
  EXPECT_LT(y.mean(-1).abs().max().item<double>(), 1e-6);
  EXPECT_TRUE(torch::allclose(y.square().mean(-1), torch::ones({4, 3}), 1e-3, 1e-3));
}

TEST(LayerNorm, CentresAlongTheInvariantPartOfOnesOnly) {
  const auto g = make_group("D3");
  // With trivial summands: the output is orthogonal to u and has unit mean square.
  const auto rep = symm::test::scrambled(direct_sum(Representation::regular(g), Representation::trivial(g)), 4);
  eLayerNorm n(eLayerNormOptions(rep).equiv_affine(false).eps(1e-12));
  n->to(torch::kFloat64);
  const Eigen::MatrixXd f = rep.invariant_basis();
  const Eigen::VectorXd v = f * (f.transpose() * Eigen::VectorXd::Ones(rep.size()));
  const auto u = to_tensor(Eigen::VectorXd(v.normalized()));
  const auto x = torch::randn({5, rep.size()}, torch::kFloat64) + 3 * u;
  const auto y = n->forward(x);
  EXPECT_LT(torch::matmul(y, u).abs().max().item<double>(), 1e-12);
  EXPECT_TRUE(torch::allclose(y.square().mean(-1), torch::ones({5}, torch::kFloat64), 1e-9, 1e-9));
  // Without trivial summands nothing is subtracted: eLayerNorm is eRMSNorm.
  const auto irreps = Representation::irrep(g, 2).copies(3);
  eLayerNorm ln(eLayerNormOptions(irreps).equiv_affine(false));
  eRMSNorm rms(eRMSNormOptions(irreps).equiv_affine(false));
  const auto z = torch::randn({5, irreps.size()}) + 2;
  EXPECT_TRUE(torch::allclose(ln->forward(z), rms->forward(z), 1e-6, 1e-6));
}

TEST(RMSNorm, EqualsTheFormulaForTheTrivialGroup) {
  const int64_t d = 12;
  const auto rep = Representation::regular(make_group("C1")).copies(d);
  eRMSNorm n(eRMSNormOptions(rep).eps(1e-4));
  EXPECT_FALSE(n->affine->bias_dof.defined());
  const auto w = torch::randn({d});
  n->affine->set_dense(w);
  EXPECT_TRUE(torch::allclose(n->affine->scale_dof, w));
  const auto x = torch::randn({4, 3, d}) * 2;
  const auto expected = x / torch::sqrt(x.square().mean(-1, true) + 1e-4) * w;
  for (bool train : {true, false}) {
    n->train(train);
    EXPECT_TRUE(torch::allclose(n->forward(x), expected, 1e-5, 1e-6)) << "train=" << train;
  }
}

// eRMSNorm's normalisation has its own backward; its gradients, and second derivatives through
// create_graph, must be those of the formula, on the tokens-last and the features-first (isotypic) layout.
TEST(RMSNorm, GradientsAndSecondDerivativesEqualTheFormula) {
  const auto rep = Representation::regular(make_group("D3")).copies(3);
  const double eps = 1e-3;
  eRMSNorm n(eRMSNormOptions(rep).eps(eps).equiv_affine(false));
  eLinear lin(eLinearOptions(rep, rep));  // for the isotypic layout of rep
  const auto& layout = lin->isotypic_in();
  torch::manual_seed(21);
  const auto w = torch::randn({5, rep.size()}, torch::kFloat64);  // a nonlinear loss: Σ w·y³
  for (bool features_first : {false, true}) {
    const int64_t dim = features_first ? 0 : -1;
    auto x = torch::randn({5, rep.size()}, torch::kFloat64).mul(2).add(0.3);
    if (features_first) x = x.t().contiguous();
    x.requires_grad_(true);
    const auto wx = features_first ? w.t() : w;
    auto loss = [&](const torch::Tensor& y) { return (wx * y.pow(3)).sum(); };
    const auto y = features_first ? n->normalise_isotypic(x, layout) : n->forward(x);
    const auto y_ref = x / torch::sqrt(x.square().mean(dim, true) + eps);
    EXPECT_LT((y - y_ref).abs().max().item<double>(), 1e-14);
    const auto g = torch::autograd::grad({loss(y)}, {x}, {}, true, true)[0];
    const auto g_ref = torch::autograd::grad({loss(y_ref)}, {x}, {}, true, true)[0];
    EXPECT_LT((g - g_ref).abs().max().item<double>(), 1e-12) << "features_first=" << features_first;
    // Second derivative along a direction v: d/dx (g·v).
    const auto v = torch::randn_like(x);
    const auto h = torch::autograd::grad({(g * v).sum()}, {x})[0];
    const auto h_ref = torch::autograd::grad({(g_ref * v).sum()}, {x})[0];
    EXPECT_GT(h_ref.abs().max().item<double>(), 1e-3);
    EXPECT_LT((h - h_ref).abs().max().item<double>(), 1e-11) << "features_first=" << features_first;
  }
  // bfloat16 input: reduced in float, returned and differentiated in bfloat16.
  const auto xb = (torch::randn({4, rep.size()}) * 3).to(torch::kBFloat16).requires_grad_(true);
  const auto yb = n->forward(xb);
  EXPECT_EQ(yb.scalar_type(), torch::kBFloat16);
  yb.sum().backward();
  EXPECT_EQ(xb.grad().scalar_type(), torch::kBFloat16);
  const auto xf = xb.detach().to(torch::kFloat).requires_grad_(true);
  (xf / torch::sqrt(xf.square().mean(-1, true) + eps)).sum().backward();
  EXPECT_LT((xb.grad().to(torch::kFloat) - xf.grad()).abs().max().item<double>(), 0.05);
}

TEST(Norm, SaveLoadRoundTripGivesIdenticalOutputs) {
  const auto g = make_group("Q8");
  const auto rep = direct_sum(Representation::regular(g).copies(2), Representation::trivial(g));
  const std::string path = ::testing::TempDir() + "enorm.pt";
  const auto x = torch::randn({3, rep.size()});
  {
    eLayerNorm a(rep), b(rep);
    randomise(*a->affine);
    torch::save(a, path);
    torch::load(b, path);
    a->eval();
    b->eval();
    EXPECT_TRUE(torch::equal(a->forward(x), b->forward(x)));
    EXPECT_FALSE(torch::equal(b->forward(x), eLayerNorm(rep)->forward(x)));
  }
  {
    eRMSNorm a(rep), b(rep);
    randomise(*a->affine);
    b->eval();
    torch::NoGradGuard no_grad;  // eval forwards that use the cache
    const auto before = b->forward(x);  // fills b's eval cache: loading must invalidate it
    torch::save(a, path);
    torch::load(b, path);
    a->eval();
    EXPECT_TRUE(torch::equal(a->forward(x), b->forward(x)));
    EXPECT_FALSE(torch::equal(before, b->forward(x)));
  }
}

TEST(Norm, MovingToFloat64KeepsWorking) {
  const auto g = make_group("D8");
  const auto rep = symm::test::scrambled(direct_sum(Representation::regular(g).copies(2), Representation::trivial(g)), 2);
  eLayerNorm n(rep);
  randomise(*n->affine);
  n->eval();
  const auto x = torch::randn({4, rep.size()}, torch::kFloat64);
  const auto y32 = n->forward(x.to(torch::kFloat32));
  n->to(torch::kFloat64);
  EXPECT_EQ(n->affine->scale_dof.scalar_type(), torch::kFloat64);
  const auto y64 = n->forward(x);
  EXPECT_EQ(y64.scalar_type(), torch::kFloat64);
  EXPECT_TRUE(torch::allclose(y64.to(torch::kFloat32), y32, 1e-4, 1e-5));
  const auto err = equivariance_error([&](const torch::Tensor& t) { return n->forward(t); }, rep, rep, x, elements_to_check(*g));
  EXPECT_LT(err.max_relative, 1e-10);
  auto copy = std::dynamic_pointer_cast<eLayerNormImpl>(n->clone());
  ASSERT_TRUE(copy);
  EXPECT_TRUE(torch::equal(copy->forward(x), y64));
}

TEST(Norm, BadInputsRaiseNamedErrors) {
  const auto g = make_group("C4");
  const auto rep = Representation::regular(g).copies(2);
  using symm::test::expect_error;
  eAffine a(rep);
  expect_error([&] { a->forward(torch::randn({3, 7})); }, {"eAffine", "last dimension 8", "[3, 7]"});
  expect_error([&] { a->forward(torch::randn({3, 8}, torch::kFloat64)); }, {"eAffine", "dtype"});
  expect_error([&] { a->set_dense(torch::ones({7})); }, {"eAffine::set_dense", "[8]", "[7]"});
  eAffine nobias(eAffineOptions(rep).bias(false));
  EXPECT_FALSE(nobias->bias_dof.defined());
  expect_error([&] { nobias->forward(torch::randn({3, 8}), {}, torch::randn({2})); }, {"eAffine", "bias(false)"});

  eAffine film(eAffineOptions(rep).learnable(false));
  const auto c = film->num_copies(), f = film->num_fix();
  ASSERT_EQ(f, 2);
  const auto x = torch::randn({2, 5, 8});
  expect_error([&] { film->forward(x); }, {"eAffine", "learnable(false)", "scale", std::to_string(c)});
  expect_error([&] { film->forward(x, torch::randn({2, 1, c})); }, {"eAffine", "bias", std::to_string(f)});
  expect_error([&] { film->forward(x, torch::randn({2, 1, c + 1}), torch::randn({2, 1, f})); },
               {"eAffine", "scale", "last dimension " + std::to_string(c), std::to_string(c + 1)});
  expect_error([&] { film->forward(x, torch::randn({2, 1, c}), torch::randn({2, 1, f + 3})); },
               {"eAffine", "bias", "last dimension " + std::to_string(f)});
  expect_error([&] { film->forward(x, torch::randn({3, 1, c}), torch::randn({2, 1, f})); }, {"eAffine", "scale", "broadcast", "[3, 1, "});
  expect_error([&] { film->forward(x, torch::randn({2, 1, c}, torch::kFloat64), torch::randn({2, 1, f})); },
               {"eAffine", "scale", "dtype"});
  expect_error([&] { film->scale_matrix(); }, {"eAffine::scale_matrix", "not learnable"});
  expect_error([&] { film->set_dense(torch::ones({8})); }, {"eAffine::set_dense", "not learnable"});

  expect_error([&] { eRMSNorm(eRMSNormOptions(rep).eps(0)); }, {"eRMSNorm", "eps", "positive"});
  expect_error([&] { eLayerNorm(eLayerNormOptions(rep).eps(-1e-5)); }, {"eLayerNorm", "eps", "positive"});
  expect_error([&] { eRMSNorm(rep)->forward(torch::randn({4, 9})); }, {"eRMSNorm", "last dimension 8", "[4, 9]"});
  expect_error([&] { eLayerNorm(rep)->forward(torch::randn({9})); }, {"eLayerNorm", "last dimension 8", "[9]"});
  expect_error([&] { eLayerNorm(rep)->forward(torch::randint(0, 3, {2, 8})); }, {"eLayerNorm", "floating-point"});
}

TEST(Norm, PrettyPrintShowsTheConfiguration) {
  const auto rep = Representation::regular(make_group("C3")).copies(2);
  std::ostringstream s;
  s << *eLayerNorm(eLayerNormOptions(rep).bias(false));
  EXPECT_NE(s.str().find("symm::nn::eLayerNorm("), std::string::npos) << s.str();
  EXPECT_NE(s.str().find("bias=false"), std::string::npos) << s.str();
  EXPECT_NE(s.str().find("symm::nn::eAffine("), std::string::npos) << s.str();
}

/// A residual stack x ← x + eLinear(norm(x)) of 12 blocks trained with Adam on random regression data:
/// every loss stays finite, the loss falls and ends below half that of predicting zero.
template <typename Norm>
void check_deep_stack_trains(const char* name) {
  const auto g = make_group("D8");
  const auto rep = Representation::regular(g).copies(2);
  torch::manual_seed(7);
  torch::nn::ModuleList blocks;
  std::vector<std::pair<Norm, eLinear>> layers;
  for (int i = 0; i < 12; ++i) {
    layers.emplace_back(Norm(rep), eLinear(rep, rep));
    blocks->push_back(layers.back().first);
    blocks->push_back(layers.back().second);
  }
  const auto x0 = torch::randn({16, 8, rep.size()});
  // A learnable target: a fixed equivariant map of the input plus noise.
  eLinear teacher(rep, rep);
  teacher->eval();
  const auto target = (teacher->forward(x0) + 0.1 * torch::randn({16, 8, rep.size()})).detach();
  const double target_power = target.square().mean().item<double>();
  torch::optim::Adam opt(blocks->parameters(), torch::optim::AdamOptions(1e-3));
  const auto start = std::chrono::steady_clock::now();
  double first = 0, last = 0;
  for (int step = 0; step < 500; ++step) {
    auto x = x0;
    for (auto& [norm, lin] : layers) x = x + lin->forward(norm->forward(x));
    const auto loss = torch::mse_loss(x, target);
    opt.zero_grad();
    loss.backward();
    opt.step();
    last = loss.item<double>();
    if (step == 0) first = last;
    ASSERT_TRUE(std::isfinite(last)) << name << ": loss is not finite at step " << step;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(last, 0.5 * first) << name << ": loss " << first << " -> " << last;
  EXPECT_LT(last, 0.5 * target_power) << name << ": loss " << last << " vs target power " << target_power;
  for (const auto& p : blocks->parameters()) EXPECT_TRUE(torch::isfinite(p).all().item<bool>()) << name;
  ::testing::Test::RecordProperty(std::string(name) + "_seconds", std::to_string(seconds));
  std::cout << "[          ] " << name << " stack: loss " << first << " -> " << last << " (target power " << target_power << ")" << " in " << seconds << " s\n";
}

TEST(Norm, DeepResidualStackWithRMSNormTrainsStably) { check_deep_stack_trains<eRMSNorm>("eRMSNorm"); }

TEST(Norm, DeepResidualStackWithLayerNormTrainsStably) { check_deep_stack_trains<eLayerNorm>("eLayerNorm"); }

}  // namespace
