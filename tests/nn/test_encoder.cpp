// eTransformerEncoderLayer, eTransformerEncoder, eTransformerDecoderLayer and checkpoints.
#include <algorithm>
#include <fstream>

#include <gtest/gtest.h>

#include "symm/group/named.h"
#include "symm/nn/checkpoint.h"
#include "symm/nn/decoder_layer.h"
#include "symm/nn/encoder.h"
#include "symm/nn/equivariance.h"
#include "symm/nn/normalization.h"
#include "symm/nn/positional.h"
#include "test_util.h"

using namespace symm::nn;
using symm::group::make_group;

namespace {

eTransformerEncoderLayer make_layer(const Representation& rep, int heads, int64_t ff, const std::string& norm = "rmsnorm",
                                    bool norm_first = true) {
  return eTransformerEncoderLayer(eTransformerEncoderLayerOptions(rep, eMultiheadAttention(rep, heads).ptr())
                                      .dim_feedforward(ff)
                                      .dropout(0.0)
                                      .norm_module(norm)
                                      .norm_first(norm_first));
}

double layer_error(const std::function<torch::Tensor(const torch::Tensor&)>& f, const Representation& rep, const torch::Tensor& x) {
  return equivariance_error(f, rep, rep, x, elements_to_check(*rep.group())).max_relative;
}

TEST(EncoderLayer, DefaultsAreTheSeeds) {
  const auto rep = Representation::regular(make_group("C4")).copies(2);
  const eTransformerEncoderLayerOptions o(rep, eMultiheadAttention(rep, 1).ptr());
  EXPECT_EQ(o.dim_feedforward(), 2048);
  EXPECT_DOUBLE_EQ(o.dropout(), 0.1);
  EXPECT_EQ(o.activation().name(), "gelu");
  EXPECT_DOUBLE_EQ(o.layer_norm_eps(), 1e-5);
  EXPECT_TRUE(o.norm_first());
  EXPECT_EQ(o.norm_module(), "rmsnorm");
  EXPECT_TRUE(o.bias());
  EXPECT_FALSE(o.device().has_value());
  EXPECT_FALSE(o.dtype().has_value());
  EXPECT_EQ(o.init_scheme(), "xavier_uniform");
  eTransformerEncoderLayer layer(o);
  EXPECT_EQ(layer->feedforward->hidden_size(), 2048);  // 512 copies of C4
}

class EncoderLayerTest : public ::testing::TestWithParam<std::tuple<const char*, std::string, bool, torch::Dtype>> {};

TEST_P(EncoderLayerTest, EquivariantInEveryConfiguration) {
  const auto [spec, norm, norm_first, dtype] = GetParam();
  const auto g = make_group(spec);
  const auto rep = symm::test::scrambled(Representation::regular(g).copies(2), 3);
  torch::manual_seed(1);
  auto layer = make_layer(rep, 2, 3 * g->order(), norm, norm_first);
  layer->to(dtype);
  layer->eval();
  const auto x = torch::randn({2, 4, rep.size()}, torch::dtype(dtype));
  EXPECT_LT(layer_error([&](const torch::Tensor& t) { return layer->forward(t); }, rep, x), symm::test::tolerance(dtype));
  EXPECT_LT(layer_error([&](const torch::Tensor& t) { return layer->forward(t, {}, {}, true); }, rep, x), symm::test::tolerance(dtype));
  const auto padding = torch::tensor({{false, false, true, false}, {false, true, false, false}});
  EXPECT_LT(layer_error([&](const torch::Tensor& t) { return layer->forward(t, {}, padding); }, rep, x), symm::test::tolerance(dtype));
  const auto report = layer->check_equivariance(2, 3, 20, 1e-4, 1e-4);
  EXPECT_LT(report.layer, symm::test::tolerance(dtype));
}

INSTANTIATE_TEST_SUITE_P(Groups, EncoderLayerTest,
                         ::testing::Combine(::testing::Values("C5", "D8", "I", "Q8", "C2xD3"), ::testing::Values("rmsnorm", "layernorm"),
                                            ::testing::Values(true, false), ::testing::Values(torch::kFloat32, torch::kFloat64)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param)) + "_" + std::get<1>(info.param) +
                                  (std::get<2>(info.param) ? "_pre" : "_post") +
                                  (std::get<3>(info.param) == torch::kFloat32 ? "_f32" : "_f64");
                         });

