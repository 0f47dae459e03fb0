// The synthetic corpus: deterministic, arithmetic in every worked solution correct (re-checked by
// parsing each "a op b = c") at every difficulty, with the number of steps and the number sizes each
// level promises, answers boxed, the GSM8K-schema form scorable by the GSM8K scorer, planted leaks
// verbatim and counted; `make-task` writes a test split that shares no question with its training split.
#include "runtime/synthetic.h"

#include <gtest/gtest.h>

#include <rapidjson/document.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <set>

#include <unistd.h>

#include "common/error.h"
#include "test_util.h"

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

// Checks every "x op y = z" of every response and the boxed answer; returns the steps per problem
// (min, max) and the largest number seen.
struct Checked {
  int min_steps = 1 << 30, max_steps = 0;
  long largest = 0;
};

Checked check_solutions(const SyntheticOptions& o) {
  const std::regex step(R"((\d+) ([-+*/]) (\d+) = (\d+))"), boxed(R"(\\boxed\{(\d+)\}$)");
  Checked c;
  for (const auto& s : make_synthetic_corpus(o)) {
    EXPECT_EQ(s.condition, "synth,cot");
    std::smatch m;
    EXPECT_TRUE(std::regex_search(s.response, m, boxed)) << s.response;
    if (m.empty()) continue;
    const long answer = std::stol(m[1]);
    long last = -1;
    int steps = 0;
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
      c.largest = std::max({c.largest, x, y, z});
    }
    EXPECT_EQ(last, answer) << s.response;
    EXPECT_GE(answer, 0);
    c.min_steps = std::min(c.min_steps, steps);
    c.max_steps = std::max(c.max_steps, steps);
  }
  return c;
}

TEST(DataSynthetic, DifficultyLevelsHaveTheirStepsAndNumberSizes) {
  SyntheticOptions o;
  o.n = 600;
  o.seed = 2;
  o.difficulty = 1;
  Checked c = check_solutions(o);
  EXPECT_EQ(c.min_steps, 1);
  EXPECT_EQ(c.max_steps, 1);
  EXPECT_EQ(c.largest, 18);  // operands below 10; 9 + 9 and 18 - 9 bound the numbers
  o.difficulty = 2;
  c = check_solutions(o);
  EXPECT_EQ(c.min_steps, 2);
  EXPECT_EQ(c.max_steps, 2);
  EXPECT_LE(c.largest, 40);
  EXPECT_GT(c.largest, 30);
  o.difficulty = 3;
  c = check_solutions(o);
  EXPECT_GE(c.min_steps, 2);
  EXPECT_GT(c.largest, 200);
  // The default is level 3, and the levels differ.
  EXPECT_EQ(SyntheticOptions{}.difficulty, 3);
  SyntheticOptions d;
  d.n = 5;
  const auto level3 = make_synthetic_corpus(d);
  d.difficulty = 1;
  EXPECT_NE(make_synthetic_corpus(d)[0].response, level3[0].response);
  for (const int bad : {0, 4}) {
    d.difficulty = bad;
    EXPECT_THROW(make_synthetic_corpus(d), Error) << bad;
  }
}

// The GSM8K gold is the integer after the last "####" (tasks/scoring.cpp gsm8k_gold, tested there).
TEST(DataSynthetic, Gsm8kSchemaEndsInTheBoxedAnswer) {
  SyntheticOptions o;
  o.n = 40;
  for (const int level : {1, 2, 3}) {
    o.difficulty = level;
    for (const auto& s : make_synthetic_corpus(o)) {
      const std::string line = to_gsm8k_jsonl(s);
      rapidjson::Document d;
      d.Parse(line.c_str());
      ASSERT_FALSE(d.HasParseError()) << line;
      EXPECT_EQ(std::string(d["question"].GetString()), s.instruction);
      const std::string answer = d["answer"].GetString(), gold = boxed_answer(s.response);
      EXPECT_FALSE(gold.empty());
      EXPECT_EQ(gold.find_first_not_of("0123456789"), std::string::npos) << gold;
      const size_t hashes = answer.rfind("\n#### ");
      ASSERT_NE(hashes, std::string::npos) << answer;
      EXPECT_EQ(answer.substr(hashes + 6), gold);
      // The worked solution without its box: the response up to "\boxed{".
      EXPECT_EQ(answer.substr(0, hashes) + " \\boxed{" + gold + "}", s.response);
    }
  }
  EXPECT_THROW(boxed_answer("no box here"), Error);
}

TEST(DataSynthetic, MakeTaskHoldsOutEveryTestQuestion) {
  const auto dir = std::filesystem::temp_directory_path() / ("hrm_task_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const auto r = test::hrmbench("make-task --out " + dir.string() + " --train 3000 --test 200 --difficulty 1 --seed 4",
                                true);
  ASSERT_EQ(r.status, 0) << r.out;
  const auto train = test::lines(dir / "corpus.jsonl"), held = test::lines(dir / "data" / "gsm8k" / "test.jsonl");
  ASSERT_EQ(train.size(), 3000u);
  ASSERT_EQ(held.size(), 200u);
  std::set<std::string> seen, questions;
  for (const auto& l : train) {
    rapidjson::Document d;
    d.Parse(l.c_str());
    seen.insert(d["instruction"].GetString());
  }
  for (const auto& l : held) {
    rapidjson::Document d;
    d.Parse(l.c_str());
    const std::string q = d["question"].GetString();
    EXPECT_EQ(seen.count(q), 0u) << q;
    EXPECT_TRUE(questions.insert(q).second) << "repeated: " << q;
  }
  const rapidjson::Document b = test::read_json(dir / "baselines.json");
  EXPECT_EQ(b["test"].GetInt(), 200);
  EXPECT_GT(b["test_dropped_as_seen_or_repeated"].GetInt(), 0);  // level 1's question space is small
  EXPECT_LE(b["majority_test_acc"].GetDouble(), b["best_constant_test_acc"].GetDouble());
  EXPECT_GT(b["best_constant_test_acc"].GetDouble(), 0.0);
  EXPECT_LT(b["best_constant_test_acc"].GetDouble(), 0.2);
  // Deterministic, and the same split again for the same seed.
  const auto again = dir.string() + "_again";
  ASSERT_EQ(test::hrmbench("make-task --out " + again + " --train 3000 --test 200 --difficulty 1 --seed 4").status, 0);
  EXPECT_EQ(test::read_text(dir / "data" / "gsm8k" / "test.jsonl"),
            test::read_text(std::filesystem::path(again) / "data" / "gsm8k" / "test.jsonl"));
  // More test items than the level has new questions: refused with the reason.
  const auto many = test::hrmbench("make-task --out " + again + " --train 30000 --test 20000 --difficulty 1", true);
  EXPECT_NE(many.status, 0);
  EXPECT_NE(many.out.find("test questions are new to the training split"), std::string::npos) << many.out;
  EXPECT_NE(test::hrmbench("make-task --out " + again + " --difficulty 4", true).status, 0);
  std::filesystem::remove_all(dir);
  std::filesystem::remove_all(again);
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
