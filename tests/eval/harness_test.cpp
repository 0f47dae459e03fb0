// The harness end to end on the tiny_text checkpoint (transformers-made, test tokenizer) and the
// real benchmark data: results, resume after a kill, refusal of changed settings, shards + merge,
// and compare.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "common/error.h"
#include "eval/harness.h"
#include "eval/json_util.h"
#include "eval/samples.h"
#include "eval_test_env.h"

namespace hrm::eval {
namespace {

namespace fs = std::filesystem;

using test::fresh_dir;
fs::path model_dir() { return test::tiny_text_model(); }
fs::path data_dir() { return test::benchmark_data(); }

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// results.json without the fields that legitimately differ between runs (when, how long, where).
std::string stable_results(const fs::path& run) {
  Json d = read_json_file(run / "results.json");
  d.RemoveMember("date");
  d.RemoveMember("timings");
  d.RemoveMember("git_hash");  // the CLI binary and the test binary may come from different configures
  d["config"].RemoveMember("model");
  return to_json(d, true);
}

RunOptions small_run(const fs::path& out) {
  RunOptions o;
  o.model_dir = model_dir();
  o.data_dir = data_dir();
  o.out_dir = out;
  o.suites = {"gsm8k", "mmlu"};
  o.limit = 6;
  o.max_new_tokens = 24;
  o.quiet = true;
  return o;
}

class Harness : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(data_dir() / "gsm8k" / "test.jsonl")) GTEST_SKIP() << "no benchmark data at " << data_dir();
  }
};

TEST_F(Harness, RunWritesResultsAndSamples) {
  const fs::path out = fresh_dir("run");
  run(small_run(out));
  const Json r = read_json_file(out / "results.json");
  EXPECT_EQ(r["schema_version"].GetInt(), kSchemaVersion);
  EXPECT_EQ(r["results"]["gsm8k"]["sample_len"].GetInt(), 6);
  EXPECT_TRUE(r["results"]["mmlu"].HasMember("acc,none"));
  EXPECT_TRUE(r["results"]["mmlu"].HasMember("acc_stderr,none"));
  EXPECT_EQ(r["n-shot"]["mmlu"].GetInt(), 5);
  EXPECT_EQ(r["n-samples"]["gsm8k"]["original"].GetInt(), 1319);
  EXPECT_EQ(r["protocol"]["gsm8k"]["max_new_tokens_cap"].GetInt(), 24);
  const auto samples = read_samples(out / "samples" / "gsm8k.jsonl", false);
  ASSERT_EQ(samples.size(), 6u);
  for (const auto& [doc, s] : samples) {
    EXPECT_EQ(s.prompt_hash.size(), 16u);
    EXPECT_LE(s.generated_tokens, 24);
    EXPECT_FALSE(s.target.empty());
    EXPECT_FALSE(s.metrics.empty());
  }
  // A random model answers multiple choice by chance at best: every reply is invalid (1/n credit).
  EXPECT_GE(r["results"]["mmlu"]["acc,none"].GetDouble(), 0.25);
}

TEST_F(Harness, AllFiveSuitesEndToEnd) {
  const fs::path out = fresh_dir("five");
  RunOptions o = small_run(out);
  o.suites = {};  // all
  o.limit = 2;
  o.max_new_tokens = 8;
  run(o);
  const Json r = read_json_file(out / "results.json");
  for (const char* suite : {"mmlu", "gsm8k", "math", "drop", "arc"}) {
    ASSERT_TRUE(r["results"].HasMember(suite)) << suite;
    EXPECT_EQ(r["results"][suite]["sample_len"].GetInt(), 2) << suite;
    EXPECT_EQ(read_samples(out / "samples" / (std::string(suite) + ".jsonl"), false).size(), 2u) << suite;
  }
  EXPECT_TRUE(r["results"]["drop"].HasMember("f1,none"));
  EXPECT_TRUE(r["results"]["drop"].HasMember("em,none"));
  EXPECT_EQ(r["n-shot"]["arc"].GetInt(), 25);
}

