// Every module on every device: the CPU always, CUDA when a GPU is present (the CUDA cases skip otherwise).
// Equivariance, agreement with the CPU, gradients, train against eval, checkpoints across devices, the
// fused attention kernel against the explicit path, and mixed precision.
#include <cmath>
#include <functional>

#include "symm/group/named.h"
#include "symm/nn/checkpoint.h"
#include "symm/nn/decoder_layer.h"
#include "symm/nn/encoder.h"
#include "symm/nn/equivariance.h"
#include "symm/nn/mixed_precision.h"
#include "symm/nn/normalization.h"
#include "symm/nn/positional.h"
#include "test_util.h"

namespace {

using namespace symm::nn;
using symm::group::make_group;
using symm::test::relative;

// Relative equivariance tolerance of one bfloat16 forward: its unit roundoff is 2^-8 ≈ 3.9e-3, and a layer
// compounds a few dozen roundings, each relative to values no larger than the output's maximum.
constexpr double kBFloat16Tolerance = 5e-2;

/// A module and its forward on (B, T, D) tokens, equivariant from `in` to `out`.
struct Case {
  std::string name;
  std::shared_ptr<torch::nn::Module> module;
  std::function<torch::Tensor(const torch::Tensor&)> forward;
  Representation in, out;
};

std::shared_ptr<AttentionBackend> attention(const std::string& kind, const Representation& rep, int64_t heads) {
  if (kind == "rotary") return RotaryAttention(rep, heads).ptr();
  if (kind == "alibi") return ALiBiAttention(rep, heads).ptr();
  return eMultiheadAttention(rep, heads).ptr();
}

eTransformerEncoderLayer encoder_layer(const Representation& rep, const std::string& attn, const std::string& norm,
                                       bool norm_first) {
  return eTransformerEncoderLayer(eTransformerEncoderLayerOptions(rep, attention(attn, rep, 2))
                                      .dim_feedforward(2 * rep.size())
                                      .dropout(0.0)
                                      .norm_module(norm)
                                      .norm_first(norm_first));
}

/// One of each module, built with a fixed seed so that two calls give the same parameters.
std::vector<Case> cases() {
  const auto g = make_group("D4");
  const auto rep = symm::test::scrambled(Representation::regular(g).copies(4), 3);
  const auto wide = Representation::regular(g).copies(6);
  std::vector<Case> out;
  torch::manual_seed(11);
  {
    eLinear m(rep, wide);
    out.push_back({"eLinear", m.ptr(), [p = m.ptr()](const torch::Tensor& x) { return p->forward(x); }, rep, wide});
  }
  {
    eRMSNorm m(rep);
    out.push_back({"eRMSNorm", m.ptr(), [p = m.ptr()](const torch::Tensor& x) { return p->forward(x); }, rep, rep});
  }
  {
    eLayerNorm m(rep);
    out.push_back({"eLayerNorm", m.ptr(), [p = m.ptr()](const torch::Tensor& x) { return p->forward(x); }, rep, rep});
  }
  for (const std::string kind : {"mha", "rotary", "alibi"}) {
    auto a = attention(kind, rep, 2);
    out.push_back({"attention_" + kind, a->as_module(),
                   [a](const torch::Tensor& x) {
                     auto call = AttentionCall();
                     call.query = call.key = call.value = x;
                     call.is_causal = true;
                     return std::get<0>(a->attend(call));
                   },
                   rep, rep});
  }
  {
    auto m = encoder_layer(rep, "mha", "rmsnorm", true);
    out.push_back({"encoder_layer_rmsnorm_prenorm", m.ptr(), [p = m.ptr()](const torch::Tensor& x) { return p->forward(x, {}, {}, true); }, rep, rep});
  }
  {
    auto m = encoder_layer(rep, "rotary", "layernorm", false);
    out.push_back({"encoder_layer_layernorm_postnorm", m.ptr(), [p = m.ptr()](const torch::Tensor& x) { return p->forward(x); }, rep, rep});
  }
  {
    eTransformerEncoder m(encoder_layer(rep, "alibi", "rmsnorm", true), 2);
    out.push_back({"encoder", m.ptr(), [p = m.ptr()](const torch::Tensor& x) { return p->forward(x, {}, {}, true); }, rep, rep});
  }
  {
    eTransformerDecoderLayer m(eTransformerDecoderLayerOptions(rep, attention("mha", rep, 2), attention("mha", rep, 2))
                                   .dim_feedforward(2 * rep.size())
                                   .dropout(0.0));
    // The memory is a function of the input that commutes with the group (time reversed, scaled), so the
    // whole map stays equivariant.
    out.push_back({"decoder_layer", m.ptr(),
                   [p = m.ptr()](const torch::Tensor& x) { return p->forward(x, 0.5 * x.flip(1), {}, {}, {}, {}, true); }, rep, rep});
  }
  return out;
}

class OnDevice : public ::testing::TestWithParam<torch::DeviceType> {
 protected:
  void SetUp() override {
    if (GetParam() == torch::kCUDA && !torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  }
  torch::Device device() const { return torch::Device(GetParam()); }
  torch::Tensor input(const Case& c, torch::Dtype dtype = torch::kFloat32) const {
    torch::manual_seed(3);
    return torch::randn({2, 5, c.in.size()}, torch::kFloat64).to(device(), dtype);
  }
};

TEST_P(OnDevice, EquivariantInFloat32AndFloat64) {
  for (auto& c : cases()) {
    c.module->eval();
    for (const auto dtype : {torch::kFloat32, torch::kFloat64}) {
      c.module->to(device(), dtype);
      const auto elements = elements_to_check(*c.in.group());
      const auto err = equivariance_error(c.forward, c.in, c.out, input(c, dtype), elements);
      EXPECT_LT(err.max_relative, symm::test::tolerance(dtype)) << c.name << " " << dtype << " worst element " << err.worst_element;
    }
  }
}

TEST_P(OnDevice, AgreesWithTheCpuInTrainingAndEval) {
  auto reference = cases();
  auto moved = cases();
  for (size_t i = 0; i < moved.size(); ++i) {
    moved[i].module->to(device());
    for (bool train : {true, false}) {
      reference[i].module->train(train);
      moved[i].module->train(train);
      torch::NoGradGuard no_grad;
      const auto want = reference[i].forward(input(reference[i]).cpu());
      const auto got = moved[i].forward(input(moved[i]));
      EXPECT_EQ(got.device(), device()) << moved[i].name;
      EXPECT_LT(relative(got, want), 1e-5) << moved[i].name << " train=" << train;
    }
  }
}

TEST_P(OnDevice, TrainingAndEvalAgreeWithoutDropout) {
  // Training synthesises the dense maps from the coefficients every call; eval reuses cached ones.
  for (auto& c : cases()) {
    c.module->to(device());
    c.module->train();
    const auto x = input(c);
    const auto train_out = c.forward(x).detach();
    c.module->eval();
    EXPECT_LT(relative(c.forward(x), train_out), 1e-5) << c.name;
  }
}

TEST_P(OnDevice, GradientsMatchFiniteDifferences) {
  // Along a random direction v of parameter space, (L(θ + εv) − L(θ − εv)) / 2ε against ⟨∇L, v⟩, in float64.
  for (auto& c : cases()) {
    c.module->to(device(), torch::kFloat64);
    c.module->train();
    const auto x = input(c, torch::kFloat64);
    const auto loss = [&] { return c.forward(x).sin().sum(); };
    c.module->zero_grad();
    loss().backward();
    std::vector<torch::Tensor> direction;
    double directional = 0;
    for (const auto& p : c.module->parameters()) {
      ASSERT_TRUE(p.grad().defined()) << c.name;
      EXPECT_EQ(p.grad().device(), device()) << c.name;
      direction.push_back(torch::randn_like(p));
      directional += (p.grad() * direction.back()).sum().item<double>();
    }
    const double eps = 1e-6;
    auto shift = [&](double by) {
      torch::NoGradGuard no_grad;
      size_t i = 0;
      for (auto& p : c.module->parameters()) p.add_(direction[i++], by);
    };
    shift(eps);
    const double up = loss().item<double>();
    shift(-2 * eps);
    const double down = loss().item<double>();
    shift(eps);
    const double numeric = (up - down) / (2 * eps);
    EXPECT_NEAR(numeric, directional, 1e-6 * std::max(1.0, std::abs(directional))) << c.name;
  }
}

TEST_P(OnDevice, CheckpointsLoadOnTheOtherDevice) {
  auto written = cases();
  for (size_t i = 0; i < written.size(); ++i) {
    auto& a = written[i];
    a.module->to(device());
    a.module->eval();
    {  // non-trivial norm scales, so affine maps count
      torch::NoGradGuard no_grad;
      for (auto& p : a.module->named_parameters())
        if (p.key().find("scale_dof") != std::string::npos) p.value().uniform_(0.5, 1.5);
    }
    const std::string path = ::testing::TempDir() + "devices_" + a.name + ".symm";
    symm::save(a.module, path);
    auto fresh = cases()[i];
    {
      torch::NoGradGuard no_grad;
      for (auto& p : fresh.module->parameters()) p.add_(torch::randn_like(p));
    }
    fresh.module->eval();
    const auto want = a.forward(input(a)).cpu();
    symm::load(fresh.module, path);
    EXPECT_LT(relative(fresh.forward(input(a).cpu()), want), 1e-5) << a.name << " written on " << device() << ", read on cpu";
    // And back: a checkpoint written on the CPU loads into a module on this device.
    symm::save(fresh.module, path);
    auto again = cases()[i];
    again.module->to(device());
    again.module->eval();
    symm::load(again.module, path);
    EXPECT_LT(relative(again.forward(input(a)), want), 1e-5) << a.name << " written on cpu, read on " << device();
  }
}

TEST_P(OnDevice, InputOnAnotherDeviceOrDtypeIsRefusedNamingBoth) {
  const auto rep = Representation::regular(make_group("C4")).copies(2);
  eLinear lin(rep, rep);
  lin->to(device());
  const auto x = torch::randn({3, rep.size()}, torch::TensorOptions().device(device()));
  symm::test::expect_error([&] { lin->forward(x.to(torch::kFloat64)); }, {"eLinear", "Double", "Float"});
  eMultiheadAttention mha(rep, 2);
  mha->to(device());
  const auto seq = torch::randn({1, 3, rep.size()}, torch::TensorOptions().device(device()).dtype(torch::kFloat64));
  symm::test::expect_error([&] { mha->forward(seq, seq, seq); }, {"eMultiheadAttention", "query", "Double", "Float"});
  if (device().is_cuda()) {
    symm::test::expect_error([&] { lin->forward(x.cpu()); }, {"eLinear", "cpu", "cuda"});
    symm::test::expect_error([&] { mha->forward(seq.cpu().to(torch::kFloat32), seq.cpu().to(torch::kFloat32), seq.cpu().to(torch::kFloat32)); },
                             {"eMultiheadAttention", "cpu", "cuda"});
  }
}

// The fused kernel (LibTorch >= 2, need_weights off) against the explicit softmax path (need_weights on),
// for every kind of mask. With LibTorch 1.13 both take the explicit path.
TEST_P(OnDevice, FusedAttentionEqualsTheExplicitPath) {
  const auto rep = symm::test::scrambled(Representation::regular(make_group("C3")).copies(4), 5);
  const int64_t b = 2, t = 6, s = 7;
  torch::manual_seed(8);
  const auto opts = torch::TensorOptions().device(device());
  const auto q = torch::randn({b, t, rep.size()}, opts), kv = torch::randn({b, s, rep.size()}, opts);
  auto bool_mask = torch::rand({t, s}, opts) < 0.3;
  bool_mask.select(1, 0).fill_(false);  // every query keeps a key
  const auto float_mask = torch::randn({t, s}, opts);
  auto padding = torch::zeros({b, s}, opts.dtype(torch::kBool));
  padding.select(1, 2).fill_(true);
  const auto per_head_mask = torch::randn({b * 2, t, t}, opts);
  struct MaskCase {
    std::string name;
    torch::Tensor attn_mask, key_padding_mask;
    bool is_causal, self;
  };
  const std::vector<MaskCase> masks = {
      {"none", {}, {}, false, false},          {"bool attn_mask", bool_mask, {}, false, false},
      {"float attn_mask", float_mask, {}, false, false}, {"bool padding", {}, padding, false, false},
      {"float padding", {}, padding.to(torch::kFloat32) * -1e4, false, false},
      {"is_causal", {}, {}, true, true},         {"is_causal + padding", {}, padding.narrow(1, 0, t), true, true},
      {"per-head float mask", per_head_mask, {}, false, true}};
  for (const std::string kind : {"mha", "rotary", "alibi"}) {
    auto a = attention(kind, rep, 2);
    a->as_module()->to(device());
    a->as_module()->eval();
    for (const auto& m : masks) {
      AttentionCall call;
      call.query = q;
      call.key = call.value = m.self ? q : kv;
      call.attn_mask = m.attn_mask;
      call.key_padding_mask = m.key_padding_mask;
      call.is_causal = m.is_causal;
      torch::NoGradGuard no_grad;
      const auto fused = std::get<0>(a->attend(call));
      call.need_weights = true;
      const auto [explicit_out, weights] = a->attend(call);
      ASSERT_TRUE(weights.defined());
      EXPECT_LT(relative(fused, explicit_out), 1e-5) << kind << " with " << m.name;
    }
  }
}

// Mixed precision: autocast keeps the float32 coefficients (the master copy) and lowers the matmuls.
TEST_P(OnDevice, TrainsUnderAutocastWithFloat32Coefficients) {
  std::vector<torch::Dtype> dtypes = {torch::kBFloat16};
  if (device().is_cuda()) dtypes.push_back(torch::kFloat16);
  for (const auto dtype : dtypes) {
    for (auto& c : cases()) {
      c.module->to(device());
      c.module->train();
      const auto x = input(c);
      const auto full = c.forward(x).detach();
      c.module->zero_grad();
      torch::Tensor y;
      {
        AutocastGuard autocast(device().type(), dtype);
        y = c.forward(x);
      }
      EXPECT_LT(relative(y, full), kBFloat16Tolerance) << c.name << " " << dtype;
      y.to(torch::kFloat32).square().mean().backward();
      for (const auto& p : c.module->parameters()) {
        EXPECT_EQ(p.scalar_type(), torch::kFloat32) << c.name;
        ASSERT_TRUE(p.grad().defined()) << c.name;
        EXPECT_EQ(p.grad().scalar_type(), torch::kFloat32) << c.name;
        EXPECT_TRUE(torch::isfinite(p.grad()).all().item<bool>()) << c.name << " " << dtype;
      }
    }
  }
  EXPECT_FALSE(autocast_enabled(device())) << "the guard must restore the state it found";
}

TEST_P(OnDevice, EvaluatesInBFloat16) {
  for (auto& c : cases()) {
    c.module->eval();
    c.module->to(device());
    const auto full = c.forward(input(c)).detach();
    c.module->to(torch::kBFloat16);
    const auto x = input(c, torch::kBFloat16);
    const auto y = c.forward(x);
    EXPECT_EQ(y.scalar_type(), torch::kBFloat16) << c.name;
    EXPECT_LT(relative(y, full), kBFloat16Tolerance) << c.name;
    const auto err = equivariance_error(c.forward, c.in, c.out, x, elements_to_check(*c.in.group()));
    EXPECT_LT(err.max_relative, kBFloat16Tolerance) << c.name << " worst element " << err.worst_element;
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, OnDevice, ::testing::Values(torch::kCPU, torch::kCUDA),
                         [](const ::testing::TestParamInfo<torch::DeviceType>& info) {
                           return info.param == torch::kCPU ? std::string("cpu") : std::string("cuda");
                         });

TEST(MixedPrecision, ParsesDtypesAndRefusesOthers) {
  EXPECT_EQ(parse_dtype("--amp", "bf16"), torch::kBFloat16);
  EXPECT_EQ(parse_dtype("--dtype", "float16"), torch::kFloat16);
  symm::test::expect_error([] { parse_dtype("--amp", "int8"); }, {"--amp", "bfloat16", "int8"});
  symm::test::expect_error([] { AutocastGuard guard(torch::kCPU, torch::kFloat64); }, {"autocast", "bfloat16"});
}

}  // namespace
