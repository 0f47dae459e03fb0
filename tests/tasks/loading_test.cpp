// Loader errors name the file, line and field; row counts differing from the official split warn.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "common/error.h"
#include "tasks/jsonl.h"
#include "tasks/task.h"
#include "tests/tasks/test_env.h"

namespace {

namespace fs = std::filesystem;

std::string error_of(const std::string& text) {
  std::istringstream in(text);
  try {
    hrm::tasks::for_each_row(in, "gens.jsonl", [](const hrm::tasks::Row& r) {
      (void)r.string("question");
      (void)r.integer("answer");
    });
  } catch (const hrm::Error& e) {
    return e.what();
  }
  return "";
}

TEST(Loading, ErrorsNameFileLineAndField) {
  EXPECT_EQ(error_of("{\"question\": \"q\", \"answer\": 1}\n\n{\"answer\": 2}\n"),
            "gens.jsonl:3: field 'question': missing");
  EXPECT_EQ(error_of("{\"question\": 5, \"answer\": 1}\n"), "gens.jsonl:1: field 'question': expected a string, got number");
  EXPECT_EQ(error_of("{\"question\": \"q\", \"answer\": \"1\"}\n"),
            "gens.jsonl:1: field 'answer': expected an integer, got string");
  EXPECT_NE(error_of("{\"question\": \"q\",\n").find("gens.jsonl:1: invalid JSON"), std::string::npos);
  EXPECT_EQ(error_of("[1, 2]\n"), "gens.jsonl:1: expected a JSON object, got array");
  EXPECT_NE(error_of("{\"question\": \"\xff\", \"answer\": 1}\n").find("gens.jsonl:1: invalid JSON"), std::string::npos);
}

class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("hrm_tasks_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" + std::to_string(reinterpret_cast<std::uintptr_t>(this)))) {
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  void write(const std::string& rel, const std::string& text) const {
    fs::create_directories((path_ / rel).parent_path());
    std::ofstream(path_ / rel) << text;
  }

 private:
  fs::path path_;
};

TEST(Loading, SuiteErrorsPointIntoTheDataFile) {
  TempDir dir;
  dir.write("gsm8k/test.jsonl", "{\"question\": \"q\", \"answer\": \"x #### 5\"}\n{\"question\": \"q\", \"answer\": \"no hashes\"}\n");
  try {
    hrm::tasks::load_suite("gsm8k", dir.path());
    FAIL() << "expected hrm::Error";
  } catch (const hrm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("gsm8k/test.jsonl:2: field 'answer'"), std::string::npos) << e.what();
  }
  dir.write("arc_challenge/validation.jsonl", "");
  EXPECT_THROW(hrm::tasks::load_suite("arc", dir.path()), hrm::Error);
}

TEST(Loading, RowCountDifferenceWarnsOnStderr) {
  TempDir dir;
  dir.write("gsm8k/test.jsonl", "{\"question\": \"q\", \"answer\": \"x #### 5\"}\n");
  ::testing::internal::CaptureStderr();
  auto suite = hrm::tasks::load_suite("gsm8k", dir.path());
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(suite->size(), 1u);
  EXPECT_NE(err.find("1 rows, the official split has 1319"), std::string::npos) << err;
}

TEST(Loading, StructuredDropSchemaIsPreferredWhenPresent) {
  TempDir dir;
  // One EleutherAI/drop row: a two-span answer plus a validated number answer, column-wise.
  dir.write("drop/validation.jsonl",
            "{\"section_id\": \"s\", \"query_id\": \"q\", \"passage\": \" P\", \"question\": \"Q?\", "
            "\"answer\": {\"number\": \"\", \"date\": {\"day\": \"\", \"month\": \"\", \"year\": \"\"}, "
            "\"spans\": [\"Tom\", \"Ann\"]}, \"validated_answers\": {\"number\": [\"3\"], "
            "\"date\": [{\"day\": \"\", \"month\": \"\", \"year\": \"\"}], \"spans\": [[]]}}\n");
  ::testing::internal::CaptureStderr();
  auto drop = hrm::tasks::load_suite("drop", dir.path());
  ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(drop->info().eval_file, "drop/validation.jsonl");
  EXPECT_EQ(drop->target(0), "Tom, Ann | 3");
  EXPECT_EQ(drop->score(0, "3").metrics[0].second, 1.0);
  // One predicted string cannot match both spans exactly (the reference passes one string).
  EXPECT_EQ(drop->score(0, "Tom Ann").metrics[0].second, 0.0);
  // The passage keeps its leading space; the whole prompt is then stripped (it starts with exemplars).
  EXPECT_NE(drop->request(0).prompt.find("\n\n P\nQ: Q?\nA:"), std::string::npos);
}

}  // namespace
