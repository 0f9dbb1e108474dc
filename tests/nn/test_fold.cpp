// The fast paths of eLinear: tiled weight synthesis for copies of one block (it must give exactly the
// HomBasis synthesis), and forward_after, which folds a preceding eAffine into the weight.
#include <gtest/gtest.h>

#include "symm/group/named.h"
#include "symm/nn/affine.h"
#include "symm/nn/linear.h"
#include "test_util.h"

using namespace symm::nn;
using symm::group::make_group;

namespace {

TEST(LinearSynthesis, MatchesHomBasisForRegularCopiesAndOtherRepresentations) {
  for (const char* spec : {"C2", "C8", "D8", "Q8", "C2xD3", "T"}) {
    const auto g = make_group(spec);
    const auto reg = Representation::regular(g);
    const std::vector<std::pair<Representation, Representation>> pairs = {
        {reg.copies(3), reg.copies(5)},                                           // tiled
        {reg.copies(2), reg},                                                     // tiled, one output copy
        {direct_sum(reg.copies(2), Representation::trivial(g)), reg.copies(2)},  // general path
        {symm::test::scrambled(reg.copies(2), 3), reg.copies(2)},                // general path
    };
    for (const auto& [in, out] : pairs) {
      torch::manual_seed(1);
      eLinear lin(eLinearOptions(in, out).bias(false));
      lin->to(torch::kFloat64);
      const Eigen::VectorXd theta = to_eigen(lin->weight_dof).col(0);
      const auto expected = to_tensor(lin->basis().synthesize(theta));
      EXPECT_TRUE(torch::allclose(lin->weight(), expected, 1e-10, 1e-12)) << spec << " " << in.name() << " -> " << out.name();
      // Gradients reach every coefficient.
      lin->weight().sum().backward();
      EXPECT_TRUE(lin->weight_dof.grad().defined());
    }
  }
}

TEST(LinearSynthesis, GradientsAndSecondDerivativesEqualTheBasis) {
  // W is linear in θ: ∂⟨W, R⟩/∂θ_i = ⟨B_i, R⟩ with B_i the synthesis of the i-th unit vector, and that
  // gradient differentiated along v with respect to R is the synthesis of v. C2, C3 and C4 tiles are small
  // enough for the loops, D3's (6x6, r = 6) go through the matmul.
  for (const char* spec : {"C2", "C3", "C4", "D3"}) {
    const auto reg = Representation::regular(make_group(spec));
    torch::manual_seed(2);
    eLinear lin(eLinearOptions(reg.copies(3), reg.copies(2)).bias(false));
    lin->to(torch::kFloat64);
    const auto& basis = lin->basis();
    const auto synthesize = [&](const torch::Tensor& theta) { return to_tensor(basis.synthesize(to_eigen(theta).col(0))); };
    const int64_t n = lin->weight_dof.size(0);
    const auto r = torch::randn({reg.size() * 2, reg.size() * 3}, torch::kFloat64).requires_grad_(true);
    const auto g = torch::autograd::grad({(lin->weight() * r).sum()}, {lin->weight_dof}, {}, true, /*create_graph=*/true)[0];
    auto expected = torch::empty({n}, torch::kFloat64);
    for (int64_t i = 0; i < n; ++i) {
      expected[i] = (synthesize(torch::zeros({n}, torch::kFloat64).index_fill_(0, torch::tensor({i}), 1.0)) * r.detach()).sum();
    }
    EXPECT_TRUE(torch::allclose(g, expected, 1e-12, 1e-12)) << spec << ": " << (g - expected).abs().max().item<double>();
    const auto g0 = torch::autograd::grad({(lin->weight() * r.detach()).sum()}, {lin->weight_dof})[0];  // no graph: the loops
    EXPECT_TRUE(torch::allclose(g0, expected, 1e-12, 1e-12)) << spec << ": " << (g0 - expected).abs().max().item<double>();
    const auto v = torch::randn({n}, torch::kFloat64);
    const auto h = torch::autograd::grad({(g * v).sum()}, {r})[0];
    EXPECT_TRUE(torch::allclose(h, synthesize(v), 1e-12, 1e-12)) << spec;
    // Single precision takes the same path.
    const auto expected32 = lin->weight().detach().to(torch::kFloat32);
    lin->to(torch::kFloat32);
    EXPECT_TRUE(torch::allclose(lin->weight(), expected32, 1e-6, 1e-6)) << spec;
  }
}

TEST(LinearFold, ForwardAfterEqualsLinearOfAffineInTrainAndEval) {
  for (const char* spec : {"C4", "D3"}) {
    const auto g = make_group(spec);
    const auto rep = Representation::regular(g).copies(3);
    const auto out = Representation::regular(g).copies(2);
    torch::manual_seed(0);
    eAffine affine(rep);
    eLinear lin(rep, out);
    {
      torch::NoGradGuard no_grad;
      affine->scale_dof.uniform_(0.5, 1.5);
      if (affine->bias_dof.defined()) affine->bias_dof.normal_();
    }
    // 200 tokens > out features: training folds too; 2 tokens: training applies the affine.
    for (int64_t tokens : {200, 2}) {
      const auto x = torch::randn({tokens, rep.size()});
      for (bool train : {true, false}) {
        lin->train(train);
        affine->train(train);
        const auto expected = lin->forward(affine->forward(x));
        EXPECT_TRUE(torch::allclose(lin->forward_after(x, *affine), expected, 1e-4, 1e-5)) << spec << " train=" << train;
      }
    }
    // The eval cache (used when autograd needs nothing) follows the affine's parameters.
    lin->eval();
    affine->eval();
    const auto x = torch::randn({7, rep.size()});
    torch::NoGradGuard no_grad;
    lin->forward_after(x, *affine);
    affine->scale_dof.mul_(2.0);
    EXPECT_TRUE(torch::allclose(lin->forward_after(x, *affine), lin->forward(affine->forward(x)), 1e-4, 1e-5));
  }
}

TEST(LinearFold, AnAffineInAnotherBasisFoldsWithAMatmul) {
  const auto g = make_group("D4");
  const auto rep = Representation::regular(g).copies(2);
  torch::manual_seed(2);
  eAffine affine(symm::test::scrambled(rep, 7));  // same size, other basis: the scales do not fold into θ
  eLinear lin(rep, rep);
  {
    torch::NoGradGuard no_grad;
    affine->scale_dof.uniform_(0.5, 1.5);
  }
  const auto x = torch::randn({100, rep.size()});
  for (bool train : {true, false}) {
    lin->train(train);
    affine->train(train);
    EXPECT_TRUE(torch::allclose(lin->forward_after(x, *affine), lin->forward(affine->forward(x)), 1e-4, 1e-5)) << train;
  }
}

TEST(LinearFold, GradientsReachBothModules) {
  const auto g = make_group("C4");
  const auto rep = Representation::regular(g).copies(2);
  eAffine affine(rep);
  eLinear lin(rep, rep);
  lin->forward_after(torch::randn({50, rep.size()}), *affine).square().sum().backward();
  EXPECT_TRUE(affine->scale_dof.grad().defined() && affine->scale_dof.grad().abs().sum().item<double>() > 0);
  EXPECT_TRUE(lin->weight_dof.grad().defined() && lin->weight_dof.grad().abs().sum().item<double>() > 0);
}

TEST(LinearFold, RejectsAMismatchedAffine) {
  const auto g = make_group("C4");
  eAffine affine(Representation::regular(g));
  eLinear lin(Representation::regular(g).copies(2), Representation::regular(g));
  symm::test::expect_error([&] { lin->forward_after(torch::randn({3, 8}), *affine); }, {"eLinear", "4 features"});
}

}  // namespace
