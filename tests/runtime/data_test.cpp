// Training data: tokenized directories written by numpy (scripts/make_train_fixture.py), JSONL through
// the prompt format, and the packers: the reference's multipack step against outputs of the reference
// sampler itself, and for both packings every sample once per epoch across ranks, the budget respected,
// equal step counts per rank, determinism per seed and epoch, and seek reproducing the stream.
// (The memory-mapped reader's own tests are in data_mmap_test.cpp.)
#include "runtime/data.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <random>
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
  const TrainCorpus back = load_tokenized_corpus(d / "out");
  EXPECT_EQ(back.num_tokens(), c.num_tokens());
  for (int64_t i = 0; i < c.size(); ++i) {
    EXPECT_EQ(back.instruction(i), c.instruction(i)) << i;
    EXPECT_EQ(back.response(i), c.response(i)) << i;
  }
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
    out << R"({"instruction": "Say nothing.", "response": "", "condition": "direct"})" << "\n";
    out << R"({"instruction": "Name a colour.", "response": "Blue"})" << "\n";
    out << R"({"instruction": "Untagged.", "response": "Yes", "condition": ""})" << "\n";
  }
  const PromptFormat fmt;
  const TrainCorpus c = load_jsonl_corpus(d / "train.jsonl", tok, fmt);
  ASSERT_EQ(c.size(), 3);  // the empty response is left out, as the reference's preparation does
  const auto inst0 = c.instruction(0);
  EXPECT_EQ(std::vector<TokenId>(inst0.begin(), inst0.end()), format_prompt(tok, fmt, "What is 2+3?", "synth,cot"));
  // No "condition" field: "direct", the reference's default; "" asks for no tag at all.
  EXPECT_EQ(c.instruction(1)[1], *tok.token_to_id(fmt.conditions.at("direct")));
  EXPECT_EQ(c.instruction(1).size(), format_prompt(tok, fmt, "Name a colour.", "direct").size());
  const auto inst2 = c.instruction(2);
  EXPECT_EQ(std::vector<TokenId>(inst2.begin(), inst2.end()), format_prompt(tok, fmt, "Untagged.", ""));
  std::vector<TokenId> want = tok.encode("Blue");
  want.push_back(stop_token(tok, fmt));
  const auto resp1 = c.response(1);
  EXPECT_EQ(std::vector<TokenId>(resp1.begin(), resp1.end()), want);
  EXPECT_EQ(c.instruction(1).front(), *tok.token_to_id("<|im_start|>"));
  EXPECT_EQ(c.instruction(1).back(), *tok.token_to_id("<|im_end|>"));

  const auto expect_error = [&](const std::string& lines, const std::string& want) {
    std::ofstream(d / "bad.jsonl") << lines;
    try {
      load_jsonl_corpus(d / "bad.jsonl", tok, fmt);
      ADD_FAILURE() << "expected an error containing: " << want;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  };
  expect_error(R"({"instruction": "x"})" "\n", "bad.jsonl:1: missing string field \"response\"");
  expect_error(R"({"instruction": "x", "response": "y"})" "\n" R"({"instruction": "x", "response": "y", "condition": "cto"})" "\n",
               "bad.jsonl:2: unknown condition 'cto'");
  expect_error(R"({"instruction": "x", "response": ""})" "\n", "bad.jsonl: no training samples");
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

// Sample i is made of token i, so a batch names its samples by their first tokens.
std::vector<TokenId> samples_of(const PackedBatch& b) {
  std::vector<TokenId> out;
  for (const auto& s : b.seqs) out.push_back(b.tokens[s.start]);
  return out;
}

// A corpus whose samples have the given packed lengths (instruction 1 token, response `len`), each
// made of its own index as token.
TrainCorpus corpus_of_lengths(const std::vector<int64_t>& lengths) {
  TrainCorpus c;
  for (size_t i = 0; i < lengths.size(); ++i) {
    const auto t = static_cast<TokenId>(i);
    c.add(std::vector<TokenId>{t}, std::vector<TokenId>(static_cast<size_t>(lengths[i]), t));
  }
  return c;
}

std::vector<int64_t> random_lengths(int n, int64_t lo, int64_t hi, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (auto& l : out) l = lo + static_cast<int64_t>(rng() % static_cast<uint64_t>(hi - lo + 1));
  return out;
}

PackerOptions opts(Packing packing, int64_t budget, uint64_t seed, int64_t world = 1, int64_t rank = 0,
                   bool drop_last = false) {
  return {.batch_tokens = budget, .seed = seed, .packing = packing, .world_size = world, .rank = rank,
          .drop_last = drop_last};
}

constexpr Packing kBoth[] = {Packing::kGreedy, Packing::kMultipack};

TEST(DataPacker, EverySampleOncePerEpochWithinBudget) {
  const TrainCorpus c = synthetic_corpus(50);
  for (const Packing packing : kBoth) {
    Packer p(c, opts(packing, 16, 3));
    for (int epoch = 0; epoch < 2; ++epoch) {
      std::multiset<TokenId> seen;
      int64_t batches = 0;
      while (true) {
        PackedBatch b = p.next();
        if (p.epoch() != epoch) FAIL() << "epoch ended early";
        ASSERT_LE(b.size(), 16);
        ASSERT_FALSE(b.seqs.empty());
        for (TokenId t : samples_of(b)) seen.insert(t);
        ++batches;
        if (p.cursor() == c.size()) break;
      }
      EXPECT_EQ(seen.size(), 50u) << packing_name(packing);
      EXPECT_EQ(std::set<TokenId>(seen.begin(), seen.end()).size(), 50u) << packing_name(packing);
      EXPECT_EQ(batches, p.epoch_packing(epoch).steps) << packing_name(packing);
    }
    EXPECT_NE(p.order(0), p.order(1));
    EXPECT_EQ(p.order(1), Packer(c, opts(packing, 16, 3)).order(1));
    EXPECT_NE(p.order(0), Packer(c, opts(packing, 16, 4)).order(0));
  }
}

TEST(DataPacker, SeekReproducesTheStream) {
  const TrainCorpus c = synthetic_corpus(40);
  for (const Packing packing : kBoth) {
    Packer a(c, opts(packing, 20, 9));
    for (int i = 0; i < 7; ++i) a.next();
    const int64_t e = a.epoch(), cur = a.cursor();
    Packer b(c, opts(packing, 20, 9));
    b.seek(e, cur);
    for (int i = 0; i < 10; ++i) {
      const PackedBatch x = a.next(), y = b.next();
      EXPECT_EQ(x.tokens, y.tokens);
      EXPECT_EQ(x.labels, y.labels);
    }
    EXPECT_THROW(b.seek(0, 1000), Error);
  }
}

TEST(DataPacker, SkipsSamplesLongerThanTheBudget) {
  TrainCorpus c;
  c.add(std::vector<TokenId>(10, 1), std::vector<TokenId>(10, 1));  // 19 tokens
  c.add(std::vector<TokenId>(2, 2), std::vector<TokenId>(2, 2));    // 3 tokens
  Packer p(c, {.batch_tokens = 8});
  EXPECT_EQ(p.skipped(), 1);
  EXPECT_EQ(p.next().size(), 3);
  EXPECT_THROW(Packer(c, {.batch_tokens = 2}), Error);
  EXPECT_EQ(Packer(c, {.batch_tokens = 64}).skipped(), 0);
  EXPECT_EQ(Packer(c, {.batch_tokens = 64, .max_sample_tokens = 16}).skipped(), 1);  // max_position_embeddings
  EXPECT_THROW(Packer(c, opts(Packing::kMultipack, 64, 0, /*world=*/2, /*rank=*/2)), Error);
  EXPECT_THROW(parse_packing("best-fit"), Error);
  EXPECT_EQ(parse_packing(packing_name(Packing::kGreedy)), Packing::kGreedy);
}

// The lengths of the reference comparison below: a small LCG that Python reproduces exactly.
std::vector<int64_t> lcg_lengths() {
  std::vector<int64_t> out;
  uint64_t x = 7;
  for (int i = 0; i < 60; ++i) {
    x = (x * 1103515245 + 12345) % (uint64_t{1} << 31);
    out.push_back(1 + static_cast<int64_t>((x >> 16) % 40));
  }
  return out;
}

TEST(Multipack, MatchesTheReferenceSampler) {
  // Expected batches: MultipackDistributedBatchSampler(batch_max_length, lengths, num_replicas, rank,
  // drop_last_batch).iter() of sapientinc/HRM-Text multipack_sampler.py (commit 00b4fe5, numba.njit
  // replaced by the identity, numpy 2.4), on lcg_lengths() in their given order. The Packer is given a
  // corpus laid out so that its epoch-0 order has exactly these lengths, so this checks pack_step,
  // the window, the rank split and the drop rules together.
  struct Case {
    int64_t ranks, budget;
    bool drop_last;
    std::vector<std::vector<std::vector<int64_t>>> want;  // [rank][step] positions in the order
  };
  const std::vector<Case> cases = {
      {1, 64, false,
       {{{2, 1, 0}, {3, 4, 5}, {6}, {7, 8}, {9, 10, 11}, {12}, {13}, {14, 16, 15}, {18, 17}, {21, 19, 20},
         {22, 23}, {25, 24}, {26}, {27}, {28}, {29, 30}, {31, 32, 33}, {34, 35}, {36}, {37, 38}, {39, 40}, {41},
         {42, 46, 45, 44, 43}, {47, 48}, {49, 50}, {51, 52}, {54, 53}, {56, 55}, {57, 58}, {59}}}},
      {3, 64, false,
       {{{6, 4, 0}, {13, 10, 11, 15}, {18, 20}, {26, 24}, {28, 30, 33}, {36, 40}, {41, 48, 46, 43}, {51, 52}, {59}},
        {{3, 1, 5}, {9, 8}, {21, 17}, {22, 23}, {31, 32}, {37, 38}, {49, 50, 45}, {54, 55}, {57}},
        {{7, 2}, {12, 14}, {16, 19}, {27, 25}, {29, 34}, {39, 35}, {42, 47, 44}, {56, 53}, {58}}}},
      {4, 50, true,
       {{{6, 0}, {13}, {18, 15}, {26}, {28}, {36}, {41, 44}, {51}},
        {{3, 5}, {9}, {14, 20}, {22}, {27, 33}, {37}, {42, 40}, {54, 55}},
        {{2, 4}, {8, 10}, {16, 19}, {24, 23}, {29, 32}, {35}, {47, 38}, {53, 50, 48}},
        {{7, 1}, {12, 11}, {21, 17}, {25}, {31, 30}, {34}, {39, 46, 45, 43}, {49, 52}}}},
  };
  const std::vector<int64_t> L = lcg_lengths();
  const std::vector<int64_t> perm = Packer(corpus_of_lengths(L), {.batch_tokens = 64, .seed = 5}).order(0);
  std::vector<int64_t> lengths(L.size());
  for (size_t k = 0; k < L.size(); ++k) lengths[static_cast<size_t>(perm[k])] = L[k];
  const TrainCorpus c = corpus_of_lengths(lengths);
  for (const Case& t : cases) {
    for (int64_t r = 0; r < t.ranks; ++r) {
      Packer p(c, opts(Packing::kMultipack, t.budget, 5, t.ranks, r, t.drop_last));
      ASSERT_EQ(p.order(0), perm);
      EXPECT_EQ(p.epoch_packing(0).steps, static_cast<int64_t>(t.want[r].size()));
      for (size_t step = 0; step < t.want[r].size(); ++step) {
        std::vector<TokenId> want;
        for (int64_t pos : t.want[r][step]) want.push_back(static_cast<TokenId>(perm[pos]));
        ASSERT_EQ(samples_of(p.next()), want) << t.ranks << " ranks, rank " << r << ", step " << step;
        ASSERT_EQ(p.epoch(), 0);
      }
      p.next();
      EXPECT_EQ(p.epoch(), 1) << "the epoch must end after the reference's last step";
    }
  }
}

TEST(Multipack, OneRankTakesTheSamplesGreedyTakes) {
  const std::vector<int64_t> L = random_lengths(500, 1, 300, 1);
  for (size_t start = 0; start < L.size();) {
    const std::span<const int64_t> rest(L.data() + start, L.size() - start);
    const PackStep g = pack_step(Packing::kGreedy, rest, 512, 1), m = pack_step(Packing::kMultipack, rest, 512, 1);
    ASSERT_EQ(g.consumed, m.consumed) << start;
    std::vector<int64_t> a = g.ranks[0], b = m.ranks[0];
    std::sort(b.begin(), b.end());
    ASSERT_EQ(a, b) << start;
    // Multipack packs a rank's samples longest first.
    for (size_t k = 1; k < m.ranks[0].size(); ++k) ASSERT_GE(rest[m.ranks[0][k - 1]], rest[m.ranks[0][k]]);
    start += static_cast<size_t>(g.consumed);
  }
}

// Runs every rank's Packer through `epochs` epochs in lockstep and checks the split: the ranks stay at
// the same position, every sample of an epoch appears exactly once across ranks (or, with drop_last,
// the order's prefix before the dropped tail), no batch exceeds the budget, only the final step of an
// epoch may leave a rank empty (never with drop_last), and the step count equals epoch_packing().
// Returns how many steps left a rank without a sample.
int64_t check_split(const TrainCorpus& c, Packing packing, int64_t budget, int64_t world, bool drop_last, int epochs) {
  std::vector<Packer> ranks;
  for (int64_t r = 0; r < world; ++r) ranks.emplace_back(c, opts(packing, budget, 17, world, r, drop_last));
  const int64_t n = ranks[0].usable();
  const std::string what = cat(packing_name(packing), ", ", world, " ranks, drop_last ", drop_last);
  int64_t empty_steps = 0;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    const EpochPacking ep = ranks[0].epoch_packing(epoch);
    std::vector<int> count(static_cast<size_t>(c.size()), 0);
    for (int64_t step = 0; step < ep.steps; ++step) {
      bool empty = false;
      for (Packer& p : ranks) {
        const PackedBatch b = p.next();
        EXPECT_EQ(p.epoch(), epoch) << what << ": step " << step;
        EXPECT_EQ(p.cursor(), ranks[0].cursor()) << what;
        EXPECT_LE(b.size(), budget) << what;
        empty = empty || b.seqs.empty();
        for (TokenId t : samples_of(b)) ++count[static_cast<size_t>(t)];
      }
      if (empty) {
        EXPECT_FALSE(drop_last) << what;
        EXPECT_EQ(step, ep.steps - 1) << what << ": only the last step may leave a rank without a sample";
        ++empty_steps;
      }
    }
    // The next step belongs to the next epoch on every rank.
    const std::vector<int64_t> order = ranks[0].order(epoch);
    const int64_t packed = drop_last ? n - ep.dropped : n;
    for (int64_t k = 0; k < n; ++k)
      EXPECT_EQ(count[static_cast<size_t>(order[k])], k < packed ? 1 : 0) << what << ": order position " << k;
    if (drop_last) {
      EXPECT_GT(ep.dropped, 0) << what << ": the last step is always dropped";
    } else {
      EXPECT_EQ(ep.dropped, 0) << what;
    }
  }
  return empty_steps;
}

