// question_texts() on the real benchmark files: row counts, order and the DESIGN §5 text shape.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "common/error.h"
#include "tasks/task.h"
#include "tests/tasks/test_env.h"

namespace {

using hrm::tasks::testing::data_dir;

TEST(QuestionTexts, SuiteNamesAreTheFiveSuites) {
  EXPECT_EQ(hrm::tasks::suite_names(), (std::vector<std::string>{"mmlu", "gsm8k", "math", "drop", "arc"}));
  EXPECT_EQ(hrm::tasks::canonical_suite_name("ARC_Challenge"), "arc");
  EXPECT_THROW(hrm::tasks::canonical_suite_name("hellaswag"), hrm::Error);
}

TEST(QuestionTexts, OneTextPerRowInFileOrder) {
  struct Case {
    const char* suite;
    std::size_t rows;
  };
  for (Case c : {Case{"gsm8k", 1319}, Case{"math", 5000}, Case{"drop", 9536}, Case{"mmlu", 14042}, Case{"arc", 1172}}) {
    auto texts = hrm::tasks::question_texts(c.suite, data_dir());
    EXPECT_EQ(texts.size(), c.rows) << c.suite;
  }
}

TEST(QuestionTexts, ShapesFollowDesignSection5) {
  auto gsm = hrm::tasks::question_texts("gsm8k", data_dir());
  // gsm8k/test.jsonl row 0, typed from the file.
  EXPECT_EQ(gsm[0].rfind("Janet\xE2\x80\x99s ducks lay 16 eggs per day.", 0), 0u);
  auto arc = hrm::tasks::question_texts("arc_challenge", data_dir());
  // arc_challenge/test.jsonl row 0: question then the four choice texts, one per line.
  EXPECT_EQ(arc[0],
            "An astronomer observes that a planet rotates faster after a meteorite impact. Which is the most "
            "likely effect of this increase in rotation?\nPlanetary density will decrease.\nPlanetary years "
            "will become longer.\nPlanetary days will become shorter.\nPlanetary gravity will become stronger.");
  auto drop = hrm::tasks::question_texts("drop", data_dir());
  EXPECT_NE(drop[0].find("\n"), std::string::npos);
}

TEST(QuestionTexts, MissingDirectoryNamesThePath) {
  try {
    hrm::tasks::question_texts("gsm8k", "/nonexistent/data");
    FAIL() << "expected hrm::Error";
  } catch (const hrm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/data"), std::string::npos);
  }
}

}  // namespace
