// End-to-end tests of `hrmbench bench replay` and `bench train` through the built binary ($HRM_BINARY): the counts it
// reports (requests, prompt tokens, generated tokens) against what the suites and the tokenizer
// give independently. Never timings: the machine is shared and the numbers would be flaky.
#include <rapidjson/document.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include <unistd.h>

#include "runtime/cuda_backend.h"
#include "runtime/prompt.h"
#include "runtime/tokenizer.h"
#include "test_util.h"

namespace hrm {
namespace {

namespace fs = std::filesystem;

using test::CmdResult;
using test::hrmbench;

fs::path benchmark_data() {
  const char* shared = std::getenv("HRM_SHARED");
  return fs::path(shared ? shared : "../shared") / "data" / "benchmarks";
}

// The prompt and condition of one item as `hrmbench tasks show` prints them: a path independent of
// the replay's own request building.
struct ShownItem {
  std::string condition, prompt;
};

ShownItem show_item(const std::string& suite, int doc_id) {
  const CmdResult r = hrmbench("tasks show " + suite + " --index " + std::to_string(doc_id) + " --data " +
                               benchmark_data().string());
  EXPECT_EQ(r.status, 0) << r.out;
  const std::string cond_key = "\ncondition: ", begin = "----- prompt -----\n", end = "\n----- end -----\n";
  const size_t c = r.out.find(cond_key), b = r.out.find(begin), e = r.out.rfind(end);
  EXPECT_TRUE(c != std::string::npos && b != std::string::npos && e != std::string::npos && b < e) << r.out;
  if (c == std::string::npos || b == std::string::npos || e == std::string::npos || b >= e) return {};
  const size_t cs = c + cond_key.size();
  return {r.out.substr(cs, r.out.find('\n', cs) - cs), r.out.substr(b + begin.size(), e - b - begin.size())};
}

TEST(BenchReplay, CountsMatchSuitesAndTokenizer) {
  if (!fs::is_directory(benchmark_data())) GTEST_SKIP() << "no benchmark data at " << benchmark_data();
  const fs::path tok_path = test::fixtures() / "tokenizer" / "tokenizer.json";
  const fs::path json = fs::temp_directory_path() / ("bench_replay_test_" + std::to_string(getpid()) + ".json");
  constexpr int kLimit = 2;
  const CmdResult r = hrmbench("bench replay --shape tiny --limit " + std::to_string(kLimit) + " --data " +
                               benchmark_data().string() + " --tokenizer " + tok_path.string() + " --quiet --json " +
                               json.string());
  ASSERT_EQ(r.status, 0) << r.out;
  const rapidjson::Document d = test::read_json(json);
  fs::remove(json);
  ASSERT_TRUE(d.IsObject() && d.HasMember("suites") && d["suites"].IsArray());

  // Issue #4's fixed output lengths.
  const std::map<std::string, int64_t> fixed = {{"mmlu", 1}, {"gsm8k", 256}, {"math", 512}, {"drop", 16}, {"arc", 1}};
  const Tokenizer tok = Tokenizer::from_file(tok_path.string());
  const PromptFormat fmt;
  int64_t requests = 0, prompt_tokens = 0, generated = 0;
  std::map<std::string, bool> seen;
  for (const auto& s : d["suites"].GetArray()) {
    const std::string name = s["suite"].GetString();
    ASSERT_TRUE(fixed.count(name)) << name;
    seen[name] = true;
    int64_t expected_prompt = 0;
    for (int i = 0; i < kLimit; ++i) {
      const ShownItem item = show_item(name, i);
      expected_prompt += static_cast<int64_t>(format_prompt(tok, fmt, item.prompt, item.condition).size());
    }
    EXPECT_EQ(s["requests"].GetInt64(), kLimit) << name;
    EXPECT_EQ(s["new_tokens_per_request"].GetInt64(), fixed.at(name)) << name;
    EXPECT_EQ(s["generated_tokens"].GetInt64(), fixed.at(name) * kLimit) << name;
    EXPECT_EQ(s["short_requests"].GetInt64(), 0) << name;
    EXPECT_EQ(s["prompt_tokens"].GetInt64(), expected_prompt) << name;
    EXPECT_GE(s["peak_live"].GetInt64(), 1) << name;
    EXPECT_LE(s["peak_live"].GetInt64(), kLimit) << name;
    requests += s["requests"].GetInt64();
    prompt_tokens += s["prompt_tokens"].GetInt64();
    generated += s["generated_tokens"].GetInt64();
  }
  EXPECT_EQ(seen.size(), fixed.size()) << "all five suites are replayed by default";
  const auto& t = d["total"];
  EXPECT_EQ(t["requests"].GetInt64(), requests);
  EXPECT_EQ(t["prompt_tokens"].GetInt64(), prompt_tokens);
  EXPECT_EQ(t["generated_tokens"].GetInt64(), generated);

  // The Markdown table on stdout carries the same counts (total row).
  const std::string total_row = "| total | " + std::to_string(requests) + " | - | " + std::to_string(prompt_tokens) +
                                " | " + std::to_string(generated) + " |";
  EXPECT_NE(r.out.find(total_row), std::string::npos) << r.out;
}

TEST(BenchReplay, RefusesBadArguments) {
  CmdResult r = hrmbench("bench replay --quiet", /*with_stderr=*/true);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("--model DIR or --shape"), std::string::npos) << r.out;
  r = hrmbench("bench replay --shape tiny --suites nosuch --quiet --data " + benchmark_data().string(), true);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("nosuch"), std::string::npos) << r.out;
  const std::string replay = "bench replay --shape tiny --quiet --limit 1 --data " + benchmark_data().string() +
                             " --tokenizer " + (test::fixtures() / "tokenizer" / "tokenizer.json").string();
  r = hrmbench(replay + " --backend tpu", true);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("--backend tpu: expected cpu or cuda"), std::string::npos) << r.out;
  if (!cuda_available()) {  // without a GPU (or without CUDA in this build) the error says which
    r = hrmbench(replay + " --backend cuda", true);
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.out.find("--backend cuda: "), std::string::npos) << r.out;
  }
}

// bench train on the CPU: the batch it packs (4 samples of 60 tokens in a budget of 256), its table
// and MFU column, and its argument checks. The timings themselves are not asserted.
TEST(BenchTrain, ReportsTheBatchAndRefusesBadArguments) {
  const std::string base = "bench train --vocab 512 --batch-tokens 256 --warmup 0 --steps 1";
  const std::string good = base + " --sample-tokens 60";
  CmdResult r = hrmbench(good + " --peak-tflops 1");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("| tiny | cpu | 240 | 5 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("% |"), std::string::npos) << r.out;
  r = hrmbench(base + " --sample-tokens 300", true);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("exceeds --batch-tokens 256"), std::string::npos) << r.out;
  r = hrmbench(good + " --prompt-ratio 1", true);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("--prompt-ratio"), std::string::npos) << r.out;
  r = hrmbench(good + " --backend tpu", true);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("--backend tpu: expected cpu or cuda"), std::string::npos) << r.out;
  if (!cuda_available()) {
    r = hrmbench(good + " --backend cuda", true);
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.out.find("--backend cuda: "), std::string::npos) << r.out;
  }
}

}  // namespace
}  // namespace hrm