TEST(Multipack, SplitsEveryEpochAcrossRanks) {
  const TrainCorpus c = corpus_of_lengths(random_lengths(301, 1, 200, 2));
  for (const Packing packing : kBoth)
    for (const int64_t world : {1, 2, 3, 4, 8})
      for (const bool drop_last : {false, true}) check_split(c, packing, 256, world, drop_last, 3);
  // 7 samples of 3 tokens on 4 ranks of 4 tokens: the first step takes one sample per rank, the final
  // step the other 3, and the rank without a sample gets an empty batch (once per epoch).
  for (const Packing packing : kBoth)
    EXPECT_EQ(check_split(corpus_of_lengths(std::vector<int64_t>(7, 3)), packing, 4, 4, false, 2), 2);
}

TEST(Multipack, DeterministicPerSeedAndEpochsDiffer) {
  const TrainCorpus c = corpus_of_lengths(random_lengths(200, 1, 120, 3));
  // One rank's batches (as sample lists) in one epoch.
  auto epoch_batches = [&](uint64_t seed, int64_t rank, int64_t epoch) {
    Packer p(c, opts(Packing::kMultipack, 256, seed, 2, rank));
    p.seek(epoch, 0);
    std::vector<std::vector<TokenId>> out;
    for (int64_t s = p.epoch_packing(epoch).steps; s > 0; --s) out.push_back(samples_of(p.next()));
    return out;
  };
  EXPECT_EQ(epoch_batches(1, 0, 0), epoch_batches(1, 0, 0));
  EXPECT_NE(epoch_batches(1, 0, 1), epoch_batches(1, 0, 0)) << "epoch 1 must be packed from another order";
  EXPECT_NE(epoch_batches(2, 0, 0), epoch_batches(1, 0, 0));
  EXPECT_NE(epoch_batches(1, 1, 0), epoch_batches(1, 0, 0));
  // Running on from epoch 0 into epoch 1 gives what starting at epoch 1 gives.
  Packer p(c, opts(Packing::kMultipack, 256, 1, 2, 0));
  for (int64_t s = p.epoch_packing(0).steps; s > 0; --s) p.next();
  std::vector<std::vector<TokenId>> e1;
  for (int64_t s = p.epoch_packing(1).steps; s > 0; --s) e1.push_back(samples_of(p.next()));
  EXPECT_EQ(p.epoch(), 1);
  EXPECT_EQ(e1, epoch_batches(1, 0, 1));
}

