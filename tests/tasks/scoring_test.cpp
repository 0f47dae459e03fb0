// GSM8K and multiple-choice extraction, aggregation with standard errors, and the self-score check:
// every suite's gold answer, scored as a generation, gets full marks on the full real data.
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tasks/scoring.h"
#include "tasks/task.h"
#include "tests/tasks/test_env.h"

namespace {

using hrm::tasks::testing::data_dir;

TEST(Gsm8kScoring, ExtractionFollowsTheReference) {
  using hrm::tasks::gsm8k_extract;
  EXPECT_EQ(gsm8k_extract("so \\boxed{1,200} dollars"), "1200");
  EXPECT_EQ(gsm8k_extract("\\boxed{$18.00}"), "18");
  EXPECT_EQ(gsm8k_extract("\\boxed{-3.7}"), "-3");       // int(float) truncates toward zero
  EXPECT_EQ(gsm8k_extract("  42 \n"), "42");               // no box: the whole text
  EXPECT_EQ(gsm8k_extract("The answer is 42"), std::nullopt);  // whole text is not a number
  EXPECT_EQ(gsm8k_extract("\\boxed{} 7"), std::nullopt);   // empty box falls back to the whole text
  EXPECT_EQ(gsm8k_extract("\\boxed{1e3}"), "1000");
  EXPECT_EQ(gsm8k_extract("\\boxed{inf}"), std::nullopt);  // OverflowError in int()
  EXPECT_EQ(gsm8k_extract("\\boxed{x}"), std::nullopt);
  EXPECT_EQ(hrm::tasks::gsm8k_gold("... #### 1,234"), 1234);
}

TEST(McqScoring, FirstTokenStrippedUppercased) {
  using hrm::tasks::mcq_extract;
  EXPECT_EQ(mcq_extract(" b", 4), 'B');
  EXPECT_EQ(mcq_extract("D\n", 4), 'D');
  EXPECT_EQ(mcq_extract("E", 4), std::nullopt);  // only as many letters as choices
  EXPECT_EQ(mcq_extract("E", 5), 'E');
  EXPECT_EQ(mcq_extract("A.", 4), std::nullopt);
  EXPECT_EQ(mcq_extract("", 4), std::nullopt);
}

TEST(McqScoring, InvalidReplyEarnsChanceCredit) {
  auto arc = hrm::tasks::load_suite("arc", data_dir());
  auto s = arc->score(121, "Z");  // row 121 has three choices
  EXPECT_FALSE(s.extracted.has_value());
  EXPECT_DOUBLE_EQ(s.metrics[0].second, 1.0 / 3.0);
  EXPECT_EQ(s.metrics[1].second, 1.0);
  auto ok = arc->score(121, " a");
  EXPECT_EQ(ok.metrics[0].second, 1.0);
}

TEST(Aggregate, MeanAndStandardError) {
  auto gsm = hrm::tasks::load_suite("gsm8k", data_dir());
  std::vector<hrm::tasks::SampleScore> scores = {gsm->score(0, "\\boxed{18}"), gsm->score(1, "\\boxed{0}"),
                                                 gsm->score(2, "no"), gsm->score(3, gsm->gold_generation(3))};
  auto a = gsm->aggregate(scores, 5);
  EXPECT_EQ(a.n_scored, 4u);
  EXPECT_EQ(a.n_missing, 5u);
  ASSERT_EQ(a.metrics[0].name, "acc");
  // acc = {1, 0, 0, 1}: mean 0.5, sample sd sqrt(1/3), stderr sqrt(1/3)/2.
  EXPECT_DOUBLE_EQ(a.metrics[0].value, 0.5);
  EXPECT_NEAR(a.metrics[0].stderr_, std::sqrt(1.0 / 3.0) / 2.0, 1e-12);
  EXPECT_DOUBLE_EQ(a.metrics[1].value, 0.25);  // one invalid
}

TEST(Aggregate, UndefinedValuesAreNullInJson) {
  auto gsm = hrm::tasks::load_suite("gsm8k", data_dir());
  auto none = gsm->aggregate({}, 3);
  EXPECT_TRUE(std::isnan(none.metrics[0].value));
  std::vector<hrm::tasks::SampleScore> one = {gsm->score(0, "\\boxed{18}")};
  auto single = gsm->aggregate(one, 0);
  EXPECT_EQ(single.metrics[0].value, 1.0);
  EXPECT_TRUE(std::isnan(single.metrics[0].stderr_));  // no spread from one sample
  EXPECT_EQ(hrm::tasks::aggregate_json(single),
            "{\"suite\":\"gsm8k\",\"n_scored\":1,\"n_missing\":0,\"metrics\":{\"acc\":1.0,\"acc_stderr\":null,"
            "\"invalid\":0.0,\"invalid_stderr\":null}}");
}

TEST(Aggregate, MmluIsMacroOverSubjects) {
  auto mmlu = hrm::tasks::load_suite("mmlu", data_dir());
  // Two subjects: abstract_algebra rows 0,1 both right; the first anatomy row wrong.
  std::vector<hrm::tasks::SampleScore> scores = {mmlu->score(0, mmlu->gold_generation(0)),
                                                 mmlu->score(1, mmlu->gold_generation(1))};
  std::size_t anatomy = 0;
  while (mmlu->score(anatomy, "A").group != "anatomy") ++anatomy;
  std::string wrong = mmlu->target(anatomy) == "A" ? "B" : "A";
  scores.push_back(mmlu->score(anatomy, wrong));
  auto a = mmlu->aggregate(scores, 0);
  ASSERT_EQ(a.metrics[0].name, "acc");
  EXPECT_DOUBLE_EQ(a.metrics[0].value, 0.5);  // (1 + 0) / 2 subjects
  bool found_micro = false;
  for (const auto& m : a.metrics)
    if (m.name == "acc_micro") {
      found_micro = true;
      EXPECT_DOUBLE_EQ(m.value, 2.0 / 3.0);
    }
  EXPECT_TRUE(found_micro);
  EXPECT_EQ(a.groups.size(), 2u);
}

TEST(SelfScore, GoldAnswersScorePerfectlyOnAllSuites) {
  for (const auto& name : hrm::tasks::suite_names()) {
    auto suite = hrm::tasks::load_suite(name, data_dir());
    std::vector<hrm::tasks::SampleScore> scores;
    std::size_t first_bad = suite->size();
    for (std::size_t i = 0; i < suite->size(); ++i) {
      scores.push_back(suite->score(i, suite->gold_generation(i)));
      double primary = scores.back().metrics[0].second;
      if (primary != 1.0 && first_bad == suite->size()) first_bad = i;
    }
    auto a = suite->aggregate(scores, 0);
    EXPECT_EQ(first_bad, suite->size()) << name << ": gold of doc " << first_bad << " does not score 1: '"
                                        << (first_bad < suite->size() ? suite->gold_generation(first_bad) : "") << "'";
    for (const auto& m : a.metrics) {
      if (m.name.rfind("invalid", 0) == 0) {
        EXPECT_EQ(m.value, 0.0) << name << " " << m.name;
      } else {
        EXPECT_EQ(m.value, 1.0) << name << " " << m.name;
      }
    }
  }
}

}  // namespace