TEST(EncoderLayer, CheckEquivarianceCatchesABrokenActivation) {
  const auto rep = Representation::regular(make_group("D4")).copies(2);
  eTransformerEncoderLayer layer(eTransformerEncoderLayerOptions(rep, eMultiheadAttention(rep, 2).ptr())
                                     .dim_feedforward(32)
                                     // Mixing channels is not pointwise: it breaks equivariance.
                                     .activation(Activation([](const torch::Tensor& x) { return torch::relu(x.roll(1, -1)); })));
  symm::test::expect_error([&] { layer->check_equivariance(); }, {"check_equivariance", "feed-forward", "not equivariant"});
}

TEST(EncoderLayer, FeedForwardRoundsUpToRegularCopiesAndTakesAnyActivation) {
  const auto g = make_group("D3");
  const auto rep = Representation::regular(g).copies(2);
  for (const auto& act : {Activation::relu(), Activation::gelu_tanh(), Activation::silu(), Activation(torch::nn::GELU())}) {
    eTransformerEncoderLayer layer(
        eTransformerEncoderLayerOptions(rep, eMultiheadAttention(rep, 1).ptr()).dim_feedforward(13).activation(act).dropout(0));
    EXPECT_EQ(layer->feedforward->hidden_size(), 18);
    layer->eval();
    EXPECT_LT(layer_error([&](const torch::Tensor& t) { return layer->forward(t); }, rep, torch::randn({2, 3, 12})), 1e-5)
        << act.name();
  }
}

TEST(EncoderLayer, MatchesTorchTransformerEncoderLayerForTheTrivialGroup) {
  const int64_t d = 8, heads = 2, ff = 16;
  const auto rep = Representation::regular(make_group("C1")).copies(d);
  torch::manual_seed(3);
  torch::nn::TransformerEncoderLayer ref(
      torch::nn::TransformerEncoderLayerOptions(d, heads).dim_feedforward(ff).dropout(0.0).activation(torch::kReLU));
  eTransformerEncoderLayer ours(eTransformerEncoderLayerOptions(rep, eMultiheadAttention(rep, heads).ptr())
                                    .dim_feedforward(ff)
                                    .dropout(0.0)
                                    .activation(Activation::relu())
                                    .norm_module("layernorm")
                                    .norm_first(false));
  auto mha = std::dynamic_pointer_cast<eMultiheadAttentionImpl>(ours->self_attn);
  ASSERT_TRUE(mha);
  mha->in_proj->set_dense(ref->self_attn->in_proj_weight, ref->self_attn->in_proj_bias);
  mha->out_proj->set_dense(ref->self_attn->out_proj->weight, ref->self_attn->out_proj->bias);
  ours->feedforward->linear1->set_dense(ref->linear1->weight, ref->linear1->bias);
  ours->feedforward->linear2->set_dense(ref->linear2->weight, ref->linear2->bias);
  {
    torch::NoGradGuard no_grad;
    auto* n1 = ours->norm1.ptr()->as<eLayerNormImpl>();
    auto* n2 = ours->norm2.ptr()->as<eLayerNormImpl>();
    ASSERT_TRUE(n1 && n2);
    ref->norm1->weight.uniform_(0.5, 1.5);
    ref->norm1->bias.uniform_(-0.5, 0.5);
    n1->affine->set_dense(ref->norm1->weight, ref->norm1->bias);
    n2->affine->set_dense(ref->norm2->weight, ref->norm2->bias);
  }
  const auto x = torch::randn({3, 5, d});  // (B, T, D)
  const auto causal = torch::triu(torch::full({5, 5}, -std::numeric_limits<float>::infinity()), 1);
  for (bool train : {false, true}) {
    ours->train(train);
    ref->train(train);
    const auto want = ref->forward(x.transpose(0, 1)).transpose(0, 1);
    EXPECT_TRUE(torch::allclose(ours->forward(x), want, 1e-5, 1e-5)) << "train=" << train;
    const auto want_causal = ref->forward(x.transpose(0, 1), causal).transpose(0, 1);
    EXPECT_TRUE(torch::allclose(ours->forward(x, causal), want_causal, 1e-5, 1e-5));
    EXPECT_TRUE(torch::allclose(ours->forward(x, {}, {}, true), want_causal, 1e-5, 1e-5));
  }
}

