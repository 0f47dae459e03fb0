// End-to-end tests of `hrmbench contam` (the built binary, HRM_BINARY) on the real GSM8K test set
// with a small JSONL corpus that contains some of its questions: planted rows are found at 100%,
// sharded scans merged equal one scan, restarts skip finished shards, zscore/report produce their
// outputs, and bad corpora fail with clear messages.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "ngram/contam.h"
#include "runtime/tokenizer.h"
#include "tests/ngram/npy_writer.h"

namespace hrm::ngram {
namespace {

namespace fs = std::filesystem;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct CliResult {
  int status;
  std::string out, err;
};

CliResult hrmbench(const std::string& args, const fs::path& dir) {
  const std::string cmd = "'" + env("HRM_BINARY") + "' " + args + " >'" + (dir / "stdout").string() + "' 2>'" +
                          (dir / "stderr").string() + "'";
  const int rc = std::system(cmd.c_str());
  return {WEXITSTATUS(rc), slurp(dir / "stdout"), slurp(dir / "stderr")};
}

std::vector<std::string> lines_of(const fs::path& p) {
  std::vector<std::string> out;
  std::istringstream in(slurp(p));
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

class ContamCli : public testing::Test {
 protected:
  void SetUp() override {
    if (env("HRM_BINARY").empty() || !fs::exists(env("HRM_BINARY"))) GTEST_SKIP() << "HRM_BINARY not built";
    // ctest sets HRM_SHARED; a manual run from the source tree falls back to ../shared.
    const fs::path shared = env("HRM_SHARED").empty() ? fs::path(env("HRM_SOURCE_DIR")) / "../shared" : fs::path(env("HRM_SHARED"));
    data_ = shared / "data/benchmarks";
    ASSERT_TRUE(fs::exists(data_ / "gsm8k/test.jsonl")) << "benchmark data not found under HRM_SHARED";
    dir_ = fs::temp_directory_path() / ("hrm_contam_cli_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // Corpus: GSM8K test questions 3, 10 and 500 verbatim as instructions, filler elsewhere.
    const auto test = lines_of(data_ / "gsm8k/test.jsonl");
    std::ofstream c(dir_ / "corpus.jsonl");
    for (int i = 0; i < 40; ++i) {
      std::string instruction = "Write a short note number " + std::to_string(i) + " about nothing in particular.";
      if (i == 5 || i == 17 || i == 33) {
        rapidjson::Document d;
        d.Parse(test[i == 5 ? 3 : i == 17 ? 10 : 500].c_str());
        instruction = d["question"].GetString();
      }
      rapidjson::Document row(rapidjson::kObjectType);
      row.AddMember("instruction", rapidjson::Value(instruction.c_str(), row.GetAllocator()), row.GetAllocator());
      row.AddMember("response", "Sure, here it is.", row.GetAllocator());
      row.AddMember("condition", "direct", row.GetAllocator());
      std::string json;
      {
        rapidjson::StringBuffer b;
        rapidjson::Writer<rapidjson::StringBuffer> w(b);
        row.Accept(w);
        json = b.GetString();
      }
      c << json << "\n";
    }
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  std::string scan_args(const fs::path& out) const {
    return "contam scan --quiet --words --data '" + data_.string() + "' --suites gsm8k --corpus '" +
           (dir_ / "corpus.jsonl").string() + "' --out '" + out.string() + "'";
  }
  fs::path data_, dir_;
};

rapidjson::Document summary_without_timings(const fs::path& out) {
  rapidjson::Document d;
  const std::string text = slurp(out / "summary.json");
  d.Parse(text.c_str());
  EXPECT_TRUE(d.IsObject());
  EXPECT_TRUE(d.HasMember("timings"));
  d.RemoveMember("timings");
  return d;
}

TEST_F(ContamCli, ScanFindsPlantedQuestionsAndWritesTheContract) {
  const fs::path out = dir_ / "single";
  const CliResult r = hrmbench(scan_args(out), dir_);
  ASSERT_EQ(r.status, 0) << r.err;
  const auto rows = lines_of(out / "gsm8k.jsonl");
  ASSERT_EQ(rows.size(), 1319u);
  for (size_t i = 0; i < rows.size(); ++i) {
    rapidjson::Document d;
    d.Parse(rows[i].c_str());
    ASSERT_EQ(d["doc_id"].GetUint64(), i);
    ASSERT_EQ(d["index"].GetUint64(), i);
    const double c = d["contamination"].GetDouble();
    if (i == 3 || i == 10 || i == 500) {
      EXPECT_DOUBLE_EQ(c, 100.0) << "doc_id " << i;
      EXPECT_EQ(d["longest_match"].GetUint64(), d["tokens"].GetUint64());
      EXPECT_EQ(d["matches"].GetUint64(), d["tokens"].GetUint64() - kDefaultN + 1);
      ASSERT_EQ(d["locations"].Size(), 1u);
      EXPECT_EQ(d["locations"][0][1].GetUint64(), i == 3 ? 5u : i == 10 ? 17u : 33u);
    } else {
      EXPECT_LT(c, kCleanBelow) << "doc_id " << i;
    }
  }
  EXPECT_EQ(lines_of(out / "subsets/gsm8k.dirty.txt"), (std::vector<std::string>{"3", "10", "500"}));
  EXPECT_EQ(lines_of(out / "subsets/gsm8k.not_dirty.txt").size(), 1316u);
  const auto s = summary_without_timings(out);
  EXPECT_EQ(s["corpus"]["documents"].GetUint64(), 40u);
  EXPECT_EQ(s["suites"]["gsm8k"]["subsets"]["dirty"]["count"].GetUint64(), 3u);
  EXPECT_EQ(s["top_documents"].Size(), 3u);
  EXPECT_EQ(s["settings"]["n"].GetUint64(), kDefaultN);
}

TEST_F(ContamCli, ShardsMergedEqualOneScanAndRestartsSkipDoneShards) {
  const fs::path single = dir_ / "single", sharded = dir_ / "sharded";
  ASSERT_EQ(hrmbench(scan_args(single), dir_).status, 0);
  for (int i = 0; i < 3; ++i) {
    const CliResult r = hrmbench(scan_args(sharded) + " --shard " + std::to_string(i) + "/3", dir_);
    ASSERT_EQ(r.status, 0) << r.err;
  }
  const CliResult again = hrmbench(scan_args(sharded) + " --shard 1/3", dir_);
  EXPECT_EQ(again.status, 0);
  EXPECT_NE(again.err.find("already complete"), std::string::npos) << again.err;
  const CliResult m = hrmbench("contam merge --out '" + sharded.string() + "'", dir_);
  ASSERT_EQ(m.status, 0) << m.err;
  EXPECT_EQ(slurp(sharded / "gsm8k.jsonl"), slurp(single / "gsm8k.jsonl"));
  EXPECT_EQ(slurp(sharded / "matched_ngrams.jsonl"), slurp(single / "matched_ngrams.jsonl"));
  for (const char* sub : {"strictly_clean", "clean", "not_clean", "not_dirty", "dirty"})
    EXPECT_EQ(slurp(sharded / "subsets" / (std::string("gsm8k.") + sub + ".txt")),
              slurp(single / "subsets" / (std::string("gsm8k.") + sub + ".txt")));
  EXPECT_TRUE(summary_without_timings(sharded) == summary_without_timings(single));
  // A missing shard makes merge fail and say which.
  fs::remove(sharded / "shards/shard-2-of-3.done");
  const CliResult bad = hrmbench("contam merge --out '" + sharded.string() + "'", dir_);
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("shards not complete: 2"), std::string::npos) << bad.err;
}

TEST_F(ContamCli, ZscoreAndReport) {
  const fs::path out = dir_ / "single";
  ASSERT_EQ(hrmbench(scan_args(out), dir_).status, 0);
  {
    std::ofstream s(dir_ / "samples.jsonl");
    for (int i = 0; i < 1319; ++i)
      s << "{\"doc_id\": " << i << ", \"acc\": " << ((i == 3 || i == 10 || i == 500 || i % 2 == 0) ? 1 : 0) << "}\n";
  }
  const CliResult z = hrmbench("contam zscore --contam '" + out.string() + "' --samples '" + (dir_ / "samples.jsonl").string() +
                             "' --suite gsm8k --json '" + (dir_ / "z.json").string() + "'",
                         dir_);
  ASSERT_EQ(z.status, 0) << z.err;
  EXPECT_NE(z.out.find("Dirty (>= 80%)"), std::string::npos) << z.out;
  EXPECT_NE(z.out.find("strictly clean (0%) re-score"), std::string::npos) << z.out;
  rapidjson::Document j;
  j.Parse(slurp(dir_ / "z.json").c_str());
  ASSERT_TRUE(j.IsObject());
  EXPECT_EQ(j["n"].GetUint64(), 1319u);
  EXPECT_EQ(j["rows"][3]["k"].GetUint64(), 3u);  // dirty
  EXPECT_DOUBLE_EQ(j["rows"][3]["mean"].GetDouble(), 1.0);
  EXPECT_FALSE(j["significant"].GetBool());  // the clean rows sit at the mean
  const CliResult r = hrmbench("contam report --contam '" + out.string() + "' --md '" + (dir_ / "r.md").string() + "' --html '" +
                             (dir_ / "r.html").string() + "'",
                         dir_);
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string md = slurp(dir_ / "r.md"), html = slurp(dir_ / "r.html");
  EXPECT_NE(md.find("| gsm8k | 1319 |"), std::string::npos) << md;
  EXPECT_NE(md.find("Most matched training documents"), std::string::npos);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);  // self-contained, static
  // A sample file naming a doc_id the scan does not have is refused.
  std::ofstream(dir_ / "bad.jsonl") << "{\"doc_id\": 5000, \"acc\": 1}\n";
  const CliResult bad = hrmbench("contam zscore --contam '" + out.string() + "' --samples '" + (dir_ / "bad.jsonl").string() +
                               "' --suite gsm8k",
                           dir_);
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("doc_id 5000"), std::string::npos) << bad.err;
}

TEST_F(ContamCli, IndexReportsItsSize) {
  const CliResult r = hrmbench("contam index --words --data '" + data_.string() + "' --suites gsm8k --n 13", dir_);
  ASSERT_EQ(r.status, 0) << r.err;
  rapidjson::Document d;
  d.Parse(r.out.c_str());
  ASSERT_TRUE(d.IsObject()) << r.out;
  EXPECT_EQ(d["suites"]["gsm8k"]["samples"].GetUint64(), 1319u);
  // Every question of at least n words contributes (words - n + 1) positions.
  uint64_t words = 0, positions = 0;
  for (const auto& line : lines_of(data_ / "gsm8k/test.jsonl")) {
    rapidjson::Document q;
    q.Parse(line.c_str());
    const size_t w = split_words(q["question"].GetString()).size();
    words += w;
    positions += w >= kDefaultN ? w - kDefaultN + 1 : 0;
  }
  EXPECT_EQ(d["suites"]["gsm8k"]["tokens"].GetUint64(), words);
  EXPECT_EQ(d["ngram_positions"].GetUint64(), positions);
  EXPECT_LE(d["distinct_ngrams"].GetUint64(), positions);
}

TEST_F(ContamCli, BadCorporaFailClearly) {
  const CliResult missing = hrmbench("contam scan --quiet --words --data '" + data_.string() +
                                   "' --suites gsm8k --text-fields instruction,answer --corpus '" +
                                   (dir_ / "corpus.jsonl").string() + "' --out '" + (dir_ / "o").string() + "'",
                               dir_);
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.err.find("corpus.jsonl:1: missing field \"answer\""), std::string::npos) << missing.err;
  fs::create_directories(dir_ / "tok");
  const CliResult words_on_ids = hrmbench("contam scan --quiet --words --data '" + data_.string() + "' --suites gsm8k --corpus '" +
                                        (dir_ / "tok").string() + "' --out '" + (dir_ / "o").string() + "'",
                                    dir_);
  EXPECT_NE(words_on_ids.status, 0);
  EXPECT_NE(words_on_ids.err.find("word mode"), std::string::npos) << words_on_ids.err;
  const CliResult neither = hrmbench("contam scan --quiet --data '" + data_.string() + "' --suites gsm8k --corpus '" +
                                   (dir_ / "corpus.jsonl").string() + "' --out '" + (dir_ / "o").string() + "'",
                               dir_);
  EXPECT_NE(neither.status, 0);
  EXPECT_NE(neither.err.find("exactly one of --tokenizer"), std::string::npos) << neither.err;
}

// Token mode: the same corpus as token ids in a tokenized dir (via the test tokenizer) and as JSONL
// text tokenized on the fly gives the same per-sample results.
TEST_F(ContamCli, TokenizedDirAndJsonlAgreeInTokenMode) {
  const fs::path tok_json = fs::path(env("HRM_SOURCE_DIR")) / "tests/fixtures/tokenizer/tokenizer.json";
  ASSERT_TRUE(fs::exists(tok_json)) << tok_json;
  const Tokenizer tok = Tokenizer::from_file(tok_json.string());
  std::vector<uint32_t> ids;
  testing_util::Pairs pairs;
  for (const auto& line : lines_of(dir_ / "corpus.jsonl")) {
    rapidjson::Document d;
    d.Parse(line.c_str());
    for (const char* field : {"instruction", "response"}) {
      const auto t = tok.encode(d[field].GetString());
      (field[0] == 'i' ? pairs.is : pairs.rs).push_back(static_cast<int64_t>(ids.size()));
      (field[0] == 'i' ? pairs.il : pairs.rl).push_back(static_cast<int64_t>(t.size()));
      ids.insert(ids.end(), t.begin(), t.end());
    }
  }
  fs::create_directories(dir_ / "tokenized/part0");
  testing_util::write_tokenized_dir(dir_ / "tokenized/part0", ids, pairs);
  const std::string common = "contam scan --quiet --data '" + data_.string() + "' --suites gsm8k --tokenizer '" + tok_json.string() + "'";
  const CliResult a = hrmbench(common + " --corpus '" + (dir_ / "tokenized").string() + "' --out '" + (dir_ / "a").string() + "'", dir_);
  ASSERT_EQ(a.status, 0) << a.err;
  const CliResult b = hrmbench(common + " --corpus '" + (dir_ / "corpus.jsonl").string() + "' --out '" + (dir_ / "b").string() + "'", dir_);
  ASSERT_EQ(b.status, 0) << b.err;
  EXPECT_EQ(slurp(dir_ / "a/gsm8k.jsonl"), slurp(dir_ / "b/gsm8k.jsonl"));
  const auto rows = lines_of(dir_ / "a/gsm8k.jsonl");
  rapidjson::Document d;
  d.Parse(rows[10].c_str());
  EXPECT_DOUBLE_EQ(d["contamination"].GetDouble(), 100.0);
  EXPECT_EQ(d["locations"][0][1].GetUint64(), 17u);
  // An inconsistent tokenized dir is refused before scanning.
  pairs.rl.back() = static_cast<int64_t>(ids.size());
  testing_util::write_tokenized_dir(dir_ / "tokenized/part0", ids, pairs);
  const CliResult bad = hrmbench(common + " --corpus '" + (dir_ / "tokenized").string() + "' --out '" + (dir_ / "c").string() + "'", dir_);
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("row 39: resp_start.npy"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace hrm::ngram
