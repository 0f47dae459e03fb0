// Streams a corpus through the n-gram index in parallel and turns the hits into per-sample
// statistics. Results are merged with order-independent rules (sums, the k smallest locations,
// the top documents under a strict order), so they do not depend on threads or shards.
// Not for: reading corpus formats (corpus.cpp) or writing result files (the CLI).
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/enumerable_thread_specific.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "common/error.h"
#include "ngram/contam.h"

namespace hrm::ngram {
namespace {

// Work items per thread: enough for load balance when documents differ wildly in length.
constexpr uint64_t kItemsPerThread = 64;
// Upper bound on documents per work item, so progress and balance stay fine-grained.
constexpr uint64_t kMaxDocsPerItem = 4096;
constexpr auto kProgressEvery = std::chrono::seconds(2);
constexpr double kMega = 1e6;

void add_location(std::vector<Location>& locs, Location loc, size_t cap) {
  auto it = std::lower_bound(locs.begin(), locs.end(), loc);
  if (it != locs.end() && *it == loc) return;
  if (locs.size() >= cap && it == locs.end()) return;
  locs.insert(it, loc);
  if (locs.size() > cap) locs.pop_back();
}

// Keeps the best `cap` documents; the heap's front is the worst one kept.
void add_top_doc(std::vector<DocMatches>& heap, const DocMatches& d, size_t cap) {
  if (cap == 0) return;
  if (heap.size() < cap) {
    heap.push_back(d);
    std::push_heap(heap.begin(), heap.end(), more_matched);
    return;
  }
  if (!more_matched(d, heap.front())) return;
  std::pop_heap(heap.begin(), heap.end(), more_matched);
  heap.back() = d;
  std::push_heap(heap.begin(), heap.end(), more_matched);
}

struct WorkItem {
  uint32_t source;
  uint64_t begin, end;
};

struct Local {
  std::unordered_map<uint32_t, std::vector<Location>> where;
  std::vector<DocMatches> top;
  std::vector<uint32_t> matched;
};

// Prints items done, rate and ETA on stderr until stopped.
class Progress {
 public:
  Progress(bool on, uint64_t total_docs) : total_(total_docs) {
    if (on) thread_ = std::thread([this] { run(); });
  }
  ~Progress() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void add(uint64_t docs, uint64_t tokens) {
    docs_.fetch_add(docs, std::memory_order_relaxed);
    tokens_.fetch_add(tokens, std::memory_order_relaxed);
  }

