// The CUDA backend's host-side planning (runtime/cuda/step_plan.h) against the layout kernels.h
// documents: which cache cell each token row goes to, block tables, attention work lists, padding.
// Pure host code: these tests run everywhere the CUDA backend is compiled, GPU or not.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "runtime/cuda/step_plan.h"

namespace hrm::cuda {
namespace {

constexpr int64_t kVocab = 500, kMaxPositions = 300;

std::vector<TokenId> ids(int n, TokenId first) {
  std::vector<TokenId> v(n);
  std::iota(v.begin(), v.end(), first);
  return v;
}

struct Fixture {
  StepLayout L;
  std::vector<int32_t> meta;
  PagedCache cache;
  int PT;

  Fixture(int page_tokens, int64_t pages, int64_t max_rows = 512, int64_t max_seqs = 8)
      : L(StepLayout::make(max_rows, max_seqs, (kMaxPositions + page_tokens - 1) / page_tokens)),
        meta(L.total, -7),
        cache(pages, page_tokens, kMaxPositions, kVocab),
        PT(page_tokens) {}

  const AttnSeq* prefill() const { return reinterpret_cast<const AttnSeq*>(meta.data() + L.prefill_seqs); }
  const AttnSeq* decode() const { return reinterpret_cast<const AttnSeq*>(meta.data() + L.decode_seqs); }
  const AttnTile* tiles() const { return reinterpret_cast<const AttnTile*>(meta.data() + L.tiles); }
  int32_t at(size_t array, int i) const { return meta[array + i]; }

