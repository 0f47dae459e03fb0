// The synthetic corpus: deterministic, arithmetic in every worked solution correct (re-checked by
// parsing each "a op b = c"), answers boxed, planted leaks verbatim and counted.
#include "runtime/synthetic.h"

#include <gtest/gtest.h>

#include <rapidjson/document.h>

#include <fstream>
#include <regex>

#include <unistd.h>

#include "common/error.h"

namespace hrm {
namespace {

TEST(DataSynthetic, DeterministicPerSeed) {
  SyntheticOptions o;
  o.n = 50;
  o.seed = 3;
  const auto a = make_synthetic_corpus(o), b = make_synthetic_corpus(o);
  ASSERT_EQ(a.size(), 50u);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].response, b[i].response);
  o.seed = 4;
  EXPECT_NE(make_synthetic_corpus(o)[0].instruction + make_synthetic_corpus(o)[1].instruction,
            a[0].instruction + a[1].instruction);
}

TEST(DataSynthetic, WorkedSolutionsAreCorrect) {
  SyntheticOptions o;
  o.n = 400;
  o.seed = 9;
  const std::regex step(R"((\d+) ([-+*/]) (\d+) = (\d+))"), boxed(R"(\\boxed\{(\d+)\}$)");
  int steps = 0;
  for (const auto& s : make_synthetic_corpus(o)) {
    EXPECT_EQ(s.condition, "synth,cot");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(s.response, m, boxed)) << s.response;
    const long answer = std::stol(m[1]);
    long last = -1;
    for (auto it = std::sregex_iterator(s.response.begin(), s.response.end(), step); it != std::sregex_iterator(); ++it) {
      const long x = std::stol((*it)[1]), y = std::stol((*it)[3]), z = std::stol((*it)[4]);
      const char op = (*it)[2].str()[0];
      const long want = op == '+' ? x + y : op == '-' ? x - y : op == '*' ? x * y : x / y;
      EXPECT_EQ(z, want) << s.response;
      if (op == '/') {
        EXPECT_EQ(x % y, 0) << s.response;
      }
      last = z;
      ++steps;
    }
    EXPECT_EQ(last, answer) << s.response;
    EXPECT_GE(answer, 0);
  }
  EXPECT_GE(steps, 2 * 400);  // multi-step: at least two operations per problem
}

TEST(DataSynthetic, PlantsLeaksVerbatim) {
  const auto path = std::filesystem::temp_directory_path() / ("hrm_leak_" + std::to_string(::getpid()) + ".jsonl");
  {
    std::ofstream out(path);
    out << R"({"question": "Janet\u2019s ducks lay 16 eggs per day.\nHow many?", "answer": "#### 18"})" << "\n";
    out << R"({"problem": "Compute $\\frac{1}{2}$."})" << "\n";
  }
  SyntheticOptions o;
  o.n = 30;
  o.seed = 1;
  o.leaks = read_leak_questions(path);
  ASSERT_EQ(o.leaks.size(), 2u);
  EXPECT_EQ(o.leaks[0].question, "Janet\xE2\x80\x99s ducks lay 16 eggs per day.\nHow many?");
  o.leak_count = 5;
  const auto c = make_synthetic_corpus(o);
  ASSERT_EQ(c.size(), 35u);
  int leaked = 0, first = 0, second = 0;
  for (const auto& s : c) {
    if (!s.leaked) continue;
    ++leaked;
    first += s.instruction == o.leaks[0].question;
    second += s.instruction == o.leaks[1].question;
    // The JSONL line carries the text unchanged.
    rapidjson::Document d;
    const std::string line = to_jsonl(s);
    d.Parse(line.c_str());
    ASSERT_FALSE(d.HasParseError());
    EXPECT_EQ(std::string(d["instruction"].GetString()), s.instruction);
  }
  EXPECT_EQ(leaked, 5);
  EXPECT_EQ(first, 3);
  EXPECT_EQ(second, 2);
  std::ofstream(path) << R"({"answer": "1"})" << "\n";
  EXPECT_THROW(read_leak_questions(path), Error);
  std::filesystem::remove(path);
  o.leaks.clear();
  EXPECT_THROW(make_synthetic_corpus(o), Error);
}

}  // namespace
}  // namespace hrm
