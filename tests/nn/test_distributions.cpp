// eMultivariateNormal: equivariant mean, covariance commuting with the group, log_prob invariant on orbits,
// and log_prob, entropy and samples against the dense Gaussian formulas.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "symm/group/named.h"
#include "symm/nn/distributions.h"
#include "test_util.h"

using namespace symm::group;
using symm::nn::eMultivariateNormal;
using symm::nn::to_tensor;

namespace {

Representation out_rep_of(const std::string& spec) {
  const auto g = spec == "perm" ? Group::from_permutations("perm", {{1, 2, 0}, {1, 0, 2}}) : make_group(spec);
  const int last = static_cast<int>(g->irreps().size()) - 1;
  return symm::test::scrambled(direct_sum(Representation::regular(g), Representation::irrep(g, last)), 31);
}

// log N(y; μ, Σ) = −½ (n log 2π + log det Σ + (y − μ)ᵀ Σ⁻¹ (y − μ)), from the dense Σ.
torch::Tensor dense_log_prob(const torch::Tensor& y, const torch::Tensor& mu, const torch::Tensor& sigma) {
  const auto r = (y - mu).unsqueeze(-1);
  const auto maha = torch::matmul(r.transpose(-1, -2), torch::linalg_solve(sigma, r)).squeeze(-1).squeeze(-1);
  return -0.5 * (double(y.size(-1)) * std::log(2 * M_PI) + std::get<1>(torch::linalg_slogdet(sigma)) + maha);
}

class NormalTest : public ::testing::TestWithParam<std::tuple<const char*, torch::Dtype>> {};

TEST_P(NormalTest, EquivariantAndInvariantOnOrbits) {
  const auto [spec, dtype] = GetParam();
  const auto rep = out_rep_of(spec);
  eMultivariateNormal head(rep);
  const auto& in = head->in_rep();
  ASSERT_EQ(in.size(), rep.size() + static_cast<int64_t>(rep.irreps().size()));
  torch::manual_seed(1);
  const auto u = torch::randn({5, in.size()}, dtype), y = torch::randn({5, rep.size()}, dtype);
  const auto base = head->forward(u);
  const auto lp = base.log_prob(y);
  const double tol = symm::test::tolerance(dtype);
  for (int g = 0; g < rep.group()->order(); ++g) {
    const auto ri = to_tensor(in(g)).to(dtype), ro = to_tensor(rep(g)).to(dtype);
    const auto moved = head->forward(torch::matmul(u, ri.t()));
    ASSERT_LT((moved.mean() - torch::matmul(base.mean(), ro.t())).abs().max().item<double>(), tol) << "g = " << g;
    const auto sigma = moved.covariance_matrix();
    ASSERT_LT((torch::matmul(ro, sigma) - torch::matmul(sigma, ro)).abs().max().item<double>(), tol * sigma.abs().max().item<double>());
    ASSERT_LT((moved.log_prob(torch::matmul(y, ro.t())) - lp).abs().max().item<double>(), tol * lp.abs().max().item<double>())
        << "g = " << g;
  }
}

INSTANTIATE_TEST_SUITE_P(Groups, NormalTest,
                         ::testing::Combine(::testing::Values("C2", "D4", "C8", "Q8", "O", "perm"),
                                            ::testing::Values(torch::kFloat32, torch::kFloat64)));

TEST(eMultivariateNormal, LogProbAndEntropyAreTheDenseFormulas) {
  const auto rep = out_rep_of("D4");
  eMultivariateNormal head(rep);
  torch::manual_seed(2);
  const auto u = torch::randn({3, 4, head->in_rep().size()}, torch::kFloat64);
  const auto y = torch::randn({3, 4, rep.size()}, torch::kFloat64);
  const auto normal = head->forward(u);
  const auto sigma = normal.covariance_matrix();
  EXPECT_LT((normal.log_prob(y) - dense_log_prob(y, normal.mean(), sigma)).abs().max().item<double>(), 1e-10);
  const double n = rep.size();
  const auto entropy = 0.5 * (n * (1 + std::log(2 * M_PI)) + std::get<1>(torch::linalg_slogdet(sigma)));
  EXPECT_LT((normal.entropy() - entropy).abs().max().item<double>(), 1e-10);
  EXPECT_LT((normal.variance() - torch::diagonal(sigma, 0, -2, -1)).abs().max().item<double>(), 1e-12);
  // Σ = Q diag(v) Qᵀ: the variance of copy i is exp(log-variance i) + 1e-6, along Q's columns of that copy.
  const auto q = to_tensor(rep.change_of_basis());
  const auto spectral = torch::matmul(torch::matmul(q.t(), sigma[0][0]), q);
  EXPECT_NEAR(spectral[0][0].item<double>(), std::exp(u[0][0][rep.size()].item<double>()) + 1e-6, 1e-12);
}

TEST(eMultivariateNormal, RsampleHasTheMomentsAndTheGradients) {
  const auto rep = out_rep_of("C2");
  eMultivariateNormal head(rep);
  torch::manual_seed(3);
  const auto u = torch::randn({head->in_rep().size()}, torch::kFloat64).requires_grad_();
  const auto normal = head->forward(u);
  const auto s = normal.rsample({20000});
  ASSERT_EQ(s.sizes(), (std::vector<int64_t>{20000, rep.size()}));
  const auto centred = s - s.mean(0);
  const auto emp = torch::matmul(centred.t(), centred) / 19999.0;
  const auto sigma = normal.covariance_matrix();
  // Sampling error of a covariance from 20000 draws: about 1% of the largest variance; allow 5%.
  EXPECT_LT((emp - sigma).abs().max().item<double>(), 0.05 * sigma.abs().max().item<double>());
  EXPECT_LT((s.mean(0) - normal.mean()).abs().max().item<double>(), 0.05 * std::sqrt(sigma.abs().max().item<double>()));
  // Reparametrised: d mean(sample)/dμ = 1 for every coordinate.
  const auto grad = torch::autograd::grad({s.mean(0).sum()}, {u})[0];
  EXPECT_LT((grad.narrow(0, 0, rep.size()) - 1.0).abs().max().item<double>(), 1e-12);
  EXPECT_FALSE(normal.sample({2}).requires_grad());
}

TEST(eMultivariateNormal, BadInputIsNamed) {
  const auto rep = Representation::regular(make_group("D4"));  // 4 one-dimensional irreps, 2 copies of the 2-dimensional one
  eMultivariateNormal head(rep);
  ASSERT_EQ(head->n_cov_params(), 6);
  using symm::test::expect_error;
  expect_error([&] { head->forward(torch::randn({2, 12})); }, {"eMultivariateNormal", "(..., 14)", "[2, 12]"});
  expect_error([&] { eMultivariateNormal(symm::nn::eMultivariateNormalOptions(rep).diagonal(false)); }, {"diagonal=false"});
  expect_error([&] { head->forward(torch::randn({2, 14})).log_prob(torch::randn({2, 7})); }, {"log_prob", "(..., 8)"});
  std::ostringstream s;
  head->pretty_print(s);
  EXPECT_NE(s.str().find("n_cov_params=6"), std::string::npos) << s.str();
}

}  // namespace