  // Every row of every input against the documented layout; returns the step's plan.
  StepPlan plan_and_check(std::span<const PagedCache::Input> in, bool all_logits, int pad_to = 0) {
    std::vector<int64_t> before;
    for (const auto& x : in) before.push_back(cache.length(x.seq));
    const StepPlan p = cache.plan(in, all_logits, pad_to, L, meta.data());
    int row = 0, out = 0, pre = 0, dec = 0, tile = 0;
    for (size_t i = 0; i < in.size(); ++i) {
      const auto& pages = cache.pages_of(in[i].seq);
      const int n = static_cast<int>(in[i].tokens.size());
      EXPECT_EQ(static_cast<int64_t>(pages.size()), (before[i] + n + PT - 1) / PT) << "sequence " << i;
      for (int j = 0; j < n; ++j, ++row) {
        const int pos = static_cast<int>(before[i]) + j;
        EXPECT_EQ(at(L.tokens, row), in[i].tokens[j]);
        EXPECT_EQ(at(L.positions, row), pos);
        EXPECT_EQ(at(L.row_page, row), pages[pos / PT]);
        EXPECT_EQ(at(L.row_off, row), pos % PT);
      }
      const int32_t table0 = static_cast<int32_t>(i * L.max_pages_per_seq);
      for (size_t k = 0; k < pages.size(); ++k) EXPECT_EQ(at(L.tables, table0 + static_cast<int>(k)), pages[k]);
      const AttnSeq& a = n == 1 ? decode()[dec++] : prefill()[pre];
      EXPECT_EQ(a.row0, row - n);
      EXPECT_EQ(a.n_q, n);
      EXPECT_EQ(a.q_start, before[i]);
      EXPECT_EQ(a.n_kv, before[i] + n);
      EXPECT_EQ(a.table0, table0);
      if (n > 1) {
        for (int q0 = 0; q0 < n; q0 += kPrefillTileRows, ++tile) {
          EXPECT_EQ(tiles()[tile].seq, pre);
          EXPECT_EQ(tiles()[tile].q0, q0);
        }
        ++pre;
      }
      if (all_logits)
        for (int j = 0; j < n; ++j) EXPECT_EQ(at(L.out_rows, out++), row - n + j);
      else
        EXPECT_EQ(at(L.out_rows, out++), row - 1);
    }
    EXPECT_EQ(p.prefill_seqs, pre);
    EXPECT_EQ(p.tiles, tile);
    EXPECT_EQ(p.seqs, std::max<int>(static_cast<int>(in.size()), pad_to));
    EXPECT_EQ(p.rows, row + (p.seqs - static_cast<int>(in.size())));
    EXPECT_EQ(p.decode_seqs, dec + (p.seqs - static_cast<int>(in.size())));
    EXPECT_EQ(p.out_rows, out + (p.seqs - static_cast<int>(in.size())));
    return p;
  }
};

TEST(StepLayout, ArraysAreAlignedAndDisjoint) {
  const StepLayout L = StepLayout::make(1000, 37, 19);
  const std::vector<std::pair<size_t, size_t>> arrays = {
      {L.tokens, 1000}, {L.positions, 1000}, {L.row_page, 1000}, {L.row_off, 1000}, {L.out_rows, 1000},
      {L.prefill_seqs, 37 * 6}, {L.decode_seqs, 37 * 6}, {L.tiles, (1000 / 64 + 37 + 1) * 2},
      {L.tables, 37 * 19}, {L.temperature, 37}, {L.u, 37}, {L.next, 37}};
  for (size_t i = 0; i < arrays.size(); ++i) {
    EXPECT_EQ(arrays[i].first % 4, 0u) << "array " << i << " is not 16-byte aligned";
    EXPECT_LE(arrays[i].first + arrays[i].second, i + 1 < arrays.size() ? arrays[i + 1].first : L.total) << i;
  }
}

class StepPlanPages : public ::testing::TestWithParam<int> {};

// Prefill of ragged prompts (1 token, exactly a page, several tiles), then decode and a response
// chunk, across page boundaries; every row checked against the layout.
TEST_P(StepPlanPages, RowsTablesAndWorkListsFollowTheLayout) {
  Fixture f(GetParam(), /*pages=*/400);
  for (uint64_t s : {10u, 11u, 12u, 13u}) f.cache.open(s);
  const auto a = ids(1, 20), b = ids(16, 40), c = ids(150, 60), d = ids(7, 300);
  std::vector<PagedCache::Input> step1 = {{10, a, 1}, {11, b, 16}, {12, c, 150}, {13, d, 3}};
  StepPlan p = f.plan_and_check(step1, /*all_logits=*/false);
  EXPECT_EQ(p.prefill_seqs, 3);
  EXPECT_EQ(p.tiles, 1 + 3 + 1);  // 16 tokens: one tile; 150: three; 7: one
  EXPECT_EQ(f.prefill()[2].prefix_len, 3);  // sequence 13: 3 of its 7 tokens are prefix
  f.cache.commit(step1);
  // Pages are distinct across sequences and never the scratch page 0.
  std::set<int32_t> seen;
  for (uint64_t s : {10u, 11u, 12u, 13u})
    for (int32_t pg : f.cache.pages_of(s)) {
      EXPECT_GT(pg, 0);
      EXPECT_TRUE(seen.insert(pg).second) << "page " << pg << " given twice";
    }
  EXPECT_EQ(f.cache.pages_free(), 400 - static_cast<int64_t>(seen.size()));
  // Decode steps for all, then a 5-token response chunk for one: positions continue, prefixes stay.
  for (int step = 0; step < 20; ++step) {
    const TokenId t = 7;
    std::vector<PagedCache::Input> dec = {{10, std::span(&t, 1), 0}, {11, std::span(&t, 1), 0},
                                          {12, std::span(&t, 1), 0}};
    const auto chunk = ids(5, 100);
    if (step == 3) dec.push_back({13, chunk, 0});
    f.plan_and_check(dec, /*all_logits=*/step % 2 == 1);
    EXPECT_EQ(f.decode()[0].prefix_len, 1);
    EXPECT_EQ(f.decode()[1].prefix_len, 16);
    f.cache.commit(dec);
  }
  EXPECT_EQ(f.cache.length(12), 170);
  // Closing returns the pages; a new sequence gets them.
  const int64_t free_before = f.cache.pages_free();
  const int64_t held = static_cast<int64_t>(f.cache.pages_of(12).size());
  f.cache.close(12);
  EXPECT_EQ(f.cache.pages_free(), free_before + held);
  EXPECT_THROW(f.cache.length(12), Error);
}

INSTANTIATE_TEST_SUITE_P(PageSizes, StepPlanPages, ::testing::Values(16, 7, 1));

// Decode-only steps padded to a graph bucket: padding rows decode token 0 at position 0 in page 0.
TEST(StepPlan, PaddingRowsUseTheScratchPage) {
  Fixture f(16, 50);
  const TokenId t = 9;
  std::vector<PagedCache::Input> in;
  for (uint64_t s = 0; s < 3; ++s) {
    f.cache.open(s);
    const auto p = ids(5, 30);
    PagedCache::Input pre{s, p, 5};
    f.cache.plan(std::span(&pre, 1), false, 0, f.L, f.meta.data());
    f.cache.commit(std::span(&pre, 1));
    in.push_back({s, std::span(&t, 1), 0});
  }
  const StepPlan p = f.plan_and_check(in, false, /*pad_to=*/8);
  EXPECT_EQ(p.seqs, 8);
  for (int i = 3; i < 8; ++i) {
    const AttnSeq& a = f.decode()[i];
    EXPECT_EQ(a.row0, i);
    EXPECT_EQ(a.n_q, 1);
    EXPECT_EQ(a.n_kv, 1);
    EXPECT_EQ(a.table0, i * f.L.max_pages_per_seq);
    EXPECT_EQ(f.at(f.L.tables, a.table0), 0);
    EXPECT_EQ(f.at(f.L.row_page, i), 0);
    EXPECT_EQ(f.at(f.L.row_off, i), 0);
    EXPECT_EQ(f.at(f.L.tokens, i), 0);
    EXPECT_EQ(f.at(f.L.out_rows, i), i);
  }
}

void expect_error(PagedCache& cache, std::span<const PagedCache::Input> in, Fixture& f, const std::string& what) {
  try {
    cache.plan(in, false, 0, f.L, f.meta.data());
    FAIL() << "no error; expected one mentioning '" << what << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

TEST(StepPlan, BadStepsAreClearErrors) {
  Fixture f(16, /*pages=*/4, /*max_rows=*/64, /*max_seqs=*/2);
  f.cache.open(1);
  f.cache.open(2);
  const auto five = ids(5, 20), big = ids(70, 20), bad = std::vector<TokenId>{3, kVocab};
  using In = PagedCache::Input;
  std::vector<In> not_open = {{9, five, 5}};
  expect_error(f.cache, not_open, f, "sequence 9 is not open");
  std::vector<In> twice = {{1, five, 5}, {1, five, 5}};
  expect_error(f.cache, twice, f, "appears twice");
  std::vector<In> vocab = {{1, bad, 2}};
  expect_error(f.cache, vocab, f, "token id 500 out of range");
  std::vector<In> prefix = {{1, five, 6}};
  expect_error(f.cache, prefix, f, "prefix count 6");
  std::vector<In> rows = {{1, big, 70}};
  expect_error(f.cache, rows, f, "more than max_step_tokens = 64");
  std::vector<In> seqs = {{1, five, 5}};
  EXPECT_THROW(f.cache.plan(seqs, false, /*pad_to=*/3, f.L, f.meta.data()), Error);
  // A response chunk, then prefix tokens after it: refused.
  std::vector<In> ok = {{1, five, 5}};
  f.cache.plan(ok, false, 0, f.L, f.meta.data());
  f.cache.commit(ok);
  std::vector<In> resp = {{1, five, 0}};
  f.cache.plan(resp, false, 0, f.L, f.meta.data());
  f.cache.commit(resp);
  expect_error(f.cache, ok, f, "prefix tokens cannot follow response tokens");
  // Four pages in all: sequence 1 holds one; 60 tokens for sequence 2 need four.
  const auto sixty = ids(60, 20);
  std::vector<In> dry = {{2, sixty, 60}};
  expect_error(f.cache, dry, f, "out of pages");
  // Past the context.
  Fixture g(16, 100);
  g.cache.open(1);
  const auto long_prompt = ids(static_cast<int>(kMaxPositions) + 1, 20);
  std::vector<In> ctx = {{1, long_prompt, 10}};
  expect_error(g.cache, ctx, g, "exceeds max_position_embeddings");
}

}  // namespace
}  // namespace hrm::cuda
