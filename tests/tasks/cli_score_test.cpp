// End to end: `hrmbench score` and `hrmbench tasks show` on the real data through the built binary.
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "tests/tasks/test_env.h"

namespace {

namespace fs = std::filesystem;
using hrm::tasks::testing::binary;
using hrm::tasks::testing::data_dir;

struct RunResult {
  int status = -1;
  std::string out;
};

RunResult run_cli(const std::string& args) {
  std::string cmd = binary().string() + " " + args + " 2>/dev/null";
  RunResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  std::size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

fs::path temp_file(const std::string& name, const std::string& text) {
  fs::path p = fs::temp_directory_path() / ("hrm_tasks_cli_" + std::to_string(getpid()) + "_" + name);
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

TEST(CliScore, DocIdListRestrictsScoring) {
  ASSERT_TRUE(fs::exists(binary())) << binary() << " not built";
  // A clean-subset file as `contam scan` writes it: doc 0 (gold 18) is scored, doc 1's generation
  // is ignored, doc 5 is listed without a generation (missing).
  fs::path gens = temp_file("subset_gens.jsonl",
                            "{\"doc_id\": 0, \"generation\": \"\\\\boxed{18}\"}\n"
                            "{\"doc_id\": 1, \"generation\": \"\\\\boxed{99}\"}\n");
  fs::path ids = temp_file("subset.txt", "0\n5\n");
  RunResult r = run_cli("score gsm8k --generations " + gens.string() + " --data " + data_dir().string() +
                        " --doc-ids " + ids.string());
  ASSERT_EQ(r.status, 0) << r.out;
  rapidjson::Document agg;
  agg.Parse(r.out.c_str());
  ASSERT_FALSE(agg.HasParseError()) << r.out;
  EXPECT_EQ(agg["n_scored"].GetInt(), 1);
  EXPECT_EQ(agg["n_missing"].GetInt(), 1);
  EXPECT_DOUBLE_EQ(agg["metrics"]["acc"].GetDouble(), 1.0);
  fs::path bad = temp_file("bad_ids.txt", "0\nseven\n");
  r = run_cli("score gsm8k --generations " + gens.string() + " --data " + data_dir().string() + " --doc-ids " +
              bad.string());
  EXPECT_EQ(r.status, 1);
}

TEST(CliScore, ScoresGsm8kGenerationsAndWritesSamples) {
  ASSERT_TRUE(fs::exists(binary())) << binary() << " not built";
  // Rows 0 and 1 of gsm8k/test.jsonl have golds 18 and 3; doc 2 is left out (missing).
  fs::path gens = temp_file("gens.jsonl",
                            "{\"doc_id\": 1, \"generation\": \"It takes 3 bolts: \\\\boxed{3}\", \"extra\": true}\n"
                            "{\"generation\": \"\\\\boxed{17}\", \"doc_id\": 0}\n"
                            "{\"doc_id\": 3, \"generation\": \"I do not know\"}\n");
  fs::path samples = fs::temp_directory_path() / ("hrm_tasks_cli_" + std::to_string(getpid()) + "_samples.jsonl");
  RunResult r = run_cli("score gsm8k --generations " + gens.string() + " --data " + data_dir().string() + " --limit 4 --out " +
              samples.string());
  ASSERT_EQ(r.status, 0) << r.out;
  rapidjson::Document agg;
  agg.Parse(r.out.c_str());
  ASSERT_FALSE(agg.HasParseError()) << r.out;
  EXPECT_EQ(agg["n_scored"].GetInt(), 3);
  EXPECT_EQ(agg["n_missing"].GetInt(), 1);
  EXPECT_NEAR(agg["metrics"]["acc"].GetDouble(), 1.0 / 3.0, 1e-12);
  EXPECT_NEAR(agg["metrics"]["invalid"].GetDouble(), 1.0 / 3.0, 1e-12);
  std::ifstream in(samples);
  std::string line;
  std::vector<rapidjson::Document> rows;
  while (std::getline(in, line)) {
    rows.emplace_back();
    rows.back().Parse(line.c_str());
  }
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0]["doc_id"].GetInt(), 0);
  EXPECT_STREQ(rows[0]["extracted"].GetString(), "17");
  EXPECT_STREQ(rows[0]["target"].GetString(), "18");
  EXPECT_EQ(rows[0]["acc"].GetDouble(), 0.0);
  EXPECT_EQ(rows[1]["acc"].GetDouble(), 1.0);
  EXPECT_EQ(std::string(rows[1]["prompt_hash"].GetString()).size(), 16u);
  EXPECT_TRUE(rows[2]["extracted"].IsNull());
  EXPECT_EQ(rows[2]["invalid"].GetDouble(), 1.0);
  fs::remove(gens);
  fs::remove(samples);
}

TEST(CliScore, DuplicateDocIdIsAnError) {
  ASSERT_TRUE(fs::exists(binary())) << binary() << " not built";
  fs::path gens = temp_file("dup.jsonl", "{\"doc_id\": 0, \"generation\": \"A\"}\n{\"doc_id\": 0, \"generation\": \"B\"}\n");
  std::string cmd = binary().string() + " score arc --generations " + gens.string() + " --data " + data_dir().string() + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  std::array<char, 4096> buf{};
  std::size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int st = pclose(p);
  EXPECT_NE(WEXITSTATUS(st), 0);
  EXPECT_NE(out.find(":2: field 'doc_id': doc_id 0 was already given on line 1"), std::string::npos) << out;
  fs::remove(gens);
}

TEST(CliScore, ShowPrintsPromptAndTarget) {
  ASSERT_TRUE(fs::exists(binary())) << binary() << " not built";
  RunResult r = run_cli("tasks show arc --index 121 --data " + data_dir().string());
  ASSERT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("condition: direct\n"), std::string::npos);
  EXPECT_NE(r.out.find("target: A\n"), std::string::npos);
  EXPECT_NE(r.out.find("C. at the same speed\nAnswer:\n----- end -----"), std::string::npos) << r.out;
}

}  // namespace
