// Prompt construction, checked two ways: (1) a few real rows whose expected prompt is written out
// by hand in this file from the protocol (benchmarks.py's MCQ format, shot counts, DROP layout);
// (2) every row of every suite against hashes made by an independent Python implementation
// (scripts/tasks_make_prompt_fixture.py -> tests/fixtures/tasks/prompt_hashes.jsonl).
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "tasks/task.h"
#include "tests/tasks/test_env.h"

namespace {

using hrm::tasks::testing::data_dir;
using hrm::tasks::testing::fixtures_dir;

std::size_t count(const std::string& s, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + 1)) ++n;
  return n;
}

TEST(Prompts, Gsm8kIsTheQuestionWithCotConditions) {
  auto suite = hrm::tasks::load_suite("gsm8k", data_dir());
  auto req = suite->request(0);
  EXPECT_EQ(req.prompt,
            "Janet\xE2\x80\x99s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes "
            "muffins for her friends every day with four. She sells the remainder at the farmers' market daily "
            "for $2 per fresh duck egg. How much in dollars does she make every day at the farmers' market?");
  EXPECT_EQ(req.conditions, (std::vector<std::string>{"synth", "cot"}));
  EXPECT_EQ(req.max_context, 3072);
  EXPECT_EQ(suite->target(0), "18");
}

TEST(Prompts, MmluFiveDevShotsThenTheTarget) {
  auto suite = hrm::tasks::load_suite("mmlu", data_dir());
  // mmlu/test.jsonl row 0 (abstract_algebra) after the 5 abstract_algebra dev rows, typed by hand.
  const std::string expected =
      "Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.\nA. 0\nB. 1\nC. 2\nD. 3\nAnswer: B\n\n"
      "Statement 1 | If aH is an element of a factor group, then |aH| divides |a|. Statement 2 | If H and K "
      "are subgroups of G then HK is a subgroup of G.\nA. True, True\nB. False, False\nC. True, False\n"
      "D. False, True\nAnswer: B\n\n"
      "Statement 1 | Every element of a group generates a cyclic subgroup of the group. Statement 2 | The "
      "symmetric group S_10 has 10 elements.\nA. True, True\nB. False, False\nC. True, False\nD. False, True\n"
      "Answer: C\n\n"
      "Statement 1| Every function from a finite set onto itself must be one to one. Statement 2 | Every "
      "subgroup of an abelian group is abelian.\nA. True, True\nB. False, False\nC. True, False\n"
      "D. False, True\nAnswer: A\n\n"
      "Find the characteristic of the ring 2Z.\nA. 0\nB. 3\nC. 12\nD. 30\nAnswer: A\n\n"
      "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\nA. 0\nB. 4\n"
      "C. 2\nD. 6\nAnswer:";
  auto req = suite->request(0);
  EXPECT_EQ(req.prompt, expected);
  EXPECT_EQ(req.conditions, (std::vector<std::string>{"direct"}));
  EXPECT_EQ(req.max_new_tokens, 1);
  EXPECT_EQ(req.max_context, 4096);
}

TEST(Prompts, MmluStripsQuestionAndChoices) {
  auto suite = hrm::tasks::load_suite("mmlu", data_dir());
  // Row 390 (business_ethics) starts with a space in the file; _format_mcq strips it.
  auto p = suite->request(390).prompt;
  const std::string tail =
      "\n\n______ is an employee's preferred ratio between work-related and non-work-related activities "
      "which, due to intensification of work and technological shifts, has become a hotly contested issue in "
      "recent years.\nA. Presenteeism\nB. Absenteeism\nC. Work-play balance\nD. Work-life balance\nAnswer:";
  ASSERT_GE(p.size(), tail.size());
  EXPECT_EQ(p.substr(p.size() - tail.size()), tail);
  EXPECT_EQ(suite->target(390), "D");
}

TEST(Prompts, MmluEuropeanHistoryUsesThreeShots) {
  auto suite = hrm::tasks::load_suite("mmlu", data_dir());
  for (std::size_t i = 0; i < suite->size(); ++i) {
    auto s = suite->score(i, "A");
    if (s.group != "high_school_european_history") continue;
    EXPECT_EQ(count(suite->request(i).prompt, "\nAnswer: "), 3u);
    return;
  }
  FAIL() << "no high_school_european_history row";
}

