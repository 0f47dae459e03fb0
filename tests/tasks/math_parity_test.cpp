// MATH equivalence against math_verify on tests/fixtures/tasks/math_parity.jsonl (made by
// scripts/tasks_make_math_fixture.py): at least 99% agreement, every disagreement printed (and
// listed in docs/SCORING.md). Whole replies without a closed \boxed{} against the reference's
// scoring (math_verify's free-text extraction) on math_unboxed_parity.jsonl (made by the same
// script with --unboxed), the same way. Plus hand-checked cases of the rules in scoring.h.
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
  EXPECT_TRUE(hrm::tasks::math_correct("5", ex));
}

// math_verify.parse on free text (values checked with math-verify 0.9.0).
TEST(MathScoring, FreeTextAnswers) {
  auto answer = [](const char* text) {
    auto a = hrm::tasks::math_free_text_answer(text);
    return a.found ? a.answer + (a.percent ? " (percent)" : "") : std::string("<none>");
  };
  EXPECT_EQ(answer("The answer is 5"), "5");
  EXPECT_EQ(answer("The answer is $\\frac{1}{2}$."), "\\frac{1}{2}");
  EXPECT_EQ(answer("The answer is 3 4"), "3");            // "answer ... X" takes the first number after it
  EXPECT_EQ(answer("The answer is 5, since 2 + 2 = 4"), "4");  // ... unless an '=' follows within 100 characters
  EXPECT_EQ(answer("answer: 12 = x"), "1");               // (?!\s*=) backtracks into the number
  EXPECT_EQ(answer("The answer is 2,3"), "2.3");          // a decimal comma
  EXPECT_EQ(answer("The answer is 1 234"), "1234");       // a thousands separator
  EXPECT_EQ(answer("\\boxed 10\\sqrt 2"), "2");           // the last number: unbraced \boxed is not special
  EXPECT_EQ(answer("so \\boxed{\\frac{1}{2}"), "\\frac{1}{2}");
  EXPECT_EQ(answer("\\boxed{3} then \\boxed{4"), "3");       // "\boxed{.+}" up to the last '}'
  EXPECT_EQ(answer("Final Answer: The final answer is $7$. I hope it is correct."), "7");
  EXPECT_EQ(answer("We get $1$ and $2$"), "1, 2");       // environments joined by "and" form a set
  EXPECT_EQ(answer("The answer is 50%"), "50 (percent)");
  EXPECT_EQ(answer("The answer is $-80$ percent"), "-80 (percent)");
  EXPECT_TRUE(hrm::tasks::math_correct("-80", hrm::tasks::math_free_text_answer("The answer is -80%")));
  EXPECT_TRUE(hrm::tasks::math_correct("3", hrm::tasks::math_free_text_answer("The answer is 300%")));  // as written or / 100
  EXPECT_FALSE(hrm::tasks::math_correct("2", hrm::tasks::math_free_text_answer("The answer is 50%")));
  EXPECT_FALSE(hrm::tasks::math_correct("12", hrm::tasks::math_free_text_answer("We get $$ 12\\text{ cm} $$")));  // unit kept
  EXPECT_TRUE(hrm::tasks::math_correct("\\frac{1}{2}", hrm::tasks::math_free_text_answer("The answer is 50%")));
  EXPECT_EQ(answer("so $a+b=2+5=7$."), "a+b=2+5=7");  // judged by its last right side
  EXPECT_EQ(answer("so $n = 82.$ Also 5"), "5");  // latex2sympy fails on "n = 82."
  EXPECT_EQ(answer("$\\boxed{3}$ then \\boxed{4"), "3");  // an environment holding a closed box
  EXPECT_EQ(answer("so 3(4) + 3 = 15"), "15");  // "3(4) + 3" calls a number in Python
  EXPECT_EQ(answer("I do not know"), "<none>");
  EXPECT_EQ(answer("so \\boxed{5"), "<none>");
  auto none = hrm::tasks::math_extract("I do not know");
  EXPECT_TRUE(none.invalid);
  EXPECT_FALSE(none.found);
  EXPECT_FALSE(hrm::tasks::math_correct("5", none));
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
  // Checked against math-verify 0.9.0 (verify(parse("\boxed{g}"), parse("\boxed{p}"))).
  EXPECT_TRUE(math_equivalent("\\frac{9}{5}", "1\\frac{4}{5}"));  // a mixed number
  EXPECT_TRUE(math_equivalent("\\frac{3}{2}", "3:2"));
  EXPECT_TRUE(math_equivalent("(1,2,3)", "1, 2, 3"));  // a list against a tuple, in order
  EXPECT_TRUE(math_equivalent("45", "45 \\text{ units}^2"));
  EXPECT_TRUE(math_equivalent("16", "12+3+1=16"));  // an equation's last right side
  EXPECT_TRUE(math_equivalent("x + y + z = 0", "0"));  // a gold assigning to a sum of symbols
  EXPECT_TRUE(math_equivalent("10", "\\$ 10."));  // the period fails; the free-text regexes find 10
  EXPECT_TRUE(math_equivalent("3", "3, 3"));  // a set keeps one copy
  EXPECT_TRUE(math_equivalent("10\\%", "10"));  // integers: a percentage as written
}

