// Bounded work on hostile input: specs, JSON files and representations that ask for too much are refused
// before the work starts, with a message naming the limit.
#include <string>

#include <gtest/gtest.h>

#include "symm/group/named.h"
#include "symm/group/representation.h"

using namespace symm::group;

namespace {

template <typename F>
void expect_refused(F f, const std::string& limit) {
  try {
    f();
    ADD_FAILURE() << "not refused; expected a message naming " << limit;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(limit), std::string::npos) << e.what();
  }
}

TEST(Limits, SpecsAskingForHugeGroupsAreRefusedBeforeBuilding) {
  expect_refused([] { parse_group("C999999"); }, "kMaxOrder");
  expect_refused([] { parse_group("D" + std::to_string(kMaxOrder / 2 + 1)); }, "kMaxOrder");
  expect_refused([] { parse_group("IxIxIxIxI"); }, "kMaxNumericalOrder");
  expect_refused([] { parse_group("C40xC40"); }, "kMaxNumericalOrder");
  expect_refused([] { parse_group("S7"); }, "at most S6");
  expect_refused([] { parse_group("C8", 4); }, "exceeds the limit of 4");
  // fuzz_group_spec's finding: trivial factors repeat the numerical irreps of the product so far, each
  // C1024xC1 costing 10 s (fuzz/findings/group_spec-slow-trivial-factors).
  std::string padded = "C1024";
  for (int i = 0; i < 40; ++i) padded += "xC1";
  expect_refused([&] { parse_group(padded); }, "factor 'C1' is the trivial group");
  expect_refused([] { parse_group("S1xC2"); }, "factor 'S1' is the trivial group");
  EXPECT_EQ(parse_group("C1")->order(), 1);
  // The largest closed-form groups are accepted.
  EXPECT_EQ(parse_group("D" + std::to_string(kMaxOrder / 2))->order(), kMaxOrder);
}

std::string cycle_json(int points, int generators) {
  // Generators (0 1 ... points-1) and (0 1): together all of S_points.
  std::string perms;
  for (int s = 0; s < generators; ++s) {
    std::string p;
    for (int i = 0; i < points; ++i) p += (i ? "," : "") + std::to_string(s % 2 ? (i < 2 ? 1 - i : i) : (i + 1) % points);
    perms += (s ? ",[" : "[") + p + "]";
  }
  return "{\"permutations\": [" + perms + "]}";
}

TEST(Limits, JsonGroupsWhoseGeneratorsGenerateAHugeGroupAreRefused) {
  expect_refused([] { group_from_json_text(cycle_json(10, 2)); }, "kMaxNumericalOrder");  // S10, order 3628800
  expect_refused([] { group_from_json_text(cycle_json(65, 1)); }, "kMaxGeneratorSize");
  expect_refused([] { group_from_json_text(cycle_json(5, kMaxGenerators + 1)); }, "kMaxGenerators");
  std::string big = "[";
  for (int r = 0; r < 65; ++r) {
    big += r ? ",[" : "[";
    for (int c = 0; c < 65; ++c) big += std::string(c ? "," : "") + (r == c ? "1" : "0");
    big += "]";
  }
  expect_refused([&] { group_from_json_text("{\"generators\": [" + big + "]]}"); }, "kMaxGeneratorSize");
  EXPECT_EQ(group_from_json_text(cycle_json(5, 2))->order(), 120);
}

TEST(Limits, HugeRepresentationsAreRefusedBeforeBuilding) {
  const auto g = make_group("I");
  expect_refused([&] { Representation::parse(g, "999999*regular"); }, "kMaxRepresentationSize");
  expect_refused([&] { Representation::parse(g, "30*regular + 30*regular"); }, "kMaxRepresentationSize");
  expect_refused([&] { Representation::regular(g).copies(kMaxRepresentationSize); }, "kMaxRepresentationSize");
  expect_refused([&] { Representation::trivial(g, kMaxRepresentationSize + 1); }, "kMaxRepresentationSize");
  const auto r = Representation::regular(g).copies(kMaxRepresentationSize / g->order());
  expect_refused([&] { direct_sum(r, r); }, "kMaxRepresentationSize");
  // Many small terms are summed once, not term by term.
  std::string many = "trivial";
  for (int i = 1; i < kMaxRepresentationSize; ++i) many += "+trivial";
  EXPECT_EQ(Representation::parse(g, many).size(), kMaxRepresentationSize);
  expect_refused([&] { Representation::parse(g, many + "+trivial"); }, "kMaxRepresentationSize");
}

}  // namespace
