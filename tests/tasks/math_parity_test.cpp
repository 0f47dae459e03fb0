// MATH equivalence against math_verify on tests/fixtures/tasks/math_parity.jsonl (made by
// scripts/tasks_make_math_fixture.py): at least 99% agreement, every disagreement printed (and
// listed in docs/SCORING.md). Plus hand-checked cases of the rules in scoring.h.
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "tasks/jsonl.h"
#include "tasks/scoring.h"
#include "tests/tasks/test_env.h"

namespace {

using hrm::tasks::math_equivalent;

constexpr double kRequiredAgreement = 0.99;

TEST(MathScoring, LastBoxedOnlyString) {
  EXPECT_EQ(hrm::tasks::last_boxed_only_string("a \\boxed{1} b \\boxed{\\frac{1}{2}} c"), "\\frac{1}{2}");
  EXPECT_EQ(hrm::tasks::last_boxed_only_string("\\fbox{ 7 }"), "7");
  EXPECT_EQ(hrm::tasks::last_boxed_only_string("\\boxed{\\{1,2\\}}"), "\\{1,2\\}");
  EXPECT_FALSE(hrm::tasks::last_boxed_only_string("\\boxed{unbalanced").has_value());
  EXPECT_FALSE(hrm::tasks::last_boxed_only_string("no box").has_value());
  auto ex = hrm::tasks::math_extract("so it is \\boxed 5.");
  EXPECT_TRUE(ex.invalid);  // no braced box: counted invalid, like the reference
  EXPECT_TRUE(math_equivalent("5", ex.answer));
}

TEST(MathScoring, EquivalentRewrites) {
  EXPECT_TRUE(math_equivalent("\\frac{1}{2}", "\\dfrac{1}{2}"));
  EXPECT_TRUE(math_equivalent("\\frac{1}{2}", "0.5"));
  EXPECT_TRUE(math_equivalent("\\frac12", "1/2"));
  EXPECT_TRUE(math_equivalent("10", "10^\\circ"));
  EXPECT_TRUE(math_equivalent("10", "10\\text{ cm}"));
  EXPECT_TRUE(math_equivalent("10", "\\$10"));
  EXPECT_TRUE(math_equivalent("25,\\!000", "25000"));
  EXPECT_TRUE(math_equivalent("2\\sqrt{3}", "\\sqrt{12}"));
  EXPECT_TRUE(math_equivalent("(1,2)", "\\left( 1, 2 \\right)"));
  EXPECT_TRUE(math_equivalent("\\{1,2\\}", "\\{2, 1\\}"));
  EXPECT_TRUE(math_equivalent("[-2,7]", "x \\in [-2, 7]"));
  EXPECT_TRUE(math_equivalent("x^2+2x+1", "(x+1)^2"));
  EXPECT_TRUE(math_equivalent("\\text{even}", "\\text{Even}"));
  EXPECT_TRUE(math_equivalent("5", "x = 5"));
}

TEST(MathScoring, NonEquivalentRewrites) {
  EXPECT_FALSE(math_equivalent("\\frac{1}{2}", "\\frac{2}{1}"));
  EXPECT_FALSE(math_equivalent("\\frac{1}{3}", "0.33"));
  EXPECT_FALSE(math_equivalent("(1,2)", "(2,1)"));
  EXPECT_FALSE(math_equivalent("[1,2)", "[1,2]"));
  EXPECT_FALSE(math_equivalent("x+1", "t+1"));
  EXPECT_FALSE(math_equivalent("\\sqrt{2}", "\\sqrt[3]{2}"));
  EXPECT_FALSE(math_equivalent("\\text{even}", "\\text{odd}"));
}

std::string gold_of(const std::string& solution) { return *hrm::tasks::last_boxed_only_string(solution); }

TEST(MathScoring, AgreesWithMathVerifyOnFixture) {
  std::vector<std::string> golds;
  hrm::tasks::for_each_row((hrm::tasks::testing::data_dir() / "math/test.jsonl").string(),
                           [&](const hrm::tasks::Row& r) { golds.push_back(gold_of(r.string("solution"))); });
  std::ifstream f(hrm::tasks::testing::fixtures_dir() / "tasks/math_parity.jsonl");
  ASSERT_TRUE(f) << "missing fixture; run scripts/tasks_make_math_fixture.py";
  std::string line;
  std::size_t cases = 0, agree = 0;
  while (std::getline(f, line)) {
    rapidjson::Document d;
    d.Parse(line.c_str());
    ASSERT_FALSE(d.HasParseError());
    if (!d.HasMember("eq")) continue;
    ++cases;
    const std::string& gold = golds.at(d["d"].GetUint64());
    std::string pred = d["p"].GetString();
    bool oracle = d["eq"].GetInt() != 0;
    bool ours = math_equivalent(gold, pred);
    if (ours == oracle) {
      ++agree;
    } else {
      std::printf("MATH disagreement [%s] doc %d: gold '%s' pred '%s': math_verify %d, ours %d\n", d["k"].GetString(),
                  d["d"].GetInt(), gold.c_str(), pred.c_str(), oracle, ours);
    }
  }
  double rate = cases ? static_cast<double>(agree) / static_cast<double>(cases) : 0;
  std::printf("MATH parity: %zu cases, %zu agree (%.2f%%)\n", cases, agree, 100 * rate);
  EXPECT_GE(cases, 5000u);
  EXPECT_GE(rate, kRequiredAgreement);
}

}  // namespace
