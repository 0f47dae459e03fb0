// The n-gram index and scan against a brute-force reference (std::map of every corpus n-gram,
// naive coverage), on random corpora with planted overlaps, with forced hash collisions, across
// thread counts and shards.
#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "common/error.h"
#include "ngram/contam.h"

namespace hrm::ngram {
namespace {

using Docs = std::vector<std::vector<Token>>;

class VectorSource : public CorpusSource {
 public:
  explicit VectorSource(Docs docs) : docs_(std::move(docs)) {}
  std::string name() const override { return "<memory>"; }
  uint64_t num_documents() const override { return docs_.size(); }
  void read(uint64_t b, uint64_t e, const std::function<void(uint64_t, std::span<const Token>)>& fn) const override {
    for (uint64_t d = b; d < e; ++d) fn(d, docs_[d]);
  }

 private:
  Docs docs_;
};

struct World {
  Docs samples;
  std::vector<Docs> sources;
};

// Random samples and corpus documents over a small vocabulary; a fraction of the documents get
// slices of samples planted in them (some shorter than n, some longer).
World make_world(uint32_t seed, size_t n, Token vocab, size_t num_samples, size_t num_sources, size_t docs_per_source) {
  std::mt19937 rng(seed);
  auto uni = [&](size_t lo, size_t hi) { return std::uniform_int_distribution<size_t>(lo, hi)(rng); };
  World w;
  for (size_t s = 0; s < num_samples; ++s) {
    std::vector<Token> t(uni(0, 4 * n));
    for (auto& x : t) x = static_cast<Token>(uni(0, vocab - 1));
    w.samples.push_back(std::move(t));
  }
  for (size_t src = 0; src < num_sources; ++src) {
    Docs docs;
    for (size_t d = 0; d < docs_per_source; ++d) {
      std::vector<Token> t(uni(0, 6 * n));
      for (auto& x : t) x = static_cast<Token>(uni(0, vocab - 1));
      if (uni(0, 2) == 0 && !t.empty()) {
        const auto& s = w.samples[uni(0, num_samples - 1)];
        if (!s.empty()) {
          const size_t b = uni(0, s.size() - 1), len = uni(1, s.size() - b);
          const size_t at = uni(0, t.size());
          t.insert(t.begin() + static_cast<std::ptrdiff_t>(at), s.begin() + static_cast<std::ptrdiff_t>(b),
                   s.begin() + static_cast<std::ptrdiff_t>(b + len));
        }
      }
      docs.push_back(std::move(t));
    }
    w.sources.push_back(std::move(docs));
  }
  return w;
}

std::vector<std::unique_ptr<CorpusSource>> corpus_of(const World& w) {
  std::vector<std::unique_ptr<CorpusSource>> c;
  for (const auto& d : w.sources) c.push_back(std::make_unique<VectorSource>(d));
  return c;
}

using Gram = std::vector<Token>;

// Everything the engine reports, computed the obvious way.
struct Reference {
  std::map<Gram, uint64_t> count;             // corpus n-gram -> occurrences
  std::map<Gram, std::set<Location>> where;    // corpus n-gram -> documents
  std::vector<SampleStats> stats;
  std::vector<std::pair<Location, uint64_t>> doc_matches;  // documents with >= 1 benchmark n-gram
};

Reference brute_force(const World& w, size_t n) {
  Reference r;
  std::set<Gram> bench;
  for (const auto& s : w.samples)
    for (size_t p = 0; p + n <= s.size(); ++p) bench.insert(Gram(s.begin() + p, s.begin() + p + n));
  for (uint32_t src = 0; src < w.sources.size(); ++src)
    for (uint64_t d = 0; d < w.sources[src].size(); ++d) {
      const auto& t = w.sources[src][d];
      uint64_t m = 0;
      for (size_t p = 0; p + n <= t.size(); ++p) {
        Gram g(t.begin() + p, t.begin() + p + n);
        ++r.count[g];
        r.where[g].insert({src, d});
        m += bench.count(g);
      }
      if (m) r.doc_matches.push_back({{src, d}, m});
    }
  for (const auto& s : w.samples) {
    SampleStats st;
    st.tokens = s.size();
    std::vector<size_t> matched;
    for (size_t p = 0; p + n <= s.size(); ++p)
      if (r.count.count(Gram(s.begin() + p, s.begin() + p + n))) matched.push_back(p);
    st.matches = matched.size();
    std::vector<bool> covered(s.size(), false);
    for (size_t p : matched)
      for (size_t t = p; t < p + n; ++t) covered[t] = true;
    const auto c = static_cast<size_t>(std::count(covered.begin(), covered.end(), true));
    st.contamination = s.empty() ? 0.0 : 100.0 * static_cast<double>(c) / static_cast<double>(s.size());
    // Chains: union of matched n-grams whose starts are closer than n (they overlap).
    std::vector<size_t> parent(matched.size());
    std::iota(parent.begin(), parent.end(), 0);
    std::function<size_t(size_t)> root = [&](size_t i) { return parent[i] == i ? i : parent[i] = root(parent[i]); };
    for (size_t i = 0; i < matched.size(); ++i)
      for (size_t j = 0; j < i; ++j)
        if (matched[i] - matched[j] < n) parent[root(i)] = root(j);
    std::map<size_t, std::pair<size_t, size_t>> span;
    for (size_t i = 0; i < matched.size(); ++i) {
      auto [it, fresh] = span.try_emplace(root(i), matched[i], matched[i] + n);
      if (!fresh) it->second = {std::min(it->second.first, matched[i]), std::max(it->second.second, matched[i] + n)};
    }
    for (const auto& [_, sp] : span) st.longest_match = std::max(st.longest_match, sp.second - sp.first);
    r.stats.push_back(st);
  }
  return r;
}

void expect_matches_reference(const World& w, size_t n, const NgramIndex& index, const ScanState& state) {
  const Reference ref = brute_force(w, n);
  // Hits and locations of every benchmark n-gram.
  for (size_t s = 0; s < w.samples.size(); ++s) {
    const auto ids = index.sample_ngrams(s);
    ASSERT_EQ(ids.size(), w.samples[s].size() >= n ? w.samples[s].size() - n + 1 : 0);
    for (size_t p = 0; p < ids.size(); ++p) {
      const Gram g(w.samples[s].begin() + p, w.samples[s].begin() + p + n);
      const auto it = ref.count.find(g);
      const uint64_t expected = it == ref.count.end() ? 0 : it->second;
      ASSERT_EQ(state.hits[ids[p]], expected) << "sample " << s << " position " << p;
      const auto wi = state.where.find(ids[p]);
      if (expected == 0) {
        EXPECT_EQ(wi, state.where.end());
        continue;
      }
      ASSERT_NE(wi, state.where.end());
      std::vector<Location> want(ref.where.at(g).begin(), ref.where.at(g).end());
      if (want.size() > state.max_locations) want.resize(state.max_locations);
      EXPECT_EQ(wi->second, want);
    }
  }
  // Every distinct n-gram id is used by exactly the equal windows.
  std::map<Gram, uint32_t> id_of;
  for (size_t s = 0; s < w.samples.size(); ++s) {
    const auto ids = index.sample_ngrams(s);
    for (size_t p = 0; p < ids.size(); ++p) {
      const Gram g(w.samples[s].begin() + p, w.samples[s].begin() + p + n);
      auto [it, fresh] = id_of.try_emplace(g, ids[p]);
      EXPECT_EQ(it->second, ids[p]);
      EXPECT_EQ(index.find(g.data()), ids[p]);
    }
  }
  EXPECT_EQ(id_of.size(), index.num_distinct());
  // Per-sample statistics.
  const auto stats = sample_stats(index, state);
  ASSERT_EQ(stats.size(), ref.stats.size());
  for (size_t s = 0; s < stats.size(); ++s) {
    EXPECT_EQ(stats[s].tokens, ref.stats[s].tokens) << "sample " << s;
    EXPECT_EQ(stats[s].matches, ref.stats[s].matches) << "sample " << s;
    EXPECT_EQ(stats[s].longest_match, ref.stats[s].longest_match) << "sample " << s;
    EXPECT_DOUBLE_EQ(stats[s].contamination, ref.stats[s].contamination) << "sample " << s;
  }
  // Most matched documents.
  auto docs = ref.doc_matches;
  std::sort(docs.begin(), docs.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  if (docs.size() > state.max_top_docs) docs.resize(state.max_top_docs);
  ASSERT_EQ(state.top_docs.size(), docs.size());
  for (size_t i = 0; i < docs.size(); ++i) {
    EXPECT_EQ(state.top_docs[i].where, docs[i].first);
    EXPECT_EQ(state.top_docs[i].matches, docs[i].second);
  }
  uint64_t tokens = 0, documents = 0;
  for (const auto& src : w.sources)
    for (const auto& d : src) tokens += d.size(), ++documents;
  EXPECT_EQ(state.tokens, tokens);
  EXPECT_EQ(state.documents, documents);
}

uint64_t constant_hash(const Token*, size_t) { return 42; }
uint64_t first_token_hash(const Token* w, size_t) { return w[0] % 3; }
// Different windows, same 64-bit value, same low bits: only verification can tell them apart.
uint64_t high_bits_only_hash(const Token* w, size_t n) { return xxh3_window(w, n) & 0xFFFF000000000000ull; }

TEST(NgramIndex, MatchesBruteForceOnRandomCorporaWithPlantedOverlaps) {
  for (size_t n : {3u, 5u, 13u, 20u}) {
    for (uint32_t seed = 1; seed <= 3; ++seed) {
      // A tiny vocabulary makes chance matches common for small n; planted slices cover large n.
      const World w = make_world(seed, n, n <= 5 ? 3 : 50, 40, 3, 60);
      for (bool prefilter : {true, false}) {
        SCOPED_TRACE(testing::Message() << "n=" << n << " seed=" << seed << " prefilter=" << prefilter);
        NgramIndex index(w.samples, {.n = n, .prefilter = prefilter});
        const ScanState state = scan(index, corpus_of(w), {.threads = 2});
        expect_matches_reference(w, n, index, state);
      }
    }
  }
}

TEST(NgramIndex, ForcedHashCollisionsNeverCreateFalseMatches) {
  for (WindowHash h : {constant_hash, first_token_hash, high_bits_only_hash}) {
    const size_t n = 4;
    const World w = make_world(7, n, 4, 25, 2, 40);
    NgramIndex index(w.samples, {.n = n, .hash = h});
    const ScanState state = scan(index, corpus_of(w), {.threads = 2});
    expect_matches_reference(w, n, index, state);
  }
}

TEST(NgramIndex, PlantedSampleIsFullyCovered) {
  const size_t n = 13;
  std::vector<Token> sample(40);
  std::iota(sample.begin(), sample.end(), 1000);
  std::vector<Token> doc(100, 7);
  std::copy(sample.begin(), sample.end(), doc.begin() + 30);
  World w{{sample}, {{doc}}};
  NgramIndex index(w.samples, {.n = n});
  const auto stats = sample_stats(index, scan(index, corpus_of(w)));
  EXPECT_DOUBLE_EQ(stats[0].contamination, 100.0);
  EXPECT_EQ(stats[0].longest_match, 40u);
  EXPECT_EQ(stats[0].matches, 40u - n + 1);
}

TEST(NgramIndex, NgramsNeverCrossDocumentBoundaries) {
  const size_t n = 13;
  std::vector<Token> sample(n);
  std::iota(sample.begin(), sample.end(), 1);
  // The sample split across two adjacent documents must not match.
  World w{{sample}, {{std::vector<Token>(sample.begin(), sample.begin() + 6), std::vector<Token>(sample.begin() + 6, sample.end())}}};
  NgramIndex index(w.samples, {.n = n});
  const ScanState state = scan(index, corpus_of(w));
  EXPECT_EQ(state.hits[0], 0u);
  EXPECT_EQ(sample_stats(index, state)[0].contamination, 0.0);
}

TEST(NgramIndex, DeterministicAcrossThreadCountsAndShards) {
  const World w = make_world(11, 5, 3, 60, 4, 300);
  NgramIndex index(w.samples, {.n = 5});
  const ScanState one = scan(index, corpus_of(w), {.threads = 1});
  for (size_t t : {2u, 4u}) EXPECT_EQ(scan(index, corpus_of(w), {.threads = t}), one) << t << " threads";
  for (uint64_t count : {2u, 3u, 7u}) {
    ScanState merged = scan(index, corpus_of(w), {.threads = 2, .shard = {0, count}});
    for (uint64_t i = 1; i < count; ++i) merged.merge(scan(index, corpus_of(w), {.threads = 3, .shard = {i, count}}));
    EXPECT_EQ(merged, one) << count << " shards";
  }
}

TEST(NgramIndex, ShardRangesPartitionTheDocuments) {
  for (uint64_t docs : {0u, 1u, 5u, 1000u})
    for (uint64_t count : {1u, 3u, 8u}) {
      uint64_t next = 0;
      for (uint64_t i = 0; i < count; ++i) {
        const auto [b, e] = shard_range(docs, {i, count});
        EXPECT_EQ(b, next);
        EXPECT_LE(b, e);
        next = e;
      }
      EXPECT_EQ(next, docs);
    }
}

TEST(NgramIndex, MergeRefusesStatesOfAnotherIndex) {
  const World w = make_world(3, 5, 3, 10, 1, 10);
  NgramIndex a(w.samples, {.n = 5}), b(w.samples, {.n = 6});
  ScanState sa = scan(a, corpus_of(w));
  EXPECT_THROW(sa.merge(scan(b, corpus_of(w))), Error);
}

TEST(NgramIndex, RejectsZeroN) { EXPECT_THROW(NgramIndex({{1, 2, 3}}, {.n = 0}), Error); }

}  // namespace
}  // namespace hrm::ngram
