// IrrepSubspaceNormPooling and Change2DisentangledBasis: invariance / equivariance on every group element,
// agreement with the direct formula, gradients at a vanishing copy, errors.
#include <gtest/gtest.h>

#include "symm/group/named.h"
#include "symm/nn/disentangled.h"
#include "symm/nn/equivariance.h"
#include "symm/nn/pooling.h"
#include "test_util.h"

using namespace symm::nn;
using symm::group::make_group;

namespace {

class PoolingTest : public ::testing::TestWithParam<std::tuple<const char*, torch::Dtype>> {};

TEST_P(PoolingTest, NormPoolingIsInvariantAndTheBasisChangeEquivariant) {
  const auto [name, dtype] = GetParam();
  const auto g = make_group(name);
  const auto rep = symm::test::scrambled(
      direct_sum(direct_sum(Representation::trivial(g), Representation::regular(g)), Representation::irrep(g, 1)), 9);
  const auto x = torch::randn({3, 2, rep.size()}, torch::dtype(dtype));
  const auto elements = elements_to_check(*g);
  const double tol = symm::test::tolerance(dtype);
  IrrepSubspaceNormPooling pool(rep);
  EXPECT_EQ(pool->out_rep().size(), static_cast<int>(rep.irreps().size()));
  const auto fp = [&](const torch::Tensor& t) { return pool(t); };
  EXPECT_LT(equivariance_error(fp, rep, pool->out_rep(), x, elements).max_relative, tol);
  // Σ r_i² = |x|² (Q is orthogonal), and r matches the formula.
  const auto r = pool(x);
  EXPECT_LT((r.square().sum(-1) - x.square().sum(-1)).abs().max().item<double>(), tol * 100);
  EXPECT_LT((r - functional::irrep_radii(x, rep)).abs().max().item<double>(), tol);
  Change2DisentangledBasis change(rep);
  const auto fc = [&](const torch::Tensor& t) { return change(t); };
  EXPECT_LT(equivariance_error(fc, rep, change->out_rep(), x, elements).max_relative, tol);
  EXPECT_TRUE(std::is_sorted(change->out_rep().irreps().begin(), change->out_rep().irreps().end()));
  // The norms of the copies survive the change of basis.
  IrrepSubspaceNormPooling pool_iso(change->out_rep());
  EXPECT_LT((std::get<0>(pool_iso(change(x)).sort(-1)) - std::get<0>(r.sort(-1))).abs().max().item<double>(), tol * 10);
}

INSTANTIATE_TEST_SUITE_P(Groups, PoolingTest,
                         ::testing::Combine(::testing::Values("C2", "D4", "C8", "Q8", "O"),
                                            ::testing::Values(torch::kFloat32, torch::kFloat64)),
                         symm::test::GroupAndDtypeName());

TEST(Pooling, GradientIsFiniteAtAVanishingCopyAndEqualsTheFormulaElsewhere) {
  const auto g = make_group("D4");
  const auto rep = direct_sum(Representation::irrep(g, 4), Representation::irrep(g, 4));
  auto x = torch::zeros({rep.size()}, torch::kFloat64);
  x.narrow(0, 2, 2).copy_(torch::tensor({3.0, 4.0}, torch::kFloat64));
  x.requires_grad_(true);
  IrrepSubspaceNormPooling pool(rep);
  pool(x).sum().backward();
  EXPECT_TRUE(torch::isfinite(x.grad()).all().item<bool>());
  // d|v|/dv = v/|v| on the second copy (Q = I for a direct sum of irreps).
  EXPECT_LT((x.grad().narrow(0, 2, 2) - torch::tensor({0.6, 0.8}, torch::kFloat64)).abs().max().item<double>(), 1e-12);
}

TEST(Pooling, IdentityBasisIsPassedThroughAndLearnableStartsAtTheChange) {
  const auto g = make_group("C8");
  Change2DisentangledBasis learned(Change2DisentangledBasisOptions(Representation::regular(g)).learnable(true));
  EXPECT_TRUE(torch::allclose(learned->linear->weight.to(torch::kFloat64), learned->change_of_basis(), 1e-6, 1e-6));
  const auto x = torch::randn({2, 8});
  Change2DisentangledBasis fixed(Representation::regular(g));
  EXPECT_LT((learned(x) - fixed(x)).abs().max().item<double>(), 1e-5);
  Change2DisentangledBasis already(fixed->out_rep());  // already isotypic
  EXPECT_TRUE(torch::equal(already(x), x));
}

TEST(Pooling, BadInputsRaiseNamedErrors) {
  const auto g = make_group("Q8");
  IrrepSubspaceNormPooling pool(Representation::regular(g));
  symm::test::expect_error([&] { pool(torch::randn({2, 7})); }, {"IrrepSubspaceNormPooling", "last dimension 8", "[2, 7]"});
  Change2DisentangledBasis change(Representation::regular(g));
  symm::test::expect_error([&] { change(torch::randn({3})); }, {"Change2DisentangledBasis", "last dimension 8", "[3]"});
}

}  // namespace