/// The names of the operators a call runs (a thread-local RecordFunction observer).
std::vector<std::string> operators_run(const std::function<void()>& f) {
  static thread_local std::vector<std::string>* names = nullptr;
  std::vector<std::string> seen;
  names = &seen;
  const auto handle = at::addThreadLocalCallback(at::RecordFunctionCallback([](const at::RecordFunction& fn) -> std::unique_ptr<at::ObserverContext> {
    if (names) names->emplace_back(fn.name());
    return nullptr;
  }));
  f();
  at::removeCallback(handle);
  names = nullptr;
  return seen;
}

TEST(EncoderLayer, FusedInferenceEqualsTheOpByOpPath) {
  const auto g = make_group("D4");
  const auto reg = Representation::regular(g).copies(4);
  struct Case {
    Representation rep;
    std::string norm, activation;
    bool bias;
  };
  const std::vector<Case> cases = {{reg, "rmsnorm", "gelu", true},
                                   {reg, "layernorm", "relu", true},
                                   {symm::test::scrambled(reg, 5), "layernorm", "gelu_tanh", false},
                                   {reg, "rmsnorm", "silu", false}};
  for (const auto& c : cases) {
    for (const auto dtype : {torch::kFloat64, torch::kFloat32}) {
      torch::manual_seed(4);
      eTransformerEncoderLayer layer(eTransformerEncoderLayerOptions(c.rep, eMultiheadAttention(eMultiheadAttentionOptions(c.rep, 4).bias(c.bias)).ptr())
                                         .dim_feedforward(64)
                                         .dropout(0.1)
                                         .bias(c.bias)
                                         .activation(Activation::from_name(c.activation))
                                         .norm_module(c.norm)
                                         .execution(Execution::dense));
      layer->to(dtype);
      {
        torch::NoGradGuard no_grad;
        for (auto& p : layer->parameters()) p.add_(torch::randn_like(p).mul_(0.3));  // norm affines away from 1, biases away from 0
      }
      layer->eval();
      const auto x = torch::randn({2, 7, c.rep.size()}, torch::TensorOptions().dtype(dtype));
      const auto reference = layer->forward(x);  // autograd needs the parameters: the op-by-op path
      ASSERT_TRUE(reference.requires_grad());
      torch::Tensor fused;
      const auto ops = operators_run([&] {
        torch::NoGradGuard no_grad;
        fused = layer->forward(x);
      });
      const std::string what = c.rep.name() + " " + c.norm + " " + c.activation + (c.bias ? " bias " : " no bias ") + c10::toString(dtype);
      EXPECT_NE(std::find(ops.begin(), ops.end(), "aten::_native_multi_head_attention"), ops.end()) << what << ": the fused path did not run";
      const double tol = dtype == torch::kFloat64 ? 1e-10 : 1e-5;
      EXPECT_LT((fused - reference).abs().max().item<double>(), tol * (1 + reference.abs().max().item<double>())) << what;
      // Masks and training keep the op-by-op path.
      const auto mask = torch::zeros({7, 7}, x.options());
      torch::NoGradGuard no_grad;
      const auto masked = operators_run([&] { layer->forward(x, mask); });
      EXPECT_EQ(std::find(masked.begin(), masked.end(), "aten::_native_multi_head_attention"), masked.end()) << what;
    }
  }
}