TEST(Prompts, ArcTwentyFiveShotsAndThreeChoiceTarget) {
  auto suite = hrm::tasks::load_suite("arc", data_dir());
  auto p = suite->request(121).prompt;
  // The first validation row opens every prompt; row 121 has three choices (A-C).
  const std::string head =
      "Juan and LaKeisha roll a few objects down a ramp. They want to see which object rolls the farthest. "
      "What should they do so they can repeat their investigation?\nA. Put the objects in groups.\n"
      "B. Change the height of the ramp.\nC. Choose different objects to roll.\n"
      "D. Record the details of the investigation.\nAnswer: D\n\n";
  const std::string tail =
      "\n\nA toy truck rolls over a smooth surface. If the surface is covered with sand, the truck will most "
      "likely roll\nA. slower\nB. faster\nC. at the same speed\nAnswer:";
  EXPECT_EQ(p.substr(0, head.size()), head);
  EXPECT_EQ(p.substr(p.size() - tail.size()), tail);
  EXPECT_EQ(count(p, "\nAnswer: "), 25u);
  // Row 44 uses numeric labels 1-4 with answerKey "2": printed and scored by position.
  EXPECT_EQ(suite->target(44), "B");
  EXPECT_NE(suite->request(44).prompt.find("\nA. Kinetic energy decreases"), std::string::npos);
}

TEST(Prompts, DropExemplarsThenPassageQuestion) {
  auto suite = hrm::tasks::load_suite("drop", data_dir());
  std::ifstream f(fixtures_dir() / "tasks/drop_exemplars.json");
  std::stringstream ss;
  ss << f.rdbuf();
  rapidjson::Document doc;
  doc.Parse(ss.str().c_str());
  ASSERT_TRUE(doc.IsArray());
  ASSERT_EQ(doc.Size(), 3u);
  std::string prefix;
  for (const auto& e : doc.GetArray()) prefix += std::string(e.GetString()) + "\n\n";
  auto p = suite->request(0).prompt;
  EXPECT_EQ(p.substr(0, prefix.size()), prefix);
  const std::string tail =
      "For every 100 females age 18 and over, there were 83.5 males.\n"
      "Q: Which age groups each made up more than 20% of the population?\nA:";
  EXPECT_EQ(p.substr(p.size() - tail.size()), tail);
  EXPECT_EQ(p.substr(prefix.size(), 20), "In the city, the age");
  EXPECT_EQ(suite->request(0).conditions, (std::vector<std::string>{"direct"}));
}

std::uint64_t fnv1a64(const std::string& s) {
  std::uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

TEST(Prompts, EveryRowMatchesThePythonBuilders) {
  std::ifstream f(fixtures_dir() / "tasks/prompt_hashes.jsonl");
  ASSERT_TRUE(f) << "missing fixture; run scripts/tasks_make_prompt_fixture.py";
  std::string line;
  int suites = 0;
  while (std::getline(f, line)) {
    rapidjson::Document d;
    d.Parse(line.c_str());
    if (!d.HasMember("suite")) continue;
    ++suites;
    std::string name = d["suite"].GetString();
    auto suite = hrm::tasks::load_suite(name, data_dir());
    ASSERT_EQ(suite->size(), d["rows"].GetUint64()) << name;
    std::string hashes = d["row_hashes"].GetString();
    std::string targets;
    std::size_t mismatches = 0, first_bad = 0;
    for (std::size_t i = 0; i < suite->size(); ++i) {
      char buf[9];
      std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(fnv1a64(suite->request(i).prompt) & 0xFFFFFFFFu));
      if (hashes.compare(i * 8, 8, buf) != 0 && mismatches++ == 0) first_bad = i;
      if (i) targets += '\n';
      targets += suite->target(i);
    }
    EXPECT_EQ(mismatches, 0u) << name << ": first differing doc_id " << first_bad;
    char th[17];
    std::snprintf(th, sizeof th, "%016llx", static_cast<unsigned long long>(fnv1a64(targets)));
    EXPECT_EQ(std::string(th), d["targets_hash"].GetString()) << name << " targets";
  }
  EXPECT_EQ(suites, 5);
}

}  // namespace
