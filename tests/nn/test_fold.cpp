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
    // The eval cache follows the affine's parameters.
    lin->eval();
    affine->eval();
    const auto x = torch::randn({7, rep.size()});
    lin->forward_after(x, *affine);
    {
      torch::NoGradGuard no_grad;
      affine->scale_dof.mul_(2.0);
    }
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