TEST(EncoderLayer, PositionalBackendsReceivePositions) {
  const auto g = make_group("D4");
  const auto rep = symm::test::scrambled(Representation::regular(g).copies(4), 9);
  for (auto attn : std::vector<std::shared_ptr<AttentionBackend>>{RotaryAttention(rep, 2).ptr(), ALiBiAttention(rep, 2).ptr()}) {
    eTransformerEncoderLayer layer(eTransformerEncoderLayerOptions(rep, attn).dim_feedforward(32).dropout(0));
    layer->eval();
    const auto x = torch::randn({2, 5, rep.size()});
    const auto pos = torch::tensor({{0.0, 0.5, 1.5, 4.0, 7.0}, {1.0, 2.0, 3.0, 4.0, 5.0}});
    const auto valid = torch::tensor({{true, true, true, false, true}, {true, true, true, true, true}});
    auto f = [&](const torch::Tensor& t) { return layer->forward(t, {}, {}, false, pos, valid); };
    EXPECT_LT(layer_error(f, rep, x), 1e-5);
    EXPECT_FALSE(torch::allclose(f(x), layer->forward(x, {}, {}, false, pos * 3.0, valid), 1e-4, 1e-4))
        << "positions had no effect";
  }
}

TEST(EncoderLayer, BadInputsRaise) {
  const auto g = make_group("C4");
  const auto rep = Representation::regular(g).copies(2);
  const auto other = Representation::regular(g).copies(4);
  symm::test::expect_error([&] { make_layer(rep, 2, 8, "batchnorm"); }, {"norm_module", "batchnorm"});
  symm::test::expect_error([&] { eTransformerEncoderLayer(rep, eMultiheadAttention(other, 2).ptr()); },
                           {"eTransformerEncoderLayer", "self_attn", "size 16", "size 8"});
  auto layer = make_layer(rep, 2, 8);
  symm::test::expect_error([&] { layer->forward(torch::randn({2, 3, 9})); }, {"eTransformerEncoderLayer", "last dimension 8"});
  symm::test::expect_error([&] { layer->forward(torch::randn({3, 8})); }, {"eTransformerEncoderLayer", "(B, T, 8)"});
}

TEST(Encoder, StackKeepsEquivarianceAtDepth) {
  const auto g = make_group("D8");
  const auto rep = Representation::regular(g).copies(2);
  for (int depth : {1, 4, 12}) {
    torch::manual_seed(depth);
    eTransformerEncoder enc(make_layer(rep, 2, 32), depth);
    enc->eval();
    EXPECT_EQ(enc->layers->size(), static_cast<size_t>(depth));
    EXPECT_LT(layer_error([&](const torch::Tensor& t) { return enc->forward(t, {}, {}, true); }, rep, torch::randn({2, 4, 32})), 1e-5)
        << "depth " << depth;
  }
}

TEST(Encoder, LayersAreIndependentClones) {
  const auto rep = Representation::regular(make_group("C3")).copies(2);
  auto proto = make_layer(rep, 1, 6);
  eTransformerEncoder enc(proto, 2);
  auto l0 = enc->layers[0]->as<eTransformerEncoderLayerImpl>();
  auto l1 = enc->layers[1]->as<eTransformerEncoderLayerImpl>();
  EXPECT_NE(l0->self_attn.get(), l1->self_attn.get());
  EXPECT_NE(l0->self_attn.get(), proto->self_attn.get());
  const auto p0 = l0->parameters(), p1 = l1->parameters();
  ASSERT_EQ(p0.size(), p1.size());
  EXPECT_TRUE(torch::equal(p0[0], p1[0]));  // cloned values...
  torch::NoGradGuard no_grad;
  p0[0].add_(1.0);
  EXPECT_FALSE(torch::equal(p0[0], p1[0]));  // ...in separate storage
}

