// Isotypic execution (block GEMMs on the coefficients) against the dense reference: outputs and coefficient
// gradients of eLinear and of whole layers, equivariance, and checkpoints shared by both paths.
#include <gtest/gtest.h>

#include "symm/group/named.h"
#include "symm/nn/affine.h"
#include "symm/nn/attention.h"
#include "symm/nn/checkpoint.h"
#include "symm/nn/decoder_layer.h"
#include "symm/nn/encoder.h"
#include "symm/nn/equivariance.h"
#include "symm/nn/linear.h"
#include "symm/nn/positional.h"
#include "test_util.h"

using namespace symm::nn;
using symm::group::make_group;
using symm::test::relative;

namespace {

double parity_tolerance(torch::Dtype dtype) { return dtype == torch::kFloat64 ? 1e-12 : 1e-5; }

/// Runs `loss` on a dense and an isotypic copy of `module` and compares the outputs and the gradients of
/// every parameter (the coefficients).
template <typename M>
void expect_paths_agree(const M& module, const std::function<torch::Tensor(M&)>& output, torch::Dtype dtype,
                        const std::string& what) {
  auto dense = std::dynamic_pointer_cast<typename M::ContainedType>(module->clone());
  auto iso = std::dynamic_pointer_cast<typename M::ContainedType>(module->clone());
  set_execution(*dense, Execution::dense);
  set_execution(*iso, Execution::isotypic);
  M a(dense), b(iso);
  for (bool train : {true, false}) {
    a->train(train);
    b->train(train);
    a->zero_grad();
    b->zero_grad();
    const auto ya = output(a), yb = output(b);
    EXPECT_LT(relative(yb, ya), parity_tolerance(dtype)) << what << " train=" << train << ": outputs";
    if (!train) continue;
    // A loss that weighs every output differently, so that no gradient cancels by symmetry.
    const auto w = torch::linspace(0.5, 1.5, ya.numel(), ya.options()).view(ya.sizes());
    (ya * w).sum().backward();
    (yb * w).sum().backward();
    // Relative to the largest gradient entry of the module: a parameter whose gradient nearly cancels (the
    // bias of a post-norm followed by another norm) has a tiny scale of its own, and its float32 rounding,
    // on either path, is relative to the terms that cancelled.
    const auto pa = a->named_parameters(), pb = b->named_parameters();
    double scale = 1e-30;
    for (const auto& p : pa) {
      ASSERT_TRUE(p.value().grad().defined() && pb[p.key()].grad().defined()) << what << ": no gradient for " << p.key();
      scale = std::max(scale, p.value().grad().abs().max().item().toDouble());
    }
    for (const auto& p : pa) {
      const double err = (pb[p.key()].grad() - p.value().grad()).abs().max().item().toDouble() / scale;
      EXPECT_LT(err, parity_tolerance(dtype)) << what << ": gradient of " << p.key();
    }
  }
}

class IsotypicLinearTest : public ::testing::TestWithParam<std::tuple<const char*, torch::Dtype>> {};

TEST_P(IsotypicLinearTest, AgreesWithDenseInOutputsAndGradients) {
  const auto [spec, dtype] = GetParam();
  const auto g = make_group(spec);
  const auto regular = Representation::regular(g);
  const std::vector<std::pair<Representation, Representation>> pairs = {
      {regular.copies(2), regular.copies(3)},                                                 // equal chunks
      {direct_sum(regular.copies(2), Representation::trivial(g)), regular},                   // unequal chunks
      {symm::test::scrambled(regular.copies(2), 7), symm::test::scrambled(regular, 8)},      // no structure
  };
  for (const auto& [in, out] : pairs) {
    torch::manual_seed(3);
    eLinear lin(in, out);
    lin->to(dtype);
    const auto x = torch::randn({3, 2, in.size()}, torch::dtype(dtype));
    expect_paths_agree<eLinear>(lin, [&](eLinear& l) { return l->forward(x); }, dtype, std::string(spec) + " " + in.name());
    // The folded affine of a pre-norm: scales on the coefficients, its bias through the blocks.
    eAffine affine{eAffineOptions(in)};
    affine->to(dtype);
    {
      torch::NoGradGuard no_grad;
      for (auto& p : affine->parameters()) p.uniform_(0.5, 1.5);
    }
    torch::Tensor want;
    for (bool iso : {false, true}) {
      lin->options.execution(iso ? Execution::isotypic : Execution::dense);
      const auto y = lin->forward_after(x, *affine);
      if (!iso) want = lin->forward(affine->forward(x));
      EXPECT_LT(relative(y, want), parity_tolerance(dtype)) << spec << " forward_after iso=" << iso;
    }
  }
}

TEST_P(IsotypicLinearTest, IsEquivariantAndCountsFewerMultiplyAddsOnRegularCopies) {
  const auto [spec, dtype] = GetParam();
  const auto g = make_group(spec);
  const auto rep = Representation::regular(g).copies(8);
  eLinear lin(eLinearOptions(rep, rep).execution(Execution::isotypic));
  lin->to(dtype);
  EXPECT_TRUE(lin->uses_isotypic());
  const auto x = torch::randn({5, rep.size()}, torch::dtype(dtype));
  const auto err = equivariance_error([&](const torch::Tensor& t) { return lin->forward(t); }, rep, rep, x, elements_to_check(*g));
  EXPECT_LT(err.max_relative, symm::test::tolerance(dtype)) << spec;
  EXPECT_LT(lin->multiply_adds(), int64_t(rep.size()) * rep.size()) << spec;
}

INSTANTIATE_TEST_SUITE_P(Groups, IsotypicLinearTest,
                         ::testing::Combine(::testing::Values("C2", "C8", "D8", "Q8", "O", "I", "C2xD3"),
                                            ::testing::Values(torch::kFloat32, torch::kFloat64)),
                         symm::test::GroupAndDtypeName());

std::shared_ptr<AttentionBackend> make_attention(const std::string& kind, const Representation& rep, int heads) {
  if (kind == "rotary") return RotaryAttention(rep, heads).ptr();
  if (kind == "alibi") return ALiBiAttention(ALiBiAttentionOptions(rep, heads).learnable_slopes(true)).ptr();
  return eMultiheadAttention(rep, heads).ptr();
}

class IsotypicLayerTest : public ::testing::TestWithParam<std::tuple<const char*, torch::Dtype>> {};

TEST_P(IsotypicLayerTest, EncoderLayersAgreeWithDense) {
  const auto [spec, dtype] = GetParam();
  const symm::test::ThreadsForScope threads(2);  // eval splits the heads (stored transposed here) between threads
  const auto g = make_group(spec);
  const bool big = g->order() > 16;
  const auto rep = Representation::regular(g).copies(big ? 2 : 4);
  const int64_t batch = 2, seq = big ? 3 : 4;
  struct Config { std::string attention, norm; bool norm_first; };
  const std::vector<Config> configs = {{"mha", "rmsnorm", true}, {"mha", "layernorm", false}, {"rotary", "layernorm", true},
                                       {"alibi", "rmsnorm", false}};
  const auto x = torch::randn({batch, seq, rep.size()}, torch::dtype(dtype));
  const auto padding = torch::zeros({batch, seq}, torch::kBool).index_put_({0, seq - 1}, true);
  for (const auto& c : configs) {
    torch::manual_seed(11);
    // Rotary pairs regular copies inside a head: one head when there are only two copies.
    const int heads = big && c.attention == "rotary" ? 1 : 2;
    eTransformerEncoderLayer layer(eTransformerEncoderLayerOptions(rep, make_attention(c.attention, rep, heads))
                                       .dim_feedforward(2 * g->order())
                                       .dropout(0.0)
                                       .norm_module(c.norm)
                                       .norm_first(c.norm_first));
    layer->to(dtype);
    {  // non-trivial norm affines, so that their folding into the projections is exercised
      torch::NoGradGuard no_grad;
      for (auto& p : layer->named_parameters())
        if (p.key().find("scale_dof") != std::string::npos) p.value().uniform_(0.5, 1.5);
    }
    const auto what = std::string(spec) + " " + c.attention + " " + c.norm + (c.norm_first ? " pre" : " post");
    expect_paths_agree<eTransformerEncoderLayer>(
        layer, [&](eTransformerEncoderLayer& l) { return l->forward(x, {}, padding, /*is_causal=*/true); }, dtype, what);
    set_execution(*layer, Execution::isotypic);
    layer->eval();
    const auto err = equivariance_error([&](const torch::Tensor& t) { return layer->forward(t, {}, padding, true); }, rep,
                                        rep, x, elements_to_check(*g, 12));
    EXPECT_LT(err.max_relative, symm::test::tolerance(dtype)) << what;
  }
}

TEST_P(IsotypicLayerTest, DecoderLayerAndEncoderStackAgreeWithDense) {
  const auto [spec, dtype] = GetParam();
  const auto g = make_group(spec);
  const auto rep = Representation::regular(g).copies(2);
  const auto tgt = torch::randn({2, 3, rep.size()}, torch::dtype(dtype));
  const auto memory = torch::randn({2, 4, rep.size()}, torch::dtype(dtype));
  torch::manual_seed(12);
  eTransformerDecoderLayer dec(eTransformerDecoderLayerOptions(rep, eMultiheadAttention(rep, 2).ptr(), eMultiheadAttention(rep, 2).ptr())
                                   .dim_feedforward(2 * g->order())
                                   .dropout(0.0));
  dec->to(dtype);
  const auto memory_mask = torch::zeros({3, 4}, torch::kBool).index_put_({0, 3}, true);
  expect_paths_agree<eTransformerDecoderLayer>(
      dec, [&](eTransformerDecoderLayer& d) { return d->forward(tgt, memory, {}, memory_mask, {}, {}, true); }, dtype,
      std::string(spec) + " decoder");
  eTransformerEncoder enc(eTransformerEncoderLayer(eTransformerEncoderLayerOptions(rep, eMultiheadAttention(rep, 2).ptr())
                                                       .dim_feedforward(g->order())
                                                       .dropout(0.0)),
                          2);
  enc->to(dtype);
  expect_paths_agree<eTransformerEncoder>(enc, [&](eTransformerEncoder& e) { return e->forward(tgt); }, dtype,
                                          std::string(spec) + " encoder stack");
}

INSTANTIATE_TEST_SUITE_P(Groups, IsotypicLayerTest,
                         ::testing::Combine(::testing::Values("C2", "C8", "D8", "Q8", "O", "I", "C2xD3"),
                                            ::testing::Values(torch::kFloat32, torch::kFloat64)),
                         symm::test::GroupAndDtypeName());

TEST(Isotypic, EvalOperandsFollowTheCoefficients) {
  // Eval forwards reuse the block weights; a changed coefficient, bias or folded affine must show at once.
  const auto rep = Representation::regular(make_group("D8")).copies(2);
  torch::manual_seed(5);
  eLinear lin(eLinearOptions(rep, rep).execution(Execution::isotypic));
  eAffine affine{eAffineOptions(rep)};
  const auto x = torch::randn({4, rep.size()});
  lin->eval();
  auto expect_dense = [&](const std::string& what) {
    const auto y = lin->forward(x), y_after = lin->forward_after(x, *affine);
    lin->options.execution(Execution::dense);
    EXPECT_LT(relative(y, lin->forward(x)), 1e-5) << what;
    EXPECT_LT(relative(y_after, lin->forward(affine->forward(x))), 1e-5) << what << ": forward_after";
    lin->options.execution(Execution::isotypic);
  };
  expect_dense("first call");
  torch::NoGradGuard no_grad;
  for (auto* p : {&lin->weight_dof, &lin->bias_dof, &affine->scale_dof, &affine->bias_dof}) {
    p->uniform_(0.5, 1.5);
    expect_dense("after a change in place");
  }
}

TEST(Isotypic, CheckpointsLoadAcrossPaths) {
  const auto rep = Representation::regular(make_group("D8")).copies(2);
  auto make = [&](Execution e) {
    eTransformerEncoderLayer layer(eTransformerEncoderLayerOptions(rep, eMultiheadAttention(rep, 2).ptr()).dim_feedforward(32).dropout(0.0));
    set_execution(*layer, e);
    layer->eval();
    return layer;
  };
  torch::manual_seed(21);
  auto iso = make(Execution::isotypic);
  torch::manual_seed(22);
  auto dense = make(Execution::dense);
  const auto x = torch::randn({2, 3, rep.size()});
  const std::string path = ::testing::TempDir() + "isotypic.symm";
  symm::save(iso, path);
  symm::load(dense, path);
  EXPECT_LT(relative(dense->forward(x), iso->forward(x)), 1e-5);
  symm::save(dense, path);
  torch::manual_seed(23);
  auto iso2 = make(Execution::isotypic);
  symm::load(iso2, path);
  EXPECT_LT(relative(iso2->forward(x), dense->forward(x)), 1e-5);
}

// Not isotypic but a neighbour of it: the decoder folds norm1's affine into the self-attention's in_proj and
// norm3's into linear1; the result must equal the plain composition of the blocks.
TEST(DecoderLayer, FoldedPreNormAffinesEqualTheComposition) {
  const auto rep = Representation::regular(make_group("D4")).copies(2);
  torch::manual_seed(31);
  eTransformerDecoderLayer dec(eTransformerDecoderLayerOptions(rep, eMultiheadAttention(rep, 2).ptr(), eMultiheadAttention(rep, 2).ptr())
                                   .dim_feedforward(16)
                                   .dropout(0.0)
                                   .norm_module("layernorm"));
  dec->to(torch::kFloat64);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : dec->named_parameters())
      if (p.key().find("scale_dof") != std::string::npos || p.key().find("norm") != std::string::npos) p.value().uniform_(0.5, 1.5);
  }
  const auto tgt = torch::randn({2, 3, rep.size()}, torch::kFloat64);
  const auto memory = torch::randn({2, 4, rep.size()}, torch::kFloat64);
  auto attend = [](AttentionBackend& attn, const torch::Tensor& q, const torch::Tensor& kv) {
    AttentionCall call;
    call.query = q;
    call.key = call.value = kv;
    return std::get<0>(attn.attend(call));
  };
  for (bool train : {true, false}) {
    dec->train(train);
    const auto n1 = dec->norm1.forward(tgt);
    const auto x1 = tgt + attend(*dec->self_attn, n1, n1);
    const auto x2 = x1 + attend(*dec->cross_attn, dec->norm2.forward(x1), memory);
    const auto want = x2 + dec->feedforward->forward(dec->norm3.forward(x2));
    EXPECT_LT(relative(dec->forward(tgt, memory), want), 1e-12) << "train=" << train;
  }
}

TEST(Isotypic, ExecutionNamesParse) {
  for (auto e : {Execution::automatic, Execution::dense, Execution::isotypic}) EXPECT_EQ(parse_execution(to_string(e)), e);
  symm::test::expect_error([] { parse_execution("sparse"); }, {"sparse", "automatic, dense or isotypic"});
}

}  // namespace
