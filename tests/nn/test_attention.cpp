// eMultiheadAttention, RotaryAttention and ALiBiAttention: equivariance (self and cross attention, every mask
// kind, positions), train/eval parity, autograd, save/load, dtype moves, parity with
// torch::nn::MultiheadAttention for the trivial group, the positional properties, and error messages.
#include <gtest/gtest.h>

#include <limits>
#include <optional>

#include "symm/group/named.h"
#include "symm/nn/attention.h"
#include "symm/nn/equivariance.h"
#include "symm/nn/positional.h"
#include "attention_test_util.h"

using namespace symm::nn;
using symm::test::equivariance;
using symm::test::kBatch;
using symm::test::kS;
using symm::test::kT;
using symm::group::make_group;

namespace {

const double kInf = std::numeric_limits<double>::infinity();

std::shared_ptr<AttentionBackend> make_backend(const std::string& kind, const Representation& rep) {
  // m = 2 copies: two heads of one copy for the position-free kinds, one head of two copies for rotary.
  if (kind == "mha") return eMultiheadAttention(rep, 2).ptr();
  if (kind == "rotary") return RotaryAttention(rep, 1).ptr();
  return ALiBiAttention(ALiBiAttentionOptions(rep, 2).learnable_slopes(true)).ptr();
}

/// The calls the equivariance tests run: self-attention with no mask, causal + bool padding, bool (B·H, T, S)
/// and float masks, and cross-attention with float masks and positions.
std::vector<std::pair<std::string, AttentionCall>> calls(const Representation& rep, torch::Dtype dtype, int64_t heads) {
  const auto opts = torch::dtype(dtype);
  const auto x = torch::randn({kBatch, kT, rep.size()}, opts);
  const auto mem = torch::randn({kBatch, kS, rep.size()}, opts);
  std::vector<std::pair<std::string, AttentionCall>> out;
  AttentionCall c;
  c.query = c.key = c.value = x;
  c.need_weights = true;
  out.emplace_back("self", c);
  auto padding = torch::zeros({kBatch, kT}, torch::kBool);
  padding[1].narrow(0, 3, 2).fill_(true);
  c.key_padding_mask = padding;
  c.is_causal = true;
  out.emplace_back("self causal+padding", c);
  c = AttentionCall();
  c.query = c.key = c.value = x;
  c.attn_mask = torch::rand({kBatch * heads, kT, kT}) < 0.3;
  c.attn_mask.select(2, 0).fill_(false);  // key 0 always visible: no fully masked rows
  c.key_padding_mask = torch::randn({kBatch, kT}, opts);
  c.need_weights = true;
  c.average_attn_weights = false;
  // Positions (used by the positional kinds only): float time stamps with an invalid (masked) one.
  c.query_positions = torch::rand({kBatch, kT}, opts) * 10;
  c.query_position_mask = torch::ones({kBatch, kT}, torch::kBool);
  c.query_position_mask[0][3] = false;
  out.emplace_back("self bool attn_mask (B*H,T,S) + float padding + positions", c);
  c = AttentionCall();
  c.query = x;
  c.key = c.value = mem;
  c.attn_mask = torch::randn({kT, kS}, opts);
  c.key_padding_mask = torch::tensor({false, false, true, false}).repeat({kBatch, 1});
  c.query_positions = torch::arange(kT).repeat({kBatch, 1});
  c.key_positions = torch::rand({kBatch, kS}, opts) * 4;
  c.need_weights = true;
  out.emplace_back("cross float attn_mask + padding + positions", c);
  c.value = torch::randn({kBatch, kS, rep.size()}, opts);
  c.is_causal = true;
  out.emplace_back("cross separate key/value, causal", c);
  return out;
}

class AttentionTest : public ::testing::TestWithParam<std::tuple<const char*, torch::Dtype>> {};

TEST_P(AttentionTest, EquivariantForEveryKindMaskAndBasis) {
  const auto [spec, dtype] = GetParam();
  const auto g = make_group(spec);
  const auto regular = Representation::regular(g).copies(2);
  for (const auto& rep : {symm::test::scrambled(regular, 11), regular}) {
    for (const std::string kind : {"mha", "rotary", "alibi"}) {
      torch::manual_seed(1);
      auto attn = make_backend(kind, rep);
      attn->as_module()->to(dtype);
      attn->as_module()->eval();
      for (const auto& [what, call] : calls(rep, dtype, attn->num_heads())) {
        const auto [err, werr] = equivariance(*attn, rep, call);
        EXPECT_LT(err, symm::test::tolerance(dtype)) << spec << " " << rep.name() << " " << kind << ": " << what;
        EXPECT_LT(werr, 10 * symm::test::tolerance(dtype)) << spec << " " << kind << ": weights not invariant, " << what;
      }
    }
  }
}

TEST_P(AttentionTest, TrainEvalParityAndGradients) {
  const auto [spec, dtype] = GetParam();
  const auto g = make_group(spec);
  const auto rep = symm::test::scrambled(Representation::regular(g).copies(2), 3);
  for (const std::string kind : {"mha", "rotary", "alibi"}) {
    torch::manual_seed(2);
    auto attn = make_backend(kind, rep);
    auto module = attn->as_module();
    module->to(dtype);
    const auto call = calls(rep, dtype, attn->num_heads())[1].second;
    module->train();
    const auto [y_train, w_train] = attn->attend(call);
    y_train.pow(2).sum().backward();
    for (const auto& p : module->named_parameters()) {
      if (p.key().find("weight_dof") == std::string::npos && p.key() != "slopes") continue;
      ASSERT_TRUE(p.value().grad().defined()) << kind << ": no gradient reaches " << p.key();
      EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << kind << ": zero gradient at " << p.key();
    }
    module->eval();
    const auto [y_eval, w_eval] = attn->attend(call);
    const double tol = dtype == torch::kFloat64 ? 1e-10 : 1e-5;
    EXPECT_TRUE(torch::allclose(y_train, y_eval, tol, tol)) << spec << " " << kind;
    EXPECT_TRUE(torch::allclose(w_train, w_eval, tol, tol)) << spec << " " << kind;
    if (kind == "alibi") {  // the learnable slopes reach the logits through the mask, in eval too
      module->zero_grad();
      y_eval.pow(2).sum().backward();
      const auto slopes = module->named_parameters()["slopes"].grad();
      ASSERT_TRUE(slopes.defined()) << spec << ": no gradient reaches the slopes in eval";
      EXPECT_GT(slopes.abs().sum().item<double>(), 0.0) << spec;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Groups, AttentionTest,
                         ::testing::Combine(::testing::Values("C5", "D8", "I", "Q8", "C2xD3"),
                                            ::testing::Values(torch::kFloat32, torch::kFloat64)),
                         symm::test::GroupAndDtypeName());

// ---------------------------------------------------------------------------------- parity with torch

/// Our module with torch's dense weights, for the trivial group where every map is equivariant.
eMultiheadAttention copy_of(const torch::nn::MultiheadAttention& ref, int64_t embed, int64_t heads) {
  eMultiheadAttention attn(Representation::regular(make_group("C1")).copies(int(embed)), heads);
  attn->in_proj->set_dense(ref->in_proj_weight, ref->in_proj_bias);
  attn->out_proj->set_dense(ref->out_proj->weight, ref->out_proj->bias);
  return attn;
}

TEST(Attention, ParityWithTorchMultiheadAttentionForTheTrivialGroup) {
  const int64_t e = 8, h = 2;
  torch::manual_seed(3);
  torch::nn::MultiheadAttention ref(torch::nn::MultiheadAttentionOptions(e, h));
  {
    torch::NoGradGuard no_grad;  // torch zeroes the biases: make them count
    ref->in_proj_bias.normal_();
    ref->out_proj->bias.normal_();
  }
  auto attn = copy_of(ref, e, h);
  const auto x = torch::randn({kBatch, kT, e}), mem = torch::randn({kBatch, kS, e});
  const auto sf = [](const torch::Tensor& t) { return t.transpose(0, 1); };  // batch-first ↔ sequence-first
  auto padding = torch::zeros({kBatch, kT}, torch::kBool);
  padding[0][4] = true;
  padding[1][2] = true;
  const auto causal = torch::full({kT, kT}, -kInf).triu(1);
  const auto float_mask = torch::randn({kT, kT});
  auto bool_mask = float_mask > 0.5;
  bool_mask.select(1, 0).fill_(false);  // key 0 always visible: no fully masked rows here

  struct Case {
    std::string name;
    torch::Tensor ours_mask, torch_mask, padding;
    bool causal;
  };
  const std::vector<Case> cases = {{"none", {}, {}, {}, false},
                                    {"causal", {}, causal, {}, true},
                                    {"bool padding", {}, {}, padding, false},
                                    {"float attn_mask", float_mask, float_mask, {}, false},
                                    {"bool attn_mask", bool_mask, torch::zeros({kT, kT}).masked_fill(bool_mask, -kInf), padding, false}};
  // Training runs the heads' products as one bmm; inference on two threads takes the path that splits the heads
  // between threads, run here inline as these shapes are below two tasks' work (the next test splits).
  for (bool inference : {false, true}) {
    attn->train(!inference);
    const symm::test::ThreadsForScope threads(2);
    std::optional<torch::NoGradGuard> no_grad;
    if (inference) no_grad.emplace();
    for (const auto& c : cases) {
      for (bool average : {true, false}) {
        const auto what = c.name + (inference ? " inference" : " training");
        const auto [y, w] = attn->forward(x, x, x, c.padding, true, c.ours_mask, average, c.causal);
        const auto [y_ref, w_ref] = ref->forward(sf(x), sf(x), sf(x), c.padding, true, c.torch_mask, average);
        EXPECT_TRUE(torch::allclose(y, sf(y_ref), 1e-5, 1e-6)) << what << " max diff " << (y - sf(y_ref)).abs().max().item<double>();
        EXPECT_TRUE(torch::allclose(w, w_ref, 1e-5, 1e-6)) << what << " weights";
      }
    }
  }
  attn->train();
  // Cross-attention, with key = value and with three different tensors.
  const auto [y1, w1] = attn->forward(x, mem, mem);
  const auto [y1_ref, w1_ref] = ref->forward(sf(x), sf(mem), sf(mem));
  EXPECT_TRUE(torch::allclose(y1, sf(y1_ref), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(w1, w1_ref, 1e-5, 1e-6));
  const auto val = torch::randn({kBatch, kS, e});
  const auto [y2, w2] = attn->forward(x, mem, val);
  const auto [y2_ref, w2_ref] = ref->forward(sf(x), sf(mem), sf(val));
  EXPECT_TRUE(torch::allclose(y2, sf(y2_ref), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(w2, w2_ref, 1e-5, 1e-6));
  // A query whose keys are all masked: NaN in the same places as torch (documented behaviour).
  auto all = torch::zeros({kBatch, kT}, torch::kBool);
  all[1].fill_(true);
  const auto [y3, w3] = attn->forward(x, x, x, all);
  const auto [y3_ref, w3_ref] = ref->forward(sf(x), sf(x), sf(x), all);
  EXPECT_TRUE(torch::equal(y3.isnan(), sf(y3_ref).isnan()));
  EXPECT_TRUE(y3[1].isnan().all().item<bool>());
  EXPECT_TRUE(torch::allclose(y3[0], sf(y3_ref)[0], 1e-5, 1e-6));
}

TEST(Attention, InferenceSplitsLargeHeadsBetweenThreadsAndMatchesTorch) {
  // 8 (batch, head) pairs of 32×32 queries and keys, 32 features a head: 64k multiply-adds a pair, enough
  // for two tasks (src/nn/parallel_grain.h), where the shapes of the parity test above run as one bmm.
  const int64_t e = 64, h = 2, batch = 4, t = 32;
  torch::manual_seed(8);
  torch::nn::MultiheadAttention ref(torch::nn::MultiheadAttentionOptions(e, h));
  auto attn = copy_of(ref, e, h);
  attn->eval();
  const auto x = torch::randn({batch, t, e});
  const auto sf = [](const torch::Tensor& a) { return a.transpose(0, 1); };
  const auto padding = torch::zeros({batch, t}, torch::kBool).index_put_({1, t - 1}, true);
  const symm::test::ThreadsForScope threads(2);
  torch::NoGradGuard no_grad;
  for (bool causal : {false, true}) {
    const auto mask = causal ? torch::full({t, t}, -kInf).triu(1) : torch::Tensor();
    const auto [y, w] = attn->forward(x, x, x, padding, true, {}, false, causal);
    const auto [y_ref, w_ref] = ref->forward(sf(x), sf(x), sf(x), padding, true, mask, false);
    EXPECT_TRUE(torch::allclose(y, sf(y_ref), 1e-5, 1e-6)) << "causal " << causal << " max diff "
                                                           << (y - sf(y_ref)).abs().max().item<double>();
    EXPECT_TRUE(torch::allclose(w, w_ref, 1e-5, 1e-6)) << "causal " << causal << " weights";
  }
}

// ------------------------------------------------------------------------------------------- positions

TEST(Attention, RotaryDependsOnRelativePositionsOnly) {
  const auto g = make_group("D3");
  const auto rep = symm::test::scrambled(Representation::regular(g).copies(4), 7);
  torch::manual_seed(4);
  RotaryAttention attn(RotaryAttentionOptions(rep, 1).base(100.0));  // 4 copies per head: two pairs
  attn->to(torch::kFloat64);
  attn->eval();
  const auto x = torch::randn({kBatch, kT, rep.size()}, torch::kFloat64);
  const auto mem = torch::randn({kBatch, kS, rep.size()}, torch::kFloat64);
  const auto pq = torch::rand({kBatch, kT}, torch::kFloat64) * 20, pk = torch::rand({kBatch, kS}, torch::kFloat64) * 20;
  for (double shift : {3.0, -17.25, 1000.0}) {
    const auto [y, w] = attn->forward(x, mem, mem, pq, pk);
    const auto [ys, ws] = attn->forward(x, mem, mem, pq + shift, pk + shift);
    EXPECT_TRUE(torch::allclose(y, ys, 1e-9, 1e-9)) << "shift " << shift;
    const auto [yself, wself] = attn->forward(x, x, x, pq);
    const auto [yself_s, wself_s] = attn->forward(x, x, x, pq + shift);
    EXPECT_TRUE(torch::allclose(yself, yself_s, 1e-9, 1e-9)) << "self, shift " << shift;
  }
  // Positions do matter, and default to 0..T-1.
  const auto [y_default, w0] = attn->forward(x, x, x);
  const auto [y_arange, w1] = attn->forward(x, x, x, torch::arange(kT).repeat({kBatch, 1}));
  const auto [y_scaled, w2] = attn->forward(x, x, x, torch::arange(kT).repeat({kBatch, 1}) * 3);
  EXPECT_TRUE(torch::allclose(y_default, y_arange, 1e-12, 1e-12));
  EXPECT_GT((y_default - y_scaled).abs().max().item<double>(), 1e-3);
}

TEST(Attention, InvalidPositionsAreMaskedKeysAndZeroQueries) {
  const auto rep = Representation::regular(make_group("C3")).copies(2);
  torch::manual_seed(5);
  for (const std::string kind : {"rotary", "alibi"}) {
    auto attn = make_backend(kind, rep);
    attn->as_module()->to(torch::kFloat64);
    const auto x = torch::randn({kBatch, kT, rep.size()}, torch::kFloat64);
    auto valid = torch::ones({kBatch, kT}, torch::kBool);
    valid[0][2] = false;
    valid[1][4] = false;
    const auto p = torch::rand({kBatch, kT}, torch::kFloat64) * 9;
    AttentionCall a;
    a.query = a.key = a.value = x;
    a.query_positions = p;
    a.query_position_mask = valid;
    a.need_weights = true;
    AttentionCall b;
    b.query = a.query;
    b.key = x.clone();  // same values, another tensor: cross-attention with explicit positions
    b.value = x;
    b.query_positions = torch::where(valid, p, torch::zeros_like(p));
    b.key_positions = b.query_positions;
    b.key_padding_mask = valid.logical_not();
    b.need_weights = true;
    const auto [ya, wa] = attn->attend(a);
    const auto [yb, wb] = attn->attend(b);
    EXPECT_TRUE(torch::allclose(ya, yb, 1e-10, 1e-10)) << kind;
    EXPECT_TRUE(torch::allclose(wa, wb, 1e-10, 1e-10)) << kind;
    EXPECT_EQ(wa[0].select(-1, 2).abs().max().item<double>(), 0.0) << kind << ": an invalid key is attended to";
  }
}

TEST(Attention, ALiBiSlopesAndFloatTimeStamps) {
  const auto g = make_group("D4");
  const auto rep = symm::test::scrambled(Representation::regular(g).copies(4), 9);
  ALiBiAttention attn(rep, 4);
  attn->to(torch::kFloat64);
  attn->eval();
  for (int64_t h = 0; h < 4; ++h) EXPECT_DOUBLE_EQ(attn->slopes[h].item<double>(), std::pow(2.0, -2.0 * double(h + 1)));
  EXPECT_EQ(attn->named_parameters().find("slopes"), nullptr) << "fixed slopes must be a buffer";
  EXPECT_NE(attn->named_buffers().find("slopes"), nullptr);
  const auto x = torch::randn({kBatch, kT, rep.size()}, torch::kFloat64);
  const auto t = torch::rand({kBatch, kT}, torch::kFloat64) * 3.7;  // continuous time stamps
  AttentionCall call;
  call.query = call.key = call.value = x;
  call.query_positions = t;
  call.need_weights = true;
  call.average_attn_weights = false;
  EXPECT_LT(equivariance(*attn, rep, call).first, 1e-10);
  // Relative: a common shift changes nothing; the logit bias is −slope·|Δt| (check through zero Q and K).
  AttentionCall shifted = call;
  shifted.query_positions = t + 123.5;
  EXPECT_TRUE(torch::allclose(std::get<0>(attn->attend(call)), std::get<0>(attn->attend(shifted)), 1e-10, 1e-10));
  {
    torch::NoGradGuard no_grad;
    attn->in_proj->weight_dof.zero_();
  }
  const auto w = std::get<1>(attn->attend(call));  // (B, H, T, T) = softmax(−slope_h |t_i − t_j|)
  const auto logits = -attn->slopes.view({1, 4, 1, 1}) * (t.unsqueeze(2) - t.unsqueeze(1)).abs().unsqueeze(1);
  EXPECT_TRUE(torch::allclose(w, torch::softmax(logits, -1), 1e-12, 1e-12));
}

// ------------------------------------------------------------------------------ module plumbing

TEST(Attention, BackendInterfaceSaveLoadCloneAndDtype) {
  const auto g = make_group("Q8");
  const auto rep = symm::test::scrambled(Representation::regular(g).copies(2), 13);
  const auto x = torch::randn({kBatch, kT, rep.size()});
  for (const std::string kind : {"mha", "rotary", "alibi"}) {
    torch::manual_seed(6);
    auto a = make_backend(kind, rep);
    torch::manual_seed(7);
    auto b = make_backend(kind, rep);
    EXPECT_EQ(a->num_heads(), kind == "rotary" ? 1 : 2);
    EXPECT_EQ(a->uses_positions(), kind != "mha");
    {
      torch::NoGradGuard no_grad;
      for (auto& p : a->as_module()->parameters()) p.add_(0.1 * torch::randn_like(p));  // non-zero biases too
    }
    const std::string path = ::testing::TempDir() + "attention_" + kind + ".pt";
    {
      torch::serialize::OutputArchive out;
      a->as_module()->save(out);
      out.save_to(path);
      torch::serialize::InputArchive in;
      in.load_from(path);
      b->as_module()->load(in);
    }
    a->as_module()->eval();
    b->as_module()->eval();
    AttentionCall call;
    call.query = call.key = call.value = x;
    const auto y = std::get<0>(a->attend(call));
    EXPECT_TRUE(torch::equal(y, std::get<0>(b->attend(call)))) << kind << ": save/load";
    // clone(): same outputs, independent parameters.
    auto c = a->as_module()->clone();
    auto c_backend = std::dynamic_pointer_cast<AttentionBackend>(c);
    ASSERT_TRUE(c_backend) << kind;
    EXPECT_TRUE(torch::allclose(y, std::get<0>(c_backend->attend(call)), 1e-6, 1e-6)) << kind << ": clone";
    // ->to(kFloat64) keeps the function.
    a->as_module()->to(torch::kFloat64);
    AttentionCall call64 = call;
    call64.query = call64.key = call64.value = x.to(torch::kFloat64);
    const auto y64 = std::get<0>(a->attend(call64));
    EXPECT_EQ(y64.scalar_type(), torch::kFloat64);
    EXPECT_TRUE(torch::allclose(y64.to(torch::kFloat32), y, 1e-4, 1e-5)) << kind << ": to(kFloat64)";
  }
  std::ostringstream s;
  s << *eMultiheadAttention(rep, 2);
  EXPECT_NE(s.str().find("eMultiheadAttention"), std::string::npos);
  EXPECT_NE(s.str().find("num_heads=2"), std::string::npos);
}

TEST(Attention, DropoutActsInTrainingOnly) {
  const auto rep = Representation::regular(make_group("C4")).copies(2);
  eMultiheadAttention attn(eMultiheadAttentionOptions(rep, 2).dropout(0.5));
  const auto x = torch::randn({kBatch, kT, rep.size()});
  const auto [y1, w1] = attn->forward(x, x, x);
  const auto [y2, w2] = attn->forward(x, x, x);
  EXPECT_FALSE(torch::allclose(w1, w2)) << "no dropout in training";
  attn->eval();
  EXPECT_TRUE(torch::equal(std::get<1>(attn->forward(x, x, x)), std::get<1>(attn->forward(x, x, x))));
}

TEST(Attention, RunsOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const auto rep = symm::test::scrambled(Representation::regular(make_group("D8")).copies(2), 17);
  for (const std::string kind : {"mha", "rotary", "alibi"}) {
    auto attn = make_backend(kind, rep);
    attn->as_module()->eval();
    for (const auto& [what, call] : calls(rep, torch::kFloat32, attn->num_heads())) {
      const auto [y, w] = attn->attend(call);
      attn->as_module()->to(torch::kCUDA);
      AttentionCall c = call;
      for (auto* t : {&c.query, &c.key, &c.value, &c.attn_mask, &c.key_padding_mask, &c.query_positions, &c.key_positions,
                      &c.query_position_mask})
        if (t->defined()) *t = t->to(torch::kCUDA);
      if (call.key.is_same(call.query)) c.key = c.query;
      if (call.value.is_same(call.query)) c.value = c.query;
      if (call.value.is_same(call.key)) c.value = c.key;
      const auto [yc, wc] = attn->attend(c);
      EXPECT_TRUE(torch::allclose(yc.cpu(), y, 1e-4, 1e-5)) << kind << " " << what;
      attn->as_module()->to(torch::kCPU);
    }
  }
}

// ------------------------------------------------------------------------------------------- errors

TEST(Attention, BadInputsRaiseNamedErrors) {
  using symm::test::expect_error;
  const auto g = make_group("D8");
  const auto rep = Representation::regular(g).copies(4);
  expect_error([&] { eMultiheadAttention(rep, 3); }, {"eMultiheadAttention", "num_heads 3", "4 regular copies", "D8"});
  expect_error([&] { eMultiheadAttention(Representation::trivial(g, 16), 1); }, {"eMultiheadAttention", "regular"});
  expect_error([&] { eMultiheadAttention(rep, 0); }, {"eMultiheadAttention", "num_heads"});
  expect_error([&] { RotaryAttention(rep, 4); }, {"RotaryAttention", "at least 2"});
  expect_error([&] { ALiBiAttention(rep, 3); }, {"ALiBiAttention", "num_heads 3"});
  expect_error([&] { eMultiheadAttention(eMultiheadAttentionOptions(rep, 2).dropout(1.5)); }, {"eMultiheadAttention", "dropout"});

  eMultiheadAttention mha(rep, 2);
  const auto d = rep.size();
  const auto x = torch::randn({kBatch, kT, d});
  expect_error([&] { mha->forward(torch::randn({kT, d}), x, x); }, {"eMultiheadAttention", "query", "[5, 64]"});
  expect_error([&] { mha->forward(x, torch::randn({kBatch, kT, 7}), x); }, {"eMultiheadAttention", "key", "64", "[2, 5, 7]"});
  expect_error([&] { mha->forward(x, x, torch::randn({kBatch, 3, d})); }, {"eMultiheadAttention", "same length"});
  expect_error([&] { mha->forward(x, torch::randn({3, kT, d}), torch::randn({3, kT, d})); }, {"eMultiheadAttention", "batch size"});
  expect_error([&] { mha->forward(x.to(torch::kFloat64), x, x); }, {"eMultiheadAttention", "dtype", "Double"});
  expect_error([&] { mha->forward(x, x, x, {}, true, torch::zeros({3, 3})); },
               {"eMultiheadAttention", "attn_mask", "[5, 5]", "[4, 5, 5]", "[3, 3]"});
  expect_error([&] { mha->forward(x, x, x, {}, true, torch::zeros({kT, kT}, torch::kInt)); },
               {"eMultiheadAttention", "attn_mask", "bool", "Int"});
  expect_error([&] { mha->forward(x, x, x, {}, true, torch::full({kT, kT}, std::nan(""))); },
               {"eMultiheadAttention", "attn_mask", "NaN"});
  expect_error([&] { mha->forward(x, x, x, torch::zeros({kBatch, 4}, torch::kBool)); },
               {"eMultiheadAttention", "key_padding_mask", "[2, 5]", "[2, 4]"});
  expect_error([&] { mha->forward(x, x, x, torch::zeros({kBatch, kT}, torch::kLong)); },
               {"eMultiheadAttention", "key_padding_mask", "Long"});
  expect_error([&] { mha->forward(x, x, x, torch::full({kBatch, kT}, std::nan(""))); },
               {"eMultiheadAttention", "key_padding_mask", "NaN"});

  RotaryAttention rot(rep, 2);
  ALiBiAttention alibi(rep, 2);
  for (auto* attn : std::initializer_list<AttentionBackend*>{rot.get(), alibi.get()}) {
    const std::string name = attn == rot.get() ? "RotaryAttention" : "ALiBiAttention";
    AttentionCall c;
    c.query = c.key = c.value = x;
    c.query_positions = torch::zeros({kBatch, 3});
    expect_error([&] { attn->attend(c); }, {name, "query_positions", "[2, 5]", "[2, 3]"});
    c.query_positions = torch::zeros({kBatch, kT}, torch::kBool);
    expect_error([&] { attn->attend(c); }, {name, "query_positions", "Bool"});
    c.query_positions = torch::full({kBatch, kT}, std::nan(""));
    expect_error([&] { attn->attend(c); }, {name, "query_positions", "NaN"});
    c.query_positions = torch::Tensor();
    c.query_position_mask = torch::ones({kBatch, kT});
    expect_error([&] { attn->attend(c); }, {name, "query_position_mask", "bool", "Float"});
    c.query_position_mask = torch::Tensor();
    c.key_position_mask = torch::ones({kBatch, 2}, torch::kBool);
    expect_error([&] { attn->attend(c); }, {name, "key_position_mask", "[2, 5]", "[2, 2]"});
    c.key_position_mask = torch::Tensor();
    c.attn_mask = torch::zeros({kT, kT}, torch::kLong);
    expect_error([&] { attn->attend(c); }, {name, "attn_mask", "Long"});
  }
  expect_error([&] { rot->forward(x.to(torch::kFloat64), x, x); }, {"RotaryAttention", "dtype"});
}

}  // namespace