TEST(MathScoring, NonEquivalentRewrites) {
  EXPECT_FALSE(math_equivalent("\\frac{1}{2}", "\\frac{2}{1}"));
  EXPECT_FALSE(math_equivalent("\\frac{1}{3}", "0.33"));
  EXPECT_FALSE(math_equivalent("(1,2)", "(2,1)"));
  EXPECT_FALSE(math_equivalent("[1,2)", "[1,2]"));
  EXPECT_FALSE(math_equivalent("x+1", "t+1"));
  EXPECT_FALSE(math_equivalent("\\sqrt{2}", "\\sqrt[3]{2}"));
  EXPECT_FALSE(math_equivalent("\\text{even}", "\\text{odd}"));
  EXPECT_FALSE(math_equivalent("(1,2,3)", "3, 2, 1"));
  EXPECT_FALSE(math_equivalent("[1,2]", "1, 2"));
  EXPECT_FALSE(math_equivalent("\\frac{4}{5}", "1\\frac{4}{5}"));
  EXPECT_FALSE(math_equivalent("7.2\\%", "7.2"));  // not integers: only divided by 100
  EXPECT_FALSE(math_equivalent("-8\\%", "-8"));
  EXPECT_FALSE(math_equivalent("13", "13."));  // "{13." has no anchor for a number
  EXPECT_FALSE(math_equivalent("24", "2\\times2!\\times3!=24"));  // "!=" is "not equal"
  EXPECT_FALSE(math_equivalent("2^{2008} -2", "2^{2018} -2"));  // both overflow a double
  EXPECT_TRUE(math_equivalent("2^{2008} -2", "2^{2008}-2"));
  EXPECT_FALSE(math_equivalent("5", "x_"));  // a dangling subscript read past the token list
}

std::string gold_of(const std::string& solution) { return *hrm::tasks::last_boxed_only_string(solution); }

// Calls fn(gold, row) for each oracle row (those with "eq") of a MATH parity fixture; the row's "d" is
// its doc index in math/test.jsonl, whose boxed answer is the gold. Returns the number of rows.
template <typename Fn>
std::size_t for_each_oracle_row(const std::string& fixture, const char* how_made, Fn fn) {
  std::vector<std::string> golds;
  hrm::tasks::for_each_row((hrm::tasks::testing::data_dir() / "math/test.jsonl").string(),
                           [&](const hrm::tasks::Row& r) { golds.push_back(gold_of(r.string("solution"))); });
  std::ifstream f(hrm::tasks::testing::fixtures_dir() / "tasks" / fixture);
  EXPECT_TRUE(f) << "missing fixture; run " << how_made;
  std::string line;
  std::size_t cases = 0;
  while (std::getline(f, line)) {
    rapidjson::Document d;
    d.Parse(line.c_str());
    EXPECT_FALSE(d.HasParseError()) << line;
    if (d.HasParseError() || !d.HasMember("eq")) continue;
    ++cases;
    fn(golds.at(d["d"].GetUint64()), d);
  }
  return cases;
}

TEST(MathScoring, AgreesWithMathVerifyOnFixture) {
  std::size_t agree = 0;
  const std::size_t cases = for_each_oracle_row(
      "math_parity.jsonl", "scripts/tasks_make_math_fixture.py", [&](const std::string& gold, const rapidjson::Document& d) {
        const std::string pred = d["p"].GetString();
        const bool oracle = d["eq"].GetInt() != 0, ours = math_equivalent(gold, pred);
        if (ours == oracle) {
          ++agree;
        } else {
          std::printf("MATH disagreement [%s] doc %d: gold '%s' pred '%s': math_verify %d, ours %d\n",
                      d["k"].GetString(), d["d"].GetInt(), gold.c_str(), pred.c_str(), oracle, ours);
        }
      });
  double rate = cases ? static_cast<double>(agree) / static_cast<double>(cases) : 0;
  std::printf("MATH parity: %zu cases, %zu agree (%.2f%%)\n", cases, agree, 100 * rate);
  EXPECT_GE(cases, 5000u);
  EXPECT_GE(rate, kRequiredAgreement);
}

// Free-text agreement required on math_unboxed_parity.jsonl (measured: see docs/SCORING.md).
constexpr double kRequiredUnboxedAgreement = 0.995;

TEST(MathScoring, AgreesWithReferenceOnUnboxedReplies) {
  std::size_t agree = 0, invalid_agree = 0;
  const std::size_t cases = for_each_oracle_row(
      "math_unboxed_parity.jsonl", "scripts/tasks_make_math_fixture.py --unboxed",
      [&](const std::string& gold, const rapidjson::Document& d) {
        const std::string reply = d["p"].GetString();
        const auto ex = hrm::tasks::math_extract(reply);
        const bool oracle = d["eq"].GetInt() != 0, ours = hrm::tasks::math_correct(gold, ex);
        if (ex.invalid == (d["inv"].GetInt() != 0)) ++invalid_agree;
        if (ours == oracle) {
          ++agree;
        } else {
          std::printf(
              "MATH unboxed disagreement [%s] doc %d: gold '%s' reply '%s' (ours judged '%s'): reference %d, ours %d\n",
              d["k"].GetString(), d["d"].GetInt(), gold.c_str(), reply.c_str(),
              ex.found ? ex.answer.c_str() : "<nothing>", oracle, ours);
        }
      });
  double rate = cases ? static_cast<double>(agree) / static_cast<double>(cases) : 0;
  std::printf("MATH unboxed parity: %zu cases, %zu agree (%.2f%%)\n", cases, agree, 100 * rate);
  EXPECT_GE(cases, 3000u);
  EXPECT_EQ(invalid_agree, cases);  // the invalid count is the reference's exactly
  EXPECT_GE(rate, kRequiredUnboxedAgreement);
}

}  // namespace
