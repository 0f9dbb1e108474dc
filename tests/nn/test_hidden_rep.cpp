// hidden_rep: the regular representation whose copies make the hidden channels of eMLP, iMLP, eTimeCNNEncoder and
// eConditionalUnet1D, in another irrep decomposition than ours. Equivariance in float64, the hidden copies built
// from it, the dense maps equal to the default model's once the weights are mapped, the errors for what is not
// the regular representation, and checkpoints: a round trip, and a refusal across decompositions.
#include <cstdio>

#include <gtest/gtest.h>

#include "symm/group/named.h"
#include "symm/group/random.h"
#include "symm/nn/checkpoint.h"
#include "symm/nn/equivariance.h"
#include "symm/nn/mlp.h"
#include "symm/nn/time_cnn.h"
#include "symm/nn/unet.h"
#include "test_util.h"

using namespace symm::nn;
using symm::group::GroupPtr;
using symm::group::make_group;

// Named, not anonymous: the unity build compiles this file together with others that have helpers of these names.
namespace hidden_rep_test {

/// Q's columns of each irrep copy of rep.
std::vector<Eigen::MatrixXd> copy_blocks(const Representation& rep) {
  std::vector<Eigen::MatrixXd> blocks;
  Eigen::Index at = 0;
  for (int k : rep.irreps()) {
    const int d = rep.group()->irrep(k).dim;
    blocks.push_back(rep.change_of_basis().middleCols(at, d));
    at += d;
  }
  return blocks;
}

/// The regular representation of g (its matrices) in another decomposition: within each isotypic component the
/// copies mixed by a random orthogonal matrix (a sign for a single copy), with `mix`, then the copies in reverse
/// order. ρ(g) = Σ_j Q_j ψ(g) Q_jᵀ is unchanged by both, the copies are not ours.
Representation foreign_regular(const GroupPtr& g, bool mix, std::uint64_t seed = 11) {
  const auto reg = Representation::regular(g);
  auto blocks = copy_blocks(reg);
  symm::group::Rng rng(seed);
  if (mix) {
    for (int k = 0; k < static_cast<int>(g->irreps().size()); ++k) {
      std::vector<size_t> of_k;
      for (size_t j = 0; j < reg.irreps().size(); ++j)
        if (reg.irreps()[j] == k) of_k.push_back(j);
      const auto m = static_cast<Eigen::Index>(of_k.size());
      Eigen::MatrixXd a(m, m);
      for (Eigen::Index i = 0; i < a.size(); ++i) a.data()[i] = rng.normal();
      const Eigen::MatrixXd c = Eigen::HouseholderQR<Eigen::MatrixXd>(a).householderQ();
      std::vector<Eigen::MatrixXd> mixed;
      for (Eigen::Index i = 0; i < m; ++i) {
        Eigen::MatrixXd sum = Eigen::MatrixXd::Zero(blocks[of_k[0]].rows(), blocks[of_k[0]].cols());
        for (Eigen::Index j = 0; j < m; ++j) sum += c(i, j) * blocks[of_k[j]];
        mixed.push_back(sum);
      }
      for (Eigen::Index i = 0; i < m; ++i) blocks[of_k[i]] = mixed[i];
    }
  }
  std::vector<int> irreps(reg.irreps().rbegin(), reg.irreps().rend());
  Eigen::MatrixXd q(reg.size(), reg.size());
  Eigen::Index at = 0;
  for (auto b = blocks.rbegin(); b != blocks.rend(); ++b) {
    q.middleCols(at, b->cols()) = *b;
    at += b->cols();
  }
  return Representation(g, irreps, q, mix ? "regular (mixed)" : "regular (reversed)");
}

void perturb(torch::nn::Module& m, double scale = 0.3) {
  torch::NoGradGuard no_grad;
  for (auto& p : m.parameters()) p.add_(scale * torch::randn_like(p));
}

/// ρ(g) applied to the channel axis (1) of (B, C, L), or to the last axis of (B, C).
torch::Tensor act_channels(const Representation& rep, int g, const torch::Tensor& x) {
  return x.dim() == 2 ? act(rep, g, x) : act(rep, g, x.transpose(1, 2)).transpose(1, 2);
}

/// max_g |f(ρ_in(g)x, ...) − ρ_out(g)f(x, ...)| / |f(x, ...)| with the condition c transformed by ρ_c (if given).
double error(const std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>& f, const Representation& in,
             const Representation& out, const torch::Tensor& x, const Representation* cond_rep = nullptr,
             const torch::Tensor& c = {}) {
  const auto y = f(x, c);
  double worst = 0;
  for (int g : elements_to_check(*in.group())) {
    const auto gy = f(act_channels(in, g, x), cond_rep ? act_channels(*cond_rep, g, c) : c);
    worst = std::max(worst, ((gy - act_channels(out, g, y)).abs().max() / y.abs().max()).item<double>());
  }
  return worst;
}

eConditionalUnet1DOptions unet_options(const Representation& reg, const std::optional<Representation>& hidden) {
  return eConditionalUnet1DOptions(reg).global_cond_rep(reg).diffusion_step_embed_dim(4)
      .down_dims({2 * reg.size()}).hidden_rep(hidden);
}

eTimeCNNEncoderOptions encoder_options(const Representation& in, const Representation& out,
                                       const std::optional<Representation>& hidden) {
  const int64_t n = in.group()->order();
  return eTimeCNNEncoderOptions(in, out, {n, 2 * n}, 6).batch_norm(true).mlp_hidden({2 * n}).hidden_rep(hidden);
}

/// Whether rep is copies of one, as decomposed there.
bool copies_of(const Representation& rep, const Representation& one) {
  return symm::group::same_decomposition(rep, one.copies(rep.size() / one.size()));
}

class HiddenRepTest : public ::testing::TestWithParam<const char*> {};

TEST_P(HiddenRepTest, ForeignDecompositionHasOurMatricesButOtherCopies) {
  const auto g = make_group(GetParam());
  const auto reg = Representation::regular(g), foreign = foreign_regular(g, true);
  EXPECT_TRUE(symm::group::same_representation(foreign, reg));
  EXPECT_EQ(foreign.fingerprint(), reg.fingerprint());  // what a checkpoint already tells apart: the matrices
  EXPECT_FALSE(is_our_decomposition(foreign));
  EXPECT_TRUE(is_our_decomposition(reg.copies(3)));
  EXPECT_NE(foreign.decomposition_fingerprint(), reg.decomposition_fingerprint());
  EXPECT_EQ(reg.decomposition_fingerprint(), Representation::regular(g).decomposition_fingerprint());
  EXPECT_EQ(reg.copies(3).decomposition_fingerprint().substr(0, 3), "3x[");
  EXPECT_FALSE(unless_ours(reg));
  ASSERT_TRUE(unless_ours(foreign));
}

TEST_P(HiddenRepTest, ModelsAreEquivariantInFloat64AndBuildTheirHiddenCopiesFromIt) {
  const auto g = make_group(GetParam());
  const auto reg = Representation::regular(g), hidden = foreign_regular(g, true);
  const auto in = symm::test::scrambled(direct_sum(reg, Representation::irrep(g, 1)), 3);
  const int64_t n = g->order();
  torch::manual_seed(5);
  eMLP emlp(eMLPOptions(in, reg.copies(2), {n, 2 * n}).hidden_rep(hidden));
  iMLP imlp(iMLPOptions(in, 3, {n, 2 * n}).hidden_rep(hidden));
  eTimeCNNEncoder encoder(encoder_options(in, reg.copies(2), hidden));
  eConditionalUnet1D unet(unet_options(reg, hidden));
  for (torch::nn::Module* m : std::initializer_list<torch::nn::Module*>{emlp.get(), imlp.get(), encoder.get(), unet.get()}) {
    m->to(torch::kFloat64);
    perturb(*m);
    m->eval();
  }
  for (const auto& r : emlp->hidden_reps()) EXPECT_TRUE(copies_of(r, hidden));
  EXPECT_TRUE(copies_of(imlp->backbone->out_rep(), hidden));  // the pooled irrep copies
  for (const auto& m : encoder->norms->children()) EXPECT_TRUE(copies_of(m->as<eRMSNormImpl>()->in_rep(), hidden));
  EXPECT_TRUE(copies_of(encoder->equivariant_head->hidden_reps()[0], hidden));
  EXPECT_TRUE(copies_of(unet->final_norm->in_rep(), hidden));
  EXPECT_TRUE(same_decomposition(emlp->hidden_rep(), hidden) && same_decomposition(encoder->hidden_rep(), hidden));
  EXPECT_TRUE(same_decomposition(imlp->hidden_rep(), hidden) && same_decomposition(unet->hidden_rep(), hidden));

  torch::NoGradGuard no_grad;
  const auto opt = torch::dtype(torch::kFloat64);
  const double tol = 1e-10;
  const auto x = torch::randn({4, in.size()}, opt), series = torch::randn({4, in.size(), 6}, opt);
  EXPECT_LT(error([&](const torch::Tensor& v, const torch::Tensor&) { return emlp(v); }, in, emlp->out_rep(), x), tol);
  EXPECT_LT(error([&](const torch::Tensor& v, const torch::Tensor&) { return imlp(v); }, in, imlp->out_rep(), x), tol);
  EXPECT_LT(error([&](const torch::Tensor& v, const torch::Tensor&) { return encoder(v); }, in, encoder->out_rep(), series), tol);
  const auto t = torch::tensor({3.0, 17.0, 1.0, 40.0}, opt);
  const auto sample = torch::randn({4, reg.size(), 4}, opt), c = torch::randn({4, reg.size()}, opt);
  EXPECT_LT(error([&](const torch::Tensor& v, const torch::Tensor& cv) { return unet(v, t, torch::Tensor(), cv); }, reg, reg, sample,
                  &reg, c), tol);
  // Not vacuous: a foreign input transformation breaks it.
  const auto other = symm::test::scrambled(in, 9);
  EXPECT_GT(error([&](const torch::Tensor& v, const torch::Tensor&) { return emlp(v); }, other, emlp->out_rep(), x), 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Groups, HiddenRepTest, ::testing::Values("D4", "C8", "Q8"));

/// Sets `to`'s coefficients so that its dense maps equal `from`'s: the two are built alike but for hidden_rep.
/// Equivariant maps and invariant biases carry over exactly (their dense values do not depend on the
/// decomposition); a per-copy scale only where `from` has one scale per irrep type (checked).
void map_weights(torch::nn::Module& from, torch::nn::Module& to) {
  const auto a = from.modules(), b = to.modules();
  ASSERT_EQ(a.size(), b.size());
  torch::NoGradGuard no_grad;
  const auto vec = [](const torch::Tensor& t) { return Eigen::VectorXd(to_eigen(t.reshape({-1, 1})).col(0)); };
  const auto fix = [&](const Representation& ra, const Representation& rb, const torch::Tensor& ta, torch::Tensor& tb) {
    if (ta.defined()) tb.copy_(to_tensor(Eigen::VectorXd(rb.invariant_basis().transpose() * ra.invariant_basis() * vec(ta))).view_as(tb));
  };
  for (size_t i = 0; i < a.size(); ++i) {
    if (auto* la = a[i]->as<eLinearImpl>()) {
      auto* lb = b[i]->as<eLinearImpl>();
      lb->weight_dof.copy_(to_tensor(lb->basis().coefficients(la->basis().synthesize(vec(la->weight_dof)))).view_as(lb->weight_dof));
      fix(la->out_rep(), lb->out_rep(), la->bias_dof, lb->bias_dof);
    } else if (auto* ca = a[i]->as<eConv1dImpl>()) {
      auto* cb = b[i]->as<eConv1dImpl>();
      for (int64_t tap = 0; tap < ca->weight_dof.size(0); ++tap)
        cb->weight_dof[tap].copy_(to_tensor(cb->basis().coefficients(ca->basis().synthesize(vec(ca->weight_dof[tap])))).view(-1));
      fix(ca->out_rep(), cb->out_rep(), ca->bias_dof, cb->bias_dof);
    } else if (auto* fa = a[i]->as<eAffineImpl>()) {
      auto* fb = b[i]->as<eAffineImpl>();
      const auto& ka = fa->in_rep().irreps(), &kb = fb->in_rep().irreps();
      std::map<int, double> by_type;
      for (size_t j = 0; j < ka.size(); ++j) {
        const double s = fa->scale_dof[j].item<double>();
        ASSERT_TRUE(by_type.emplace(ka[j], s).first->second == s) << "one scale per irrep type is mappable";
      }
      for (size_t j = 0; j < kb.size(); ++j) fb->scale_dof[j].fill_(by_type.at(kb[j]));
      fix(fa->in_rep(), fb->in_rep(), fa->bias_dof, fb->bias_dof);
    } else if (!dynamic_cast<eModule*>(a[i].get())) {
      for (const auto& p : a[i]->named_parameters(/*recurse=*/false)) b[i]->named_parameters(false)[p.key()].copy_(p.value());
    }
  }
}

TEST(HiddenRep, DenseResultEqualsTheDefaultModelsWhenTheWeightsAreMapped) {
  const auto g = make_group("D4");
  const auto reg = Representation::regular(g), hidden = foreign_regular(g, true);
  const auto in = symm::test::scrambled(direct_sum(reg, Representation::irrep(g, 2)), 4);
  torch::manual_seed(2);
  eMLP ours(eMLPOptions(in, reg, {8, 16})), theirs(eMLPOptions(in, reg, {8, 16}).hidden_rep(hidden));
  eTimeCNNEncoder cnn(encoder_options(in, reg.copies(2), std::nullopt)), other(encoder_options(in, reg.copies(2), hidden));
  for (torch::nn::Module* m : std::initializer_list<torch::nn::Module*>{ours.get(), theirs.get(), cnn.get(), other.get()}) {
    m->to(torch::kFloat64);
    perturb(*m);
  }
  {  // Norm scales one per irrep type: the only per-copy scales that mean the same on other copies.
    torch::NoGradGuard no_grad;
    for (const auto& m : cnn->modules())
      if (auto* f = m->as<eAffineImpl>())
        for (size_t j = 0; j < f->in_rep().irreps().size(); ++j) f->scale_dof[j].fill_(1.0 + 0.25 * f->in_rep().irreps()[j]);
  }
  map_weights(*ours, *theirs);
  map_weights(*cnn, *other);
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({5, in.size()}, torch::kFloat64), series = torch::randn({5, in.size(), 6}, torch::kFloat64);
  EXPECT_LT(symm::test::relative(theirs(x), ours(x)), 1e-10);
  EXPECT_LT(symm::test::relative(other(series), cnn(series)), 1e-10);
  // The coefficients themselves differ: the same maps in other bases.
  EXPECT_GT((theirs->layers[0]->as<eLinearImpl>()->weight_dof - ours->layers[0]->as<eLinearImpl>()->weight_dof).abs().max().item<double>(), 1e-3);
  // Per-copy scales that differ within an irrep type give another model: the decomposition matters.
  cnn->norms[0]->as<eRMSNormImpl>()->affine->scale_dof.data()[4] += 0.5;  // one of D4's two 2-dim copies
  EXPECT_GT(symm::test::relative(other(series), cnn(series)), 1e-4);
}

TEST(HiddenRep, IMLPPoolsTheCopiesOfItsHiddenRep) {
  // Reversed copies of C8: the pooled invariants are ours in reverse order, so a head with reversed columns
  // gives the same output.
  const auto g = make_group("C8");
  const auto reg = Representation::regular(g), hidden = foreign_regular(g, false);
  torch::manual_seed(4);
  iMLP ours(iMLPOptions(reg, 2, {8, 8})), theirs(iMLPOptions(reg, 2, {8, 8}).hidden_rep(hidden));
  ours->to(torch::kFloat64);
  theirs->to(torch::kFloat64);
  perturb(*ours);
  map_weights(*ours->backbone, *theirs->backbone);
  torch::NoGradGuard no_grad;
  const auto copies = static_cast<int64_t>(reg.irreps().size());
  theirs->head->weight.copy_(ours->head->weight.flip(1));
  theirs->head->bias.copy_(ours->head->bias);
  ASSERT_EQ(theirs->head->weight.size(1), copies);
  const auto x = torch::randn({6, reg.size()}, torch::kFloat64);
  const auto h = ours->backbone(x);
  EXPECT_LT(symm::test::relative(theirs->invariants(h), ours->invariants(h).flip(-1)), 1e-10);
  EXPECT_LT(symm::test::relative(theirs(x), ours(x)), 1e-10);
}

TEST(HiddenRep, NotTheRegularRepresentationIsAnErrorNamingModuleExpectedAndGot) {
  const auto g = make_group("D4");
  const auto reg = Representation::regular(g);
  const auto twice = reg.copies(2), c8 = Representation::regular(make_group("C8"));
  const auto scrambled = symm::test::scrambled(reg, 2);  // the regular representation, not its permutation basis
  using symm::test::expect_error;
  expect_error([&] { eMLP(eMLPOptions(reg, reg, {8}).hidden_rep(twice)); },
               {"eMLP: hidden_rep must be the regular representation of D4 in the permutation basis", "of size 16 of D4"});
  expect_error([&] { iMLP(iMLPOptions(reg, 2, {8}).hidden_rep(c8)); },
               {"iMLP: hidden_rep must be the regular representation of D4", "of size 8 of C8"});
  expect_error([&] { eTimeCNNEncoder(encoder_options(reg, reg, scrambled)); },
               {"eTimeCNNEncoder: hidden_rep must be the regular representation of D4", "got D4:regular' of size 8 of D4"});
  expect_error([&] { eConditionalUnet1D(unet_options(reg, Representation::trivial(g, 8))); },
               {"eConditionalUnet1D: hidden_rep must be the regular representation of D4", "of size 8 of D4"});
}

TEST(HiddenRep, ArchitectureNamesOnlyAForeignDecomposition) {
  const auto g = make_group("D4");
  const auto reg = Representation::regular(g), hidden = foreign_regular(g, true);
  const auto plain = symm::architecture(*eTimeCNNEncoder(encoder_options(reg, reg, std::nullopt)));
  EXPECT_EQ(plain.find("decomposition="), std::string::npos);
  EXPECT_EQ(symm::architecture(*eTimeCNNEncoder(encoder_options(reg, reg, reg))), plain);  // ours, given explicitly
  const auto foreign = symm::architecture(*eTimeCNNEncoder(encoder_options(reg, reg, hidden)));
  const auto first = foreign.substr(0, foreign.find('\n'));
  EXPECT_NE(first.find(" decomposition=" + hidden.decomposition_fingerprint()), std::string::npos) << first;
  // A residual block reports its out_rep's decomposition: its FiLM predicts one scale per copy of it.
  eConditionalResidualBlock1D block(reg, hidden.copies(2), Representation::trivial(g, 3));
  EXPECT_NE(symm::architecture(*block).find(" decomposition=" + hidden.copies(2).decomposition_fingerprint()), std::string::npos);
  eConditionalResidualBlock1D ours(reg, reg.copies(2), Representation::trivial(g, 3));
  EXPECT_EQ(symm::architecture(*ours).find("decomposition="), std::string::npos);
}

TEST(HiddenRep, CheckpointRoundTripsAndIsRefusedAcrossDecompositions) {
  const auto g = make_group("D4");
  const auto reg = Representation::regular(g), hidden = foreign_regular(g, true), another = foreign_regular(g, true, 12);
  const std::string path = ::testing::TempDir() + "hidden_rep.symm", path_ours = ::testing::TempDir() + "hidden_rep_ours.symm";
  torch::manual_seed(8);
  eConditionalUnet1D saved(unet_options(reg, hidden)), fresh(unet_options(reg, hidden));
  perturb(*saved);
  saved->eval();
  fresh->eval();
  symm::save(saved, path);
  symm::load(fresh, path);
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({2, reg.size(), 4}), c = torch::randn({2, reg.size()}), t = torch::tensor({1.0, 9.0});
  EXPECT_LT(symm::test::relative(fresh(x, t, torch::Tensor(), c), saved(x, t, torch::Tensor(), c)), 1e-6);

  eConditionalUnet1D ours(unet_options(reg, std::nullopt)), other(unet_options(reg, another));
  const auto before = ours->parameters()[0].clone();
  symm::test::expect_error([&] { symm::load(ours, path); },
                           {"was saved with its hidden regular copies in another irrep decomposition", "at '(root) symm::nn::eConditionalUnet1DImpl'",
                            "the checkpoint has decomposition " + hidden.decomposition_fingerprint() + " where the module has ours",
                            "build the module with the hidden_rep it was saved with"});
  EXPECT_TRUE(torch::equal(ours->parameters()[0], before));  // refused before anything is written
  symm::test::expect_error([&] { symm::load(other, path); },
                           {"another irrep decomposition", "where the module has " + another.decomposition_fingerprint()});
  symm::save(ours, path_ours);
  symm::test::expect_error([&] { symm::load(fresh, path_ours); },
                           {"the checkpoint has decomposition ours where the module has " + hidden.decomposition_fingerprint()});
  std::remove(path.c_str());
  std::remove(path_ours.c_str());
}

}  // namespace hidden_rep_test