// 150 steps at a learning rate of 3e-3 take the stack as far from its initialisation as 500 at 1e-3 did, in a
// third of the time (it ran 390 s against the wheel's LibTorch on CI's two cores).
TEST(Encoder, TwelveLayersStayFiniteThrough150AdamSteps) {
  const auto rep = Representation::regular(make_group("C2")).copies(4);
  for (const std::string norm : {"rmsnorm", "layernorm"}) {
    torch::manual_seed(0);
    eTransformerEncoder enc(eTransformerEncoderOptions(
        eTransformerEncoderLayer(eTransformerEncoderLayerOptions(rep, eMultiheadAttention(rep, 2).ptr())
                                     .dim_feedforward(16)
                                     .dropout(0.1)
                                     .norm_module(norm)),
        12).norm(make_norm(norm, rep, 1e-5, true)));
    torch::optim::Adam opt(enc->parameters(), torch::optim::AdamOptions(3e-3));
    const auto x = torch::randn({4, 6, rep.size()});
    const auto y = torch::randn({4, 6, rep.size()});
    double first = 0, last = 0;
    for (int step = 0; step < 150; ++step) {
      opt.zero_grad();
      auto loss = (enc->forward(x, {}, {}, true) - y).pow(2).mean();
      loss.backward();
      opt.step();
      last = loss.item<double>();
      if (step == 0) first = last;
      ASSERT_TRUE(std::isfinite(last)) << norm << " step " << step;
    }
    for (const auto& p : enc->parameters()) ASSERT_TRUE(torch::isfinite(p).all().item<bool>()) << norm;
    EXPECT_LT(last, 0.5 * first) << norm << ": the stack does not train";
    enc->eval();
    EXPECT_LT(layer_error([&](const torch::Tensor& t) { return enc->forward(t); }, rep, x), 1e-5) << norm;
  }
}

TEST(DecoderLayer, EquivariantInTargetAndMemory) {
  const auto g = make_group("Q8");
  const auto rep = symm::test::scrambled(Representation::regular(g).copies(2), 4);
  eTransformerDecoderLayer dec(eTransformerDecoderLayerOptions(rep, eMultiheadAttention(rep, 2).ptr(), eMultiheadAttention(rep, 2).ptr())
                                   .dim_feedforward(32)
                                   .dropout(0));
  dec->eval();
  const auto tgt = torch::randn({2, 3, rep.size()}, torch::kFloat64);
  const auto memory = torch::randn({2, 5, rep.size()}, torch::kFloat64);
  dec->to(torch::kFloat64);
  const auto y = dec->forward(tgt, memory, {}, {}, {}, {}, true);
  double err = 0;
  for (int e = 0; e < g->order(); ++e) {
    const auto ye = dec->forward(act(rep, e, tgt), act(rep, e, memory), {}, {}, {}, {}, true);
    err = std::max(err, (ye - act(rep, e, y)).abs().max().item<double>());
  }
  EXPECT_LT(err / y.abs().max().item<double>(), 1e-10);
  symm::test::expect_error([&] { dec->forward(tgt, memory.narrow(0, 0, 1)); }, {"eTransformerDecoderLayer", "same B"});
}