 private:
  void run() {
    const auto start = std::chrono::steady_clock::now();
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, kProgressEvery, [this] { return stop_; })) {
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const uint64_t d = docs_.load(), t = tokens_.load();
      const double frac = total_ ? static_cast<double>(d) / static_cast<double>(total_) : 1.0;
      const double eta = frac > 0 ? secs * (1 - frac) / frac : 0;
      std::fprintf(stderr,
                   "contam scan: %llu/%llu documents, %.1f M tokens, %.1f M tokens/s, ETA %.0f s\n",
                   static_cast<unsigned long long>(d), static_cast<unsigned long long>(total_),
                   t / kMega, secs > 0 ? t / kMega / secs : 0.0, eta);
    }
  }
  uint64_t total_;
  std::atomic<uint64_t> docs_{0}, tokens_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

bool more_matched(const DocMatches& a, const DocMatches& b) {
  if (a.matches != b.matches) return a.matches > b.matches;
  return a.where < b.where;
}

std::pair<uint64_t, uint64_t> shard_range(uint64_t docs, Shard shard) {
  HRM_CHECK(shard.count > 0 && shard.index < shard.count, "bad shard");
  // 128-bit products: docs * index overflows 64 bits for huge sources and shard counts.
  const auto at = [&](uint64_t i) {
    return static_cast<uint64_t>(static_cast<unsigned __int128>(docs) * i / shard.count);
  };
  return {at(shard.index), at(shard.index + 1)};
}

void ScanState::merge(const ScanState& other) {
  if (other.fingerprint != fingerprint || other.hits.size() != hits.size())
    throw Error(
        "contam merge: scan results come from different benchmark indexes (fingerprint or n "
        "differs)");
  if (other.max_locations != max_locations || other.max_top_docs != max_top_docs)
    throw Error("contam merge: scan results were made with different location/top-document limits");
  tokens += other.tokens;
  documents += other.documents;
  for (size_t i = 0; i < hits.size(); ++i) hits[i] += other.hits[i];
  for (const auto& [id, locs] : other.where) {
    auto& mine = where[id];
    for (const Location& l : locs) add_location(mine, l, max_locations);
  }
  top_docs.insert(top_docs.end(), other.top_docs.begin(), other.top_docs.end());
  std::sort(top_docs.begin(), top_docs.end(), more_matched);
  if (top_docs.size() > max_top_docs) top_docs.resize(max_top_docs);
}

ScanState scan(const NgramIndex& index, const std::vector<std::unique_ptr<CorpusSource>>& corpus,
               const ScanOptions& options) {
  if (options.shard.count == 0 || options.shard.index >= options.shard.count)
    throw Error(cat("contam scan: shard ", options.shard.index, "/", options.shard.count,
                    " is invalid, expected i/N with 0 <= i < N"));
  const size_t threads =
      options.threads ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  ScanState state;
  state.fingerprint = index.fingerprint();
  state.max_locations = options.max_locations;
  state.max_top_docs = options.max_top_docs;

  std::vector<WorkItem> items;
  uint64_t total_docs = 0;
  for (size_t s = 0; s < corpus.size(); ++s) {
    const auto [b, e] = shard_range(corpus[s]->num_documents(), options.shard);
    total_docs += e - b;
    const uint64_t per =
        std::clamp<uint64_t>((e - b) / (threads * kItemsPerThread), 1, kMaxDocsPerItem);
    for (uint64_t d = b; d < e; d += per)
      items.push_back({static_cast<uint32_t>(s), d, std::min(e, d + per)});
  }

  const size_t nd = index.num_distinct();
  std::unique_ptr<std::atomic<uint64_t>[]> hits(new std::atomic<uint64_t>[nd]);
  for (size_t i = 0; i < nd; ++i) hits[i].store(0, std::memory_order_relaxed);
  std::atomic<uint64_t> tokens{0}, documents{0};
  tbb::enumerable_thread_specific<Local> locals;
  // A bad corpus line is reported deterministically: the error of the earliest work item wins,
  // whatever thread met an error first. Items after a known error are skipped.
  std::atomic<size_t> first_bad{SIZE_MAX};
  std::mutex error_mutex;
  std::string first_error;
  {
    Progress progress(options.progress, total_docs);
    // The global limit defaults to the core count; raise it so --threads is honoured as given.
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
    tbb::task_arena arena(static_cast<int>(threads));
    arena.execute([&] {
      tbb::parallel_for(
          tbb::blocked_range<size_t>(0, items.size(), 1), [&](const tbb::blocked_range<size_t>& r) {
            Local& local = locals.local();
            for (size_t it = r.begin(); it != r.end(); ++it) {
              if (it > first_bad.load(std::memory_order_relaxed)) continue;
              const WorkItem& w = items[it];
              uint64_t item_tokens = 0;
              try {
                corpus[w.source]->read(
                    w.begin, w.end, [&](uint64_t doc, std::span<const Token> toks) {
                      item_tokens += toks.size();
                      local.matched.clear();
                      index.scan_span(toks, local.matched);
                      if (local.matched.empty()) return;
                      const Location loc{w.source, doc};
                      for (uint32_t id : local.matched) {
                        hits[id].fetch_add(1, std::memory_order_relaxed);
                        add_location(local.where[id], loc, options.max_locations);
                      }
                      add_top_doc(local.top, {loc, local.matched.size(), local.matched.front()},
                                  options.max_top_docs);
                    });
              } catch (const Error& e) {
                const std::lock_guard<std::mutex> lock(error_mutex);
                if (it < first_bad.load()) {
                  first_bad.store(it);
                  first_error = e.what();
                }
                continue;
              }
              tokens.fetch_add(item_tokens, std::memory_order_relaxed);
              documents.fetch_add(w.end - w.begin, std::memory_order_relaxed);
              progress.add(w.end - w.begin, item_tokens);
            }
          });
    });
  }
  if (first_bad.load() != SIZE_MAX) throw Error(first_error);
  state.tokens = tokens.load();
  state.documents = documents.load();
  state.hits.resize(nd);
  for (size_t i = 0; i < nd; ++i) state.hits[i] = hits[i].load(std::memory_order_relaxed);
  for (const Local& local : locals) {
    for (const auto& [id, locs] : local.where) {
      auto& mine = state.where[id];
      for (const Location& l : locs) add_location(mine, l, options.max_locations);
    }
    state.top_docs.insert(state.top_docs.end(), local.top.begin(), local.top.end());
  }
  std::sort(state.top_docs.begin(), state.top_docs.end(), more_matched);
  if (state.top_docs.size() > state.max_top_docs) state.top_docs.resize(state.max_top_docs);
  return state;
}

std::vector<SampleStats> sample_stats(const NgramIndex& index, const ScanState& state) {
  HRM_CHECK(state.fingerprint == index.fingerprint() && state.hits.size() == index.num_distinct(),
            "scan state does not belong to this index");
  const size_t n = index.n();
  std::vector<SampleStats> out(index.num_samples());
  for (size_t s = 0; s < out.size(); ++s) {
    SampleStats& st = out[s];
    st.tokens = index.sample_tokens(s).size();
    const auto ids = index.sample_ngrams(s);
    size_t covered = 0, chain_begin = 0, chain_end = 0;
    bool in_chain = false;
    for (size_t p = 0; p < ids.size(); ++p) {
      if (state.hits[ids[p]] == 0) continue;
      ++st.matches;
      // A matched n-gram that overlaps the current chain extends it; one that starts at or after
      // its end starts a new chain.
      if (!in_chain || p >= chain_end) {
        in_chain = true;
        chain_begin = p;
        covered += n;
      } else {
        covered += p + n - chain_end;
      }
      chain_end = p + n;
      st.longest_match = std::max(st.longest_match, chain_end - chain_begin);
    }
    st.contamination =
        st.tokens ? 100.0 * static_cast<double>(covered) / static_cast<double>(st.tokens) : 0.0;
  }
  return out;
}

}  // namespace hrm::ngram
