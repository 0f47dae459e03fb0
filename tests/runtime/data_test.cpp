// Training data: tokenized directories written by numpy (scripts/make_train_fixture.py), JSONL through
// the prompt format, and the packer's invariants (every sample once per epoch, budget respected,
// deterministic per seed and epoch, seek reproduces the stream).
#include "runtime/data.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include <unistd.h>

#include "common/error.h"
#include "test_util.h"

namespace hrm {
namespace {

namespace fs = std::filesystem;

std::vector<TokenId> ids(const rapidjson::Value& a) {
  std::vector<TokenId> out;
  for (const auto& v : a.GetArray()) out.push_back(v.GetInt());
  return out;
}

fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("hrm_data_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

TEST(DataTokenized, ReadsPipelineDirectoriesWrittenByNumpy) {
  const fs::path root = test::fixtures() / "train" / "tokenized";
  const TrainCorpus c = load_tokenized_corpus(root);
  const rapidjson::Document want = test::read_json(root / "expected.json");
  ASSERT_EQ(c.size(), static_cast<int64_t>(want.Size()));
  for (int64_t i = 0; i < c.size(); ++i) {
    const auto inst = c.instruction(i), resp = c.response(i);
    EXPECT_EQ(std::vector<TokenId>(inst.begin(), inst.end()), ids(want[i]["instruction"])) << i;
    EXPECT_EQ(std::vector<TokenId>(resp.begin(), resp.end()), ids(want[i]["response"])) << i;
  }
  // One directory alone works too.
  EXPECT_EQ(load_tokenized_corpus(root / "part_b").size(), 3);
}

TEST(DataTokenized, WriterIsByteIdenticalToNumpy) {
  // part_a was written by numpy.save (tokens <u4, indices <i8): reading it and writing it back must
  // reproduce every file byte for byte.
  const fs::path src = test::fixtures() / "train" / "tokenized" / "part_a";
  const TrainCorpus c = load_tokenized_corpus(src);
  const fs::path d = temp_dir("write");
  write_tokenized_corpus(d / "out", c);
  for (const char* f : {"tokens.npy", "inst_start.npy", "inst_len.npy", "resp_start.npy", "resp_len.npy"})
    EXPECT_EQ(test::read_text(d / "out" / f), test::read_text(src / f)) << f;
  EXPECT_EQ(load_tokenized_corpus(d / "out").tokens, c.tokens);
  std::vector<int64_t> big = {int64_t{1} << 40};
  EXPECT_THROW(write_npy_1d(d / "x.npy", big, "<u4"), Error);
  fs::remove_all(d);
}

TEST(DataTokenized, RejectsBadFiles) {
  const fs::path d = temp_dir("bad");
  std::ofstream(d / "tokens.npy") << "not numpy";
  try {
    load_tokenized_corpus(d);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokens.npy"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_tokenized_corpus(d / "missing"), Error);
  fs::remove_all(d);
}

TEST(DataJsonl, UsesPromptFormatAndStopToken) {
  const Tokenizer tok = Tokenizer::from_file((test::fixtures() / "tokenizer" / "tokenizer.json").string());
  const fs::path d = temp_dir("jsonl");
  {
    std::ofstream out(d / "train.jsonl");
    out << R"({"instruction": "What is 2+3?", "response": "2+3=5. \\boxed{5}", "condition": "synth,cot"})" << "\n\n";
    out << R"({"instruction": "Name a colour.", "response": "Blue"})" << "\n";
  }
  const PromptFormat fmt;
  const TrainCorpus c = load_jsonl_corpus(d / "train.jsonl", tok, fmt);
  ASSERT_EQ(c.size(), 2);
  const auto inst0 = c.instruction(0);
  EXPECT_EQ(std::vector<TokenId>(inst0.begin(), inst0.end()), format_prompt(tok, fmt, "What is 2+3?", "synth,cot"));
  std::vector<TokenId> want = tok.encode("Blue");
  want.push_back(stop_token(tok, fmt));
  const auto resp1 = c.response(1);
  EXPECT_EQ(std::vector<TokenId>(resp1.begin(), resp1.end()), want);
  EXPECT_EQ(c.instruction(1).front(), *tok.token_to_id("<|im_start|>"));
  EXPECT_EQ(c.instruction(1).back(), *tok.token_to_id("<|im_end|>"));

  std::ofstream(d / "bad.jsonl") << R"({"instruction": "x"})" << "\n";
  try {
    load_jsonl_corpus(d / "bad.jsonl", tok, fmt);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:1: missing string field \"response\""), std::string::npos)
        << e.what();
  }
  fs::remove_all(d);
}

TrainCorpus synthetic_corpus(int n) {
  TrainCorpus c;
  for (int i = 0; i < n; ++i) {
    std::vector<TokenId> inst(1 + i % 5, i), resp(1 + i % 7, i);
    c.add(inst, resp);
  }
  return c;
}

TEST(DataPacker, EverySampleOncePerEpochWithinBudget) {
  const TrainCorpus c = synthetic_corpus(50);
  Packer p(c, 16, 3);
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::multiset<TokenId> seen;
    int64_t batches = 0;
    while (true) {
      PackedBatch b = p.next();
      if (p.epoch() != epoch) FAIL() << "epoch ended early";
      ASSERT_LE(b.size(), 16);
      ASSERT_FALSE(b.seqs.empty());
      for (const auto& s : b.seqs) seen.insert(b.tokens[s.start]);  // sample i is made of token i
      ++batches;
      if (p.cursor() == static_cast<int64_t>(c.size())) break;
    }
    EXPECT_EQ(seen.size(), 50u);
    EXPECT_EQ(std::set<TokenId>(seen.begin(), seen.end()).size(), 50u);
    EXPECT_EQ(batches, p.batches_per_epoch());
  }
  EXPECT_NE(p.order(0), p.order(1));
  EXPECT_EQ(p.order(1), Packer(c, 16, 3).order(1));
  EXPECT_NE(p.order(0), Packer(c, 16, 4).order(0));
}

TEST(DataPacker, SeekReproducesTheStream) {
  const TrainCorpus c = synthetic_corpus(40);
  Packer a(c, 20, 9);
  for (int i = 0; i < 7; ++i) a.next();
  const int64_t e = a.epoch(), cur = a.cursor();
  Packer b(c, 20, 9);
  b.seek(e, cur);
  for (int i = 0; i < 10; ++i) {
    const PackedBatch x = a.next(), y = b.next();
    EXPECT_EQ(x.tokens, y.tokens);
    EXPECT_EQ(x.labels, y.labels);
  }
  EXPECT_THROW(b.seek(0, 1000), Error);
}

TEST(DataPacker, SkipsSamplesLongerThanTheBudget) {
  TrainCorpus c;
  c.add(std::vector<TokenId>(10, 1), std::vector<TokenId>(10, 1));  // 19 tokens
  c.add(std::vector<TokenId>(2, 2), std::vector<TokenId>(2, 2));    // 3 tokens
  Packer p(c, 8, 0);
  EXPECT_EQ(p.skipped(), 1);
  EXPECT_EQ(p.next().size(), 3);
  EXPECT_THROW(Packer(c, 2, 0), Error);
  EXPECT_EQ(Packer(c, 64, 0).skipped(), 0);
  EXPECT_EQ(Packer(c, 64, 0, /*max_sample_tokens=*/16).skipped(), 1);  // e.g. max_position_embeddings
}

}  // namespace
}  // namespace hrm
