// DROP EM/F1 against lm-evaluation-harness (the reference's scorer) on the cases of
// tests/fixtures/tasks/drop_parity.jsonl (made by scripts/tasks_make_drop_fixture.py), plus
// hand-checked normalisation cases. Required: 100% EM agreement and F1 within 1e-6.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "tasks/jsonl.h"
#include "tasks/scoring.h"
#include "tests/tasks/test_env.h"

namespace {

using hrm::tasks::DropAnswer;
using hrm::tasks::drop_normalize;

constexpr double kF1Tolerance = 1e-6;

TEST(DropScoring, NormalisationFollowsLmEval) {
  // Worked by hand from drop/utils.py: split on ' ' and '-', lower, strip punctuation unless the
  // token is a number, number -> str(float), drop articles, re-join.
  EXPECT_EQ(drop_normalize("The Lions"), "lions");
  EXPECT_EQ(drop_normalize("a 6-yard pass."), "6.0 yard pass");
  EXPECT_EQ(drop_normalize("1,000 yards"), "1000.0 yards");
  EXPECT_EQ(drop_normalize("1e3"), "1000.0");
  EXPECT_EQ(drop_normalize("Infinity"), "inf");
  EXPECT_EQ(drop_normalize("0.50"), "0.5");
  EXPECT_EQ(drop_normalize("U.S."), "us");
  EXPECT_EQ(drop_normalize("1e16"), "1e+16");
  EXPECT_EQ(drop_normalize(".00001"), "1e-05");
}

TEST(DropScoring, MultiSpanAlignmentAndRounding) {
  // One predicted string against two gold spans: bag {leon, washington, thomas, jones} matches
  // the first span with F1 2/3 and nothing is left for the second; mean 1/3 -> 0.33.
  auto s = hrm::tasks::drop_metrics({"Leon Washington Thomas Jones"}, {"Leon Washington", "Thomas Jones"});
  EXPECT_EQ(s.em, 0.0);
  EXPECT_DOUBLE_EQ(s.f1, 0.33);
  auto both = hrm::tasks::drop_metrics({"thomas jones", "Leon Washington."}, {"Leon Washington", "Thomas Jones"});
  EXPECT_EQ(both.em, 1.0);
  EXPECT_DOUBLE_EQ(both.f1, 1.0);
  // A number in the gold must appear in the prediction for any F1 credit.
  auto num = hrm::tasks::drop_score("4 points", {{"3 points"}});
  EXPECT_EQ(num.f1, 0.0);
  auto three = hrm::tasks::drop_score("3.0 points", {{"3"}, {"three"}});
  EXPECT_DOUBLE_EQ(three.f1, 0.67);
}

TEST(DropScoring, AgreesWithLmEvalOnFixture) {
  std::map<std::size_t, std::vector<DropAnswer>> golds;
  hrm::tasks::for_each_row((hrm::tasks::testing::data_dir() / "drop/validation_simple_evals.jsonl").string(),
                           [&, i = std::size_t{0}](const hrm::tasks::Row& r) mutable {
                             for (auto& a : r.strings("answers")) golds[i].push_back({a});
                             ++i;
                           });
  std::ifstream f(hrm::tasks::testing::fixtures_dir() / "tasks/drop_parity.jsonl");
  ASSERT_TRUE(f) << "missing fixture; run scripts/tasks_make_drop_fixture.py";
  std::string line;
  std::size_t cases = 0, em_bad = 0, f1_bad = 0;
  double worst = 0;
  while (std::getline(f, line)) {
    rapidjson::Document d;
    d.Parse(line.c_str());
    ASSERT_FALSE(d.HasParseError());
    if (!d.HasMember("em")) continue;
    ++cases;
    hrm::tasks::DropScore got;
    std::string shown;
    if (d["p"].IsString() && d.HasMember("g")) {
      shown = d["p"].GetString();
      std::vector<DropAnswer> given;
      for (const auto& g : d["g"].GetArray()) {
        given.emplace_back();
        for (const auto& span : g.GetArray()) given.back().emplace_back(span.GetString());
      }
      got = hrm::tasks::drop_score(shown, given);
    } else if (d["p"].IsString()) {
      shown = d["p"].GetString();
      got = hrm::tasks::drop_score(shown, golds.at(d["d"].GetUint64()));
    } else {
      std::vector<std::string> pred;
      for (const auto& p : d["p"].GetArray()) pred.emplace_back(p.GetString());
      DropAnswer gold;
      for (const auto& g : d["g"][0].GetArray()) gold.emplace_back(g.GetString());
      got = hrm::tasks::drop_metrics(pred, gold);
      shown = "[span list]";
    }
    double em = d["em"].GetDouble(), f1 = d["f1"].GetDouble();
    double err = std::fabs(got.f1 - f1);
    worst = std::max(worst, err);
    if (got.em != em && em_bad++ < 5) ADD_FAILURE() << "EM differs on '" << shown << "' doc " << d["d"].GetInt64() << ": " << got.em << " vs " << em;
    if (!(err <= kF1Tolerance) && f1_bad++ < 5) ADD_FAILURE() << "F1 differs on '" << shown << "' doc " << d["d"].GetInt64() << ": " << got.f1 << " vs " << f1;
  }
  std::printf("DROP parity: %zu cases, EM disagreements %zu, F1 disagreements %zu, worst |dF1| %.3g\n", cases, em_bad, f1_bad, worst);
  EXPECT_GE(cases, 5000u);
  EXPECT_EQ(em_bad, 0u);
  EXPECT_EQ(f1_bad, 0u);
}

}  // namespace
