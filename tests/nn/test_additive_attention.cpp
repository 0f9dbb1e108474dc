// eAdditivePosMultiheadAttention and eAdditiveRelMultiheadAttention: equivariance with learned (non-zero)
// tables over masks and positions, the reduction to eMultiheadAttention at a zero table, the positional
// properties (relative: shift invariant), invalid key positions, gradients and error messages.
#include <gtest/gtest.h>

#include "symm/group/named.h"
#include "symm/nn/additive_attention.h"
#include "symm/nn/equivariance.h"
#include "attention_test_util.h"

using namespace symm::nn;
using symm::test::equivariance;
using symm::test::kBatch;
using symm::test::kS;
using symm::test::kT;
using symm::group::Group;
using symm::group::make_group;

namespace {


std::shared_ptr<AttentionBackend> make_additive(const std::string& kind, const Representation& rep) {
  if (kind == "pos") {
    eAdditivePosMultiheadAttention a(rep, 2, 16);
    a->reset_parameters();  // a non-zero embedding table
    return a.ptr();
  }
  eAdditiveRelMultiheadAttention a(rep, 2, 3);
  a->reset_parameters();
  return a.ptr();
}

// Self-attention with default positions; causal + padding with integer positions and an invalid one; cross
// attention with float masks and integer key positions.
std::vector<std::pair<std::string, AttentionCall>> calls(const Representation& rep, torch::Dtype dtype) {
  const auto opts = torch::dtype(dtype);
  const auto x = torch::randn({kBatch, kT, rep.size()}, opts);
  const auto mem = torch::randn({kBatch, kS, rep.size()}, opts);
  std::vector<std::pair<std::string, AttentionCall>> out;
  AttentionCall c;
  c.query = c.key = c.value = x;
  c.need_weights = true;
  out.emplace_back("self", c);
  c.key_padding_mask = torch::zeros({kBatch, kT}, torch::kBool);
  c.key_padding_mask[1][4] = true;
  c.is_causal = true;
  c.query_positions = torch::randint(0, 16, {kBatch, kT});
  c.query_position_mask = torch::ones({kBatch, kT}, torch::kBool);
  c.query_position_mask[0][3] = false;
  out.emplace_back("self causal+padding+positions", c);
  c = AttentionCall();
  c.query = x;
  c.key = c.value = mem;
  c.attn_mask = torch::randn({kT, kS}, opts);
  c.query_positions = torch::arange(kT).repeat({kBatch, 1}) + 3;
  c.key_positions = torch::randint(0, 16, {kBatch, kS});
  c.need_weights = true;
  c.average_attn_weights = false;
  out.emplace_back("cross float attn_mask + positions", c);
  return out;
}

class AdditiveAttentionTest : public ::testing::TestWithParam<std::tuple<const char*, torch::Dtype>> {};

TEST_P(AdditiveAttentionTest, EquivariantWithLearnedTables) {
  const auto [spec, dtype] = GetParam();
  const auto g = std::string(spec) == "perm" ? Group::from_permutations("perm", {{1, 2, 0}, {1, 0, 2}}) : make_group(spec);
  const auto rep = symm::test::scrambled(Representation::regular(g).copies(2), 13);
  for (const std::string kind : {"pos", "rel"}) {
    torch::manual_seed(2);
    auto attn = make_additive(kind, rep);
    attn->as_module()->to(dtype);
    for (bool training : {false, true}) {
      attn->as_module()->train(training);  // dropout is 0: training differs only in the caches
      for (const auto& [what, call] : calls(rep, dtype)) {
        const auto [err, werr] = equivariance(*attn, rep, call);
        EXPECT_LT(err, symm::test::tolerance(dtype)) << spec << " " << kind << ": " << what;
        EXPECT_LT(werr, 10 * symm::test::tolerance(dtype)) << spec << " " << kind << ": weights, " << what;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Groups, AdditiveAttentionTest,
                         ::testing::Combine(::testing::Values("C2", "D4", "C8", "Q8", "O", "perm"),
                                            ::testing::Values(torch::kFloat32, torch::kFloat64)));

// The same projections in an eMultiheadAttention.
eMultiheadAttention plain_copy(torch::nn::Module& attn, const Representation& rep) {
  eMultiheadAttention mha(rep, 2);
  torch::NoGradGuard no_grad;
  const auto from = attn.named_parameters();
  for (auto& p : mha->named_parameters()) p.value().copy_(from[p.key()]);
  return mha;
}

TEST(AdditiveAttention, ZeroTablesAreEquivariantAttention) {
  const auto rep = Representation::regular(make_group("D4")).copies(2);
  eAdditivePosMultiheadAttention pos(rep, 2, 8);
  eAdditiveRelMultiheadAttention rel(rep, 2, 2);
  const auto x = torch::randn({kBatch, kT, rep.size()});
  for (torch::nn::Module* m : {static_cast<torch::nn::Module*>(pos.get()), static_cast<torch::nn::Module*>(rel.get())}) {
    auto mha = plain_copy(*m, rep);
    const auto expected = std::get<0>(mha->forward(x, x, x));
    const auto got = m == pos.get() ? std::get<0>(pos->forward(x, x, x)) : std::get<0>(rel->forward(x, x, x));
    EXPECT_LT((got - expected).abs().max().item<float>(), 1e-6);
  }
}

TEST(AdditiveAttention, PositionalProperties) {
  const auto rep = Representation::regular(make_group("C4")).copies(2);
  torch::manual_seed(4);
  eAdditiveRelMultiheadAttention rel(rep, 2, 4);
  eAdditivePosMultiheadAttention pos(rep, 2, 32);
  rel->reset_parameters();
  pos->reset_parameters();
  {
    torch::NoGradGuard no_grad;
    rel->rel_bias.mul_(50);  // large enough to matter against the logits
    pos->pos_emb.mul_(50);
  }
  const auto x = torch::randn({1, kT, rep.size()});
  const auto p = torch::tensor({{0, 1, 2, 4, 7}});
  auto rel_out = [&](const torch::Tensor& q) { return std::get<0>(rel->forward(x, x, x, q)); };
  auto pos_out = [&](const torch::Tensor& q) { return std::get<0>(pos->forward(x, x, x, q)); };
  // Relative: a shift of every position changes nothing; other differences do.
  EXPECT_LT((rel_out(p + 11) - rel_out(p)).abs().max().item<float>(), 1e-6);
  EXPECT_GT((rel_out(p * 2) - rel_out(p)).abs().max().item<float>(), 1e-3);
  // Absolute: a shift does change the output.
  EXPECT_GT((pos_out(p + 11) - pos_out(p)).abs().max().item<float>(), 1e-3);
  // Keys at invalid positions get no weight.
  AttentionCall c;
  c.query = c.key = c.value = x;
  c.query_positions = p;
  c.query_position_mask = torch::tensor({{true, true, false, true, true}});
  c.need_weights = true;
  for (AttentionBackend* a : {static_cast<AttentionBackend*>(rel.get()), static_cast<AttentionBackend*>(pos.get())}) {
    const auto w = std::get<1>(a->attend(c));
    EXPECT_EQ(w.select(-1, 2).abs().max().item<float>(), 0.0f);
  }
  // The tables learn.
  const auto loss = rel_out(p).pow(2).sum() + pos_out(p).pow(2).sum();
  loss.backward();
  EXPECT_GT(rel->rel_bias.grad().abs().max().item<float>(), 0.0f);
  EXPECT_GT(pos->pos_emb.grad().abs().max().item<float>(), 0.0f);
}

TEST(AdditiveAttention, EmbeddingsStayInvariant) {
  const auto rep = symm::test::scrambled(Representation::regular(make_group("D4")).copies(2), 5);
  eAdditivePosMultiheadAttention pos(rep, 1, 6);
  pos->reset_parameters();
  for (int g = 0; g < rep.group()->order(); ++g)
    ASSERT_LT((act(rep, g, pos->pos_emb) - pos->pos_emb).abs().max().item<float>(), 1e-6) << "g = " << g;
}

TEST(AdditiveAttention, BadInputIsNamed) {
  using symm::test::expect_error;
  const auto rep = Representation::regular(make_group("D4")).copies(2);
  eAdditivePosMultiheadAttention pos(rep, 2, 8);
  const auto x = torch::randn({1, 3, rep.size()});
  expect_error([&] { pos->forward(x, x, x, torch::tensor({{0, 1, 8}})); }, {"eAdditivePosMultiheadAttention", "[0, max_len = 8)", "8"});
  expect_error([&] { pos->forward(x, x, x, torch::tensor({{0.0, 0.5, 1.0}})); }, {"must be integers"});
  expect_error([&] { eAdditivePosMultiheadAttention(rep, 2, 0); }, {"max_len must be positive", "0"});
  expect_error([&] { eAdditiveRelMultiheadAttention(rep, 2, 0); }, {"max_distance must be positive"});
  expect_error([&] { eAdditiveRelMultiheadAttention(rep, 3, 2); }, {"eAdditiveRelMultiheadAttention", "num_heads 3"});
  expect_error([&] { pos->forward(torch::randn({1, 3, 5}), torch::randn({1, 3, 5}), torch::randn({1, 3, 5})); },
               {"eAdditivePosMultiheadAttention"});
}

}  // namespace