TEST_F(Harness, ResumeAfterKillGivesIdenticalResults) {
  const fs::path straight = fresh_dir("straight"), killed = fresh_dir("killed");
  RunOptions o = small_run(straight);
  o.suites = {"gsm8k"};
  o.limit = 40;
  o.max_batch = 1;  // one item at a time, so the kill lands between items
  run(o);

  const std::string bin = test::hrmbench_binary();
  const std::string cmd = bin + " run --quiet --model " + model_dir().string() + " --data " +
                          data_dir().string() + " --suites gsm8k --limit 40 --max-new-tokens 24 --max-batch 1 --out " +
                          killed.string();
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + cmd + " >/dev/null 2>&1").c_str(), nullptr);
    _exit(127);
  }
  // Kill it once a few samples are on disk, mid-run.
  const fs::path samples = killed / "samples" / "gsm8k.jsonl";
  for (int i = 0; i < 2000; ++i) {
    const std::string s = fs::exists(samples) ? read(samples) : "";
    if (std::count(s.begin(), s.end(), '\n') >= 5) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_FALSE(fs::exists(killed / "results.json")) << "the run finished before it was killed";
  const size_t partial = read_samples(samples, false).size();
  EXPECT_GT(partial, 0u);
  EXPECT_LT(partial, 40u);

  ASSERT_EQ(std::system((cmd + " >/dev/null 2>&1").c_str()), 0);
  EXPECT_EQ(stable_results(killed), stable_results(straight));
  EXPECT_EQ(read(killed / "samples" / "gsm8k.jsonl"), read(straight / "samples" / "gsm8k.jsonl"));
}

TEST_F(Harness, ChangedSettingsAreRefusedWithTheDifferenceNamed) {
  const fs::path out = fresh_dir("changed");
  RunOptions o = small_run(out);
  o.suites = {"mmlu"};
  run(o);
  o.limit = 7;
  try {
    run(o);
    FAIL() << "expected a refusal";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("limit: was 6, now 7"), std::string::npos) << e.what();
  }
  o.limit = 6;
  o.max_new_tokens = 25;
  EXPECT_THROW(run(o), Error);
}

TEST_F(Harness, ShardsMergeToTheSingleRun) {
  const fs::path single = fresh_dir("single"), merged = fresh_dir("merged");
  run(small_run(single));
  std::vector<fs::path> shards;
  for (int i = 0; i < 3; ++i) {
    RunOptions o = small_run(fresh_dir("shard" + std::to_string(i)));
    o.shard_index = i;
    o.shard_count = 3;
    run(o);
    shards.push_back(o.out_dir);
  }
  EXPECT_THROW(merge({shards[0], shards[1]}, merged), Error);  // shard 2/3 missing
  merge(shards, merged);
  EXPECT_EQ(stable_results(merged), stable_results(single));
  EXPECT_EQ(read(merged / "samples" / "gsm8k.jsonl"), read(single / "samples" / "gsm8k.jsonl"));
}

TEST_F(Harness, CompareOfARunWithItselfFindsNoChange) {
  const fs::path a = fresh_dir("cmp_a");
  run(small_run(a));
  std::string md;
  EXPECT_EQ(compare(a, a, {.fail_on_regression_pct = 0.0}, md), 0);
  EXPECT_NE(md.find("| gsm8k | acc | 6 |"), std::string::npos) << md;
  EXPECT_NE(md.find("no significant change"), std::string::npos) << md;
}

TEST_F(Harness, MissingDataAndModelGiveClearErrors) {
  RunOptions o = small_run(fresh_dir("errors"));
  o.data_dir = "/nonexistent/data";
  try {
    run(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/data"), std::string::npos);
  }
  o = small_run(fresh_dir("errors2"));
  o.model_dir = "/nonexistent/model";
  EXPECT_THROW(run(o), Error);
}

}  // namespace
}  // namespace hrm::eval