TEST(Multipack, FillsTheBudgetAtLeastAsWellAsGreedy) {
  // Random lengths of 1..1024 tokens (a tenth of the samples up to the whole budget) in 2048-token
  // batches: with one rank both take the same samples; with more ranks multipack's longest-first
  // placement fills the step's budget (ranks × 2048) better than greedy rank by rank.
  std::vector<int64_t> L = random_lengths(3000, 1, 1024, 4);
  for (size_t i = 0; i < L.size(); i += 10) L[i] *= 2;
  const TrainCorpus c = corpus_of_lengths(L);
  for (const int64_t world : {1, 2, 4, 8, 16}) {
    double g = 0, m = 0;
    for (int epoch = 0; epoch < 3; ++epoch) {
      g += Packer(c, opts(Packing::kGreedy, 2048, 6, world)).epoch_packing(epoch).fill / 3;
      m += Packer(c, opts(Packing::kMultipack, 2048, 6, world)).epoch_packing(epoch).fill / 3;
    }
    std::printf("%2lld ranks: greedy fills %.4f, multipack %.4f of the budget\n", static_cast<long long>(world), g, m);
    if (world == 1) EXPECT_EQ(g, m);
    else EXPECT_GT(m, g + 0.01) << world << " ranks";
  }
}

TEST(Multipack, ResumeFromEpochAndCursorReproducesTheSequence) {
  const TrainCorpus c = corpus_of_lengths(random_lengths(120, 1, 90, 5));
  for (const bool drop_last : {false, true}) {
    const PackerOptions o = opts(Packing::kMultipack, 128, 8, 3, 2, drop_last);
    Packer a(c, o);
    const int64_t steps = a.epoch_packing(0).steps;
    for (int64_t i = 0; i < steps - 1; ++i) a.next();  // stop just before the end of epoch 0
    for (int k = 0; k < 2 * static_cast<int>(steps); ++k) {
      Packer b(c, o);
      b.seek(a.epoch(), a.cursor());
      for (int i = 0; i < 5; ++i) {
        const PackedBatch x = a.next(), y = b.next();
        ASSERT_EQ(x.tokens, y.tokens) << "drop_last " << drop_last << ", resumed at step " << k;
        ASSERT_EQ(a.epoch(), b.epoch());
        ASSERT_EQ(a.cursor(), b.cursor());
      }
    }
  }
}

TEST(Multipack, DropLastEpochOfOneStepIsAnError) {
  const TrainCorpus c = corpus_of_lengths({3, 4, 5});
  Packer p(c, opts(Packing::kMultipack, 64, 0, 1, 0, /*drop_last=*/true));
  EXPECT_EQ(p.epoch_packing(0).steps, 0);
  EXPECT_THROW(p.next(), Error);
  EXPECT_EQ(Packer(c, opts(Packing::kMultipack, 64, 0)).next().seqs.size(), 3u);
}

}  // namespace
}  // namespace hrm