TEST(Encoder, RunsOnCudaWhenPresent) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const auto g = make_group("D8");
  const auto rep = symm::test::scrambled(Representation::regular(g).copies(4), 12);
  for (const std::string norm : {"rmsnorm", "layernorm"}) {
    eTransformerEncoder enc(make_layer(rep, 2, 64, norm), 2);
    const auto x = torch::randn({2, 5, rep.size()});
    for (bool train : {true, false}) {
      enc->train(train);
      enc->to(torch::kCPU);
      const auto want = enc->forward(x, {}, {}, true);
      enc->to(torch::kCUDA);
      const auto xc = x.to(torch::kCUDA);
      EXPECT_TRUE(torch::allclose(enc->forward(xc, {}, {}, true).cpu(), want, 1e-4, 1e-5)) << norm << " train=" << train;
      if (!train) {
        const auto err = equivariance_error([&](const torch::Tensor& t) { return enc->forward(t, {}, {}, true); }, rep, rep, xc,
                                            elements_to_check(*g));
        EXPECT_LT(err.max_relative, 1e-5) << norm;
      }
    }
    enc->train();
    enc->forward(x.to(torch::kCUDA)).pow(2).mean().backward();
    for (const auto& p : enc->parameters()) EXPECT_TRUE(p.grad().defined() && p.grad().is_cuda());
  }
}

TEST(Checkpoint, RoundTripGivesIdenticalOutputs) {
  const auto rep = symm::test::scrambled(Representation::regular(make_group("D4")).copies(2), 2);
  torch::manual_seed(5);
  eTransformerEncoder a(make_layer(rep, 2, 16, "layernorm"), 2);
  torch::manual_seed(6);
  eTransformerEncoder b(make_layer(rep, 2, 16, "layernorm"), 2);
  {  // non-trivial norm scales, so the affine maps are exercised
    torch::NoGradGuard no_grad;
    for (auto& p : a->named_parameters())
      if (p.key().find("scale_dof") != std::string::npos) p.value().uniform_(0.5, 1.5);
  }
  const std::string path = ::testing::TempDir() + "encoder.symm";
  symm::save(a, path);
  a->eval();
  b->eval();
  const auto x = torch::randn({2, 3, rep.size()});
  EXPECT_FALSE(torch::allclose(a->forward(x), b->forward(x)));
  symm::load(b, path);
  EXPECT_TRUE(torch::allclose(a->forward(x), b->forward(x), 1e-6, 1e-6));
}

TEST(Checkpoint, RefusesOtherArchitecturesAndDamagedFilesWithoutChangingTheModule) {
  const auto g = make_group("D4");
  const auto rep = Representation::regular(g).copies(2);
  eTransformerEncoder saved(make_layer(rep, 2, 16), 2);
  const std::string path = ::testing::TempDir() + "saved.symm";
  symm::save(saved, path);
  auto expect_refused = [&](eTransformerEncoder target, const std::string& path, std::initializer_list<std::string> words) {
    std::vector<torch::Tensor> before;
    for (const auto& p : target->parameters()) before.push_back(p.clone());
    symm::test::expect_error([&] { symm::load(target, path); }, words);
    const auto after = target->parameters();
    for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(torch::equal(before[i], after[i])) << "parameter " << i << " changed";
  };
  expect_refused(eTransformerEncoder(make_layer(Representation::regular(make_group("C8")).copies(2), 2, 16), 2), path,
                 {"symm::load", "different architecture"});
  expect_refused(eTransformerEncoder(make_layer(Representation::regular(g).copies(4), 2, 16), 2), path, {"different architecture"});
  expect_refused(eTransformerEncoder(make_layer(rep, 2, 16), 3), path, {"different architecture"});
  // A truncated and a corrupted copy.
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string truncated = ::testing::TempDir() + "truncated.symm", corrupted = ::testing::TempDir() + "corrupted.symm";
  std::ofstream(truncated, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  std::string flipped = bytes;
  for (size_t i = bytes.size() / 3; i < bytes.size() / 3 + 64; ++i) flipped[i] = static_cast<char>(~flipped[i]);
  std::ofstream(corrupted, std::ios::binary) << flipped;
  expect_refused(eTransformerEncoder(make_layer(rep, 2, 16), 2), truncated, {"symm::load"});
  expect_refused(eTransformerEncoder(make_layer(rep, 2, 16), 2), corrupted, {"symm::load"});
  expect_refused(eTransformerEncoder(make_layer(rep, 2, 16), 2), ::testing::TempDir() + "missing.symm", {"symm::load"});
}

}  // namespace
