// The reference's prepared layout (tokens.npy + epoch_N/ index arrays, HRM-Text
// prepare_sft_data.py): a fixture written with numpy by scripts/make_prepared_fixture.py is read
// sample for sample and epoch for epoch, holds the tokens our JSONL path makes, the packer trains
// epoch N in epoch_N's order and stops after the last (as dataset_new.py does), the trainer refuses
// a run longer than the epochs, and malformed layouts are rejected naming the file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <numeric>

#include "common/error.h"
#include "common/npy.h"
#include "runtime/config.h"
#include "runtime/data.h"
#include "runtime/optimizer.h"
#include "runtime/trainer.h"
#include "test_util.h"

namespace hrm {
namespace {

namespace fs = std::filesystem;

constexpr const char* kIndexFiles[] = {"inst_start.npy", "inst_len.npy", "resp_start.npy",
                                       "resp_len.npy"};

fs::path fixture() { return test::fixtures() / "train" / "prepared"; }

std::vector<TokenId> ids(const rapidjson::Value& a) {
  std::vector<TokenId> out;
  for (const auto& v : a.GetArray()) out.push_back(v.GetInt());
  return out;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// A copy of the fixture to break.
fs::path copy_fixture(const std::string& name) {
  const fs::path d =
      fs::temp_directory_path() / ("hrm_prepared_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::copy(fixture(), d, fs::copy_options::recursive);
  return d;
}

// A 1-D <i8 array written by numpy (the fixture's index arrays).
std::vector<int64_t> read_i8(const fs::path& path) {
  const std::string bytes = test::read_text(path);
  const NpyHeader h = parse_npy_header(
      std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), path.string());
  EXPECT_EQ(h.descr, "<i8");
  std::vector<int64_t> out(h.shape.at(0));
  std::memcpy(out.data(), bytes.data() + h.data_offset, out.size() * sizeof(int64_t));
  return out;
}

// The samples a batch holds, by their instructions.
std::vector<std::vector<TokenId>> instructions_of(const PackedBatch& b) {
  std::vector<std::vector<TokenId>> out;
  for (const auto& s : b.seqs)
    out.emplace_back(b.tokens.begin() + s.start, b.tokens.begin() + s.start + s.prefix);
  return out;
}

TEST(DataPrepared, ReadsTheReferenceLayoutWrittenByNumpy) {
  const TrainCorpus c = load_tokenized_corpus(fixture());
  const rapidjson::Document want = test::read_json(fixture() / "expected.json");
  const auto& samples = want["samples"];
  const auto& epochs = want["epochs"];
  ASSERT_EQ(c.size(), static_cast<int64_t>(samples.Size()));
  ASSERT_EQ(c.epoch_orders(), static_cast<int64_t>(epochs.Size()));
  // The samples are epoch_0's rows; epoch k's order names them in epoch_k's row order.
  for (int64_t k = 0; k < c.epoch_orders(); ++k) {
    const std::vector<int64_t> order = c.epoch_order(k);
    ASSERT_EQ(order.size(), samples.Size());
    for (size_t r = 0; r < order.size(); ++r) {
      const auto& s = samples[epochs[k][r].GetInt()];
      EXPECT_EQ(c.instruction(order[r]), ids(s["instruction"])) << "epoch " << k << " row " << r;
      EXPECT_EQ(c.response(order[r]), ids(s["response"])) << "epoch " << k << " row " << r;
    }
    if (k == 0) {
      std::vector<int64_t> identity(order.size());
      std::iota(identity.begin(), identity.end(), 0);
      EXPECT_EQ(order, identity);
    }
  }
  EXPECT_NE(c.epoch_order(1), c.epoch_order(2));  // the fixture's shuffles differ
  // Plain tokenized directories have no epoch order.
  EXPECT_EQ(load_tokenized_corpus(test::fixtures() / "train" / "tokenized").epoch_orders(), 0);
}

TEST(DataPrepared, HoldsTheTokensOfOurJsonlPath) {
  // The reference writer's tokens (its instruction = <|im_start|> + condition + text + <|im_end|>,
  // tokenized in pieces) equal what load_jsonl_corpus makes of the same lines (one string).
  const Tokenizer tok =
      Tokenizer::from_file((test::fixtures() / "tokenizer" / "tokenizer.json").string());
  const TrainCorpus jsonl = load_jsonl_corpus(fixture() / "train.jsonl", tok, PromptFormat{});
  const TrainCorpus prepared = load_tokenized_corpus(fixture());
  const rapidjson::Document want = test::read_json(fixture() / "expected.json");
  // Both leave out line 4 (its response is empty), so later lines are one sample earlier.
  ASSERT_EQ(jsonl.size(), prepared.size());
  int compared = 0;
  for (int64_t i = 0; i < prepared.size(); ++i) {
    const int line =
        want["samples"][want["epochs"][0][static_cast<rapidjson::SizeType>(i)].GetInt()]["line"]
            .GetInt();
    ASSERT_NE(line, 4);
    const int64_t sample = line < 4 ? line : line - 1;
    // Line 7 has no "condition": both give it "direct".
    EXPECT_EQ(prepared.instruction(i), jsonl.instruction(sample)) << "line " << line;
    EXPECT_EQ(prepared.response(i), jsonl.response(sample)) << "line " << line;
    ++compared;
  }
  EXPECT_EQ(compared, 7);
}

TEST(DataPrepared, PackerTrainsEpochNInEpochNsOrderAndStopsAfterTheLast) {
  const TrainCorpus c = load_tokenized_corpus(fixture());
  for (const uint64_t seed : {0, 7}) {  // the seed plays no part in the order, as in the reference
    Packer p(c, {.batch_tokens = 64, .seed = seed, .packing = Packing::kGreedy});
    for (int64_t k = 0; k < 3; ++k) EXPECT_EQ(p.order(k), c.epoch_order(k)) << k;
    const int64_t total =
        p.epoch_packing(0).steps + p.epoch_packing(1).steps + p.epoch_packing(2).steps;
    EXPECT_EQ(p.steps_remaining(), total);
    // Greedy with one rank packs the order as it comes: the batches replay epoch_0, epoch_1,
    // epoch_2.
    for (int64_t k = 0; k < 3; ++k) {
      std::vector<std::vector<TokenId>> seen;
      for (int64_t s = p.epoch_packing(k).steps; s > 0; --s) {
        ASSERT_EQ(p.steps_remaining(), s + (k < 2 ? p.epoch_packing(2).steps : 0) +
                                           (k < 1 ? p.epoch_packing(1).steps : 0));
        const PackedBatch b = p.next();
        EXPECT_EQ(p.epoch(), k);
        for (auto& inst : instructions_of(b)) seen.push_back(std::move(inst));
      }
      std::vector<std::vector<TokenId>> want;
      for (const int64_t i : c.epoch_order(k)) want.push_back(c.instruction(i));
      EXPECT_EQ(seen, want) << "epoch " << k;
    }
    EXPECT_EQ(p.steps_remaining(), 0);
    const std::string e = error_of([&] { p.next(); });
    EXPECT_NE(e.find((fixture() / "epoch_3").string() + ": no such epoch directory"),
              std::string::npos)
        << e;
    EXPECT_NE(e.find("has 3 (epoch_0..epoch_2)"), std::string::npos) << e;
  }
  // Multipack and samples over the budget: each epoch still takes its usable samples in its order.
  Packer m(c, {.batch_tokens = 40});
  EXPECT_GT(m.skipped(), 0);
  for (int64_t k = 0; k < 3; ++k) {
    std::vector<int64_t> want;
    for (const int64_t i : c.epoch_order(k))
      if (c.packed_length(i) <= 40) want.push_back(i);
    EXPECT_EQ(m.order(k), want);
  }
  // Seeking into the last epoch leaves only its rest.
  Packer s(c, {.batch_tokens = 64, .packing = Packing::kGreedy});
  s.seek(2, 0);
  EXPECT_EQ(s.steps_remaining(), s.epoch_packing(2).steps);
}

TEST(DataPrepared, TrainerRefusesMoreStepsThanTheEpochsHold) {
  const TrainCorpus c = load_tokenized_corpus(fixture());
  ModelConfig cfg = shape_config("tiny", 8192);
  TrainOptions o;
  o.batch_tokens = 64;
  Packer p(c, {.batch_tokens = 64, .max_sample_tokens = cfg.max_position_embeddings});
  const int64_t available = p.steps_remaining();
  ASSERT_GT(available, 3);
  o.steps = available;
  EXPECT_NO_THROW(Trainer(cfg, init_weights(cfg, 0), c, o, make_cpu_train_backend()));
  o.steps = available + 1;
  const std::string e =
      error_of([&] { Trainer(cfg, init_weights(cfg, 0), c, o, make_cpu_train_backend()); });
  EXPECT_NE(e.find("the run needs " + std::to_string(available + 1) + " steps"), std::string::npos)
      << e;
  EXPECT_NE(e.find("3 epoch directories (epoch_0..epoch_2) pack into " + std::to_string(available)),
            std::string::npos)
      << e;
}

TEST(DataPrepared, RejectsMalformedLayoutsNamingTheFile) {
  // A gap in the epoch numbering.
  fs::path d = copy_fixture("gap");
  fs::rename(d / "epoch_1", d / "epoch_5");
  std::string e = error_of([&] { load_tokenized_corpus(d); });
  EXPECT_NE(e.find((d / "epoch_1").string() + ": missing, but epoch_2/ exists"), std::string::npos)
      << e;
  fs::remove_all(d / "epoch_0");
  e = error_of([&] { load_tokenized_corpus(d); });
  EXPECT_NE(e.find((d / "epoch_0").string() + ": missing"), std::string::npos) << e;
  fs::remove_all(d);

  // An epoch directory without one of its arrays, or with a truncated one.
  d = copy_fixture("missing");
  fs::remove(d / "epoch_2" / "resp_len.npy");
  e = error_of([&] { load_tokenized_corpus(d); });
  EXPECT_NE(e.find((d / "epoch_2" / "resp_len.npy").string() + ": cannot open"), std::string::npos)
      << e;
  fs::copy_file(d / "epoch_1" / "resp_len.npy", d / "epoch_2" / "resp_len.npy");
  fs::resize_file(d / "epoch_2" / "resp_len.npy",
                  fs::file_size(d / "epoch_2" / "resp_len.npy") - 8);
  e = error_of([&] { load_tokenized_corpus(d); });
  EXPECT_NE(e.find((d / "epoch_2" / "resp_len.npy").string()), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  fs::remove_all(d);

  // An epoch that is not a permutation of epoch_0: a repeated sample, a foreign span, fewer rows.
  d = copy_fixture("perm");
  std::array<std::vector<int64_t>, 4> rows;
  for (size_t k = 0; k < 4; ++k) rows[k] = read_i8(fixture() / "epoch_1" / kIndexFiles[k]);
  auto write_epoch_1 = [&](const std::array<std::vector<int64_t>, 4>& a) {
    for (size_t k = 0; k < 4; ++k) write_npy_1d(d / "epoch_1" / kIndexFiles[k], a[k], "<i8");
  };
  auto bad = rows;
  for (auto& col : bad) col[1] = col[0];
  write_epoch_1(bad);
  e = error_of([&] { load_tokenized_corpus(d); });
  EXPECT_NE(e.find((d / "epoch_1").string() + ": sample 1 (instruction " +
                   std::to_string(rows[0][0]) + "+"),
            std::string::npos)
      << e;
  EXPECT_NE(
      e.find("is not one of " + (d / "epoch_0").string() + "'s samples, or appears more often"),
      std::string::npos)
      << e;
  bad = rows;
  bad[0][2] += 1;  // still inside tokens.npy, but no sample starts there
  write_epoch_1(bad);
  e = error_of([&] { load_tokenized_corpus(d); });
  EXPECT_NE(e.find((d / "epoch_1").string() + ": sample 2 (instruction " +
                   std::to_string(rows[0][2] + 1) + "+"),
            std::string::npos)
      << e;
  bad = rows;
  for (auto& col : bad) col.pop_back();
  write_epoch_1(bad);
  e = error_of([&] { load_tokenized_corpus(d); });
  EXPECT_NE(
      e.find((d / "epoch_1").string() + ": 6 samples, but " + (d / "epoch_0").string() + " has 7"),
      std::string::npos)
      << e;
  write_epoch_1(rows);
  EXPECT_EQ(load_tokenized_corpus(d).epoch_orders(), 3);
  fs::remove_all(d);
}

TEST(DataPrepared, RejectsAmbiguousOrNestedLayoutsAndStaleMetadata) {
  // Index arrays at the root beside epoch directories.
  fs::path d = copy_fixture("both");
  for (const char* f : kIndexFiles) fs::copy_file(d / "epoch_0" / f, d / f);
  std::string e = error_of([&] { load_tokenized_corpus(d); });
  EXPECT_NE(e.find(d.string() + ": holds both inst_start.npy and epoch_N/"), std::string::npos)
      << e;
  fs::remove_all(d);

  // A prepared directory inside a root of several.
  const fs::path root =
      fs::temp_directory_path() / ("hrm_prepared_root_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  fs::copy(fixture(), root / "a", fs::copy_options::recursive);
  fs::copy(test::fixtures() / "train" / "tokenized" / "part_b", root / "b",
           fs::copy_options::recursive);
  e = error_of([&] { load_tokenized_corpus(root); });
  EXPECT_NE(e.find((root / "a").string() + ": a prepared directory"), std::string::npos) << e;
  fs::remove_all(root);

  // metadata.json from another run.
  d = copy_fixture("meta");
  std::string meta = test::read_text(d / "metadata.json");
  meta.replace(meta.find("\"total_length\": 219"), 19, "\"total_length\": 300");
  std::ofstream(d / "metadata.json") << meta;
  e = error_of([&] { load_tokenized_corpus(d); });
  EXPECT_NE(e.find((d / "metadata.json").string() + ": total_length 300, but the samples of " +
                   (d / "epoch_0").string() + " hold 219 tokens"),
            std::string::npos)
      << e;
  std::ofstream(d / "metadata.json") << "{not json";
  EXPECT_NE(error_of([&] { load_tokenized_corpus(d); }).find("metadata.json: not a JSON object"),
            std::string::npos);
  fs::remove(d / "metadata.json");  // optional: the loader needs only the arrays
  EXPECT_EQ(load_tokenized_corpus(d).epoch_orders(), 3);
  fs::remove_all(d);
}

}  // namespace
}  // namespace hrm
