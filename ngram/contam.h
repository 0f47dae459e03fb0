// The contamination engine: benchmark n-gram index, parallel corpus scan, per-sample statistics,
// clean subsets and the contamination Z-test (DESIGN §5).
//
// The index holds every n-gram of the benchmark samples (token ids, or word ids in word mode) in an
// open-addressing table keyed by a 64-bit hash of the window; every candidate is verified against
// the stored tokens, so hash collisions never create matches. A corpus is streamed through it
// document by document (n-grams never cross documents), in parallel, and the result (a ScanState)
// is independent of the thread count and of how the corpus was split into shards.
// Not for: tokenizing text with the model tokenizer (callers pass a TextTokenizer callback) or
// knowing about benchmark suites (the CLI maps samples to suites and doc_ids).
//
// Example:
//   hrm::ngram::NgramIndex index(samples, {.n = 13});
//   std::vector<std::unique_ptr<hrm::ngram::CorpusSource>> corpus;
//   corpus.push_back(hrm::ngram::open_tokenized_dir("data/web_00"));
//   hrm::ngram::ScanState state = hrm::ngram::scan(index, corpus, {.threads = 8});
//   std::vector<hrm::ngram::SampleStats> stats = hrm::ngram::sample_stats(index, state);
#pragma once

#include "common/npy.h"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hrm::ngram {

using Token = uint32_t;

// Hash of an n-token window; injectable so tests can force collisions.
using WindowHash = uint64_t (*)(const Token* window, size_t n);
// XXH3-64 of the window's bytes: the default key of the index.
uint64_t xxh3_window(const Token* window, size_t n);

// The paper uses n = 13 and n = 20 (DESIGN §5); 13 is the Llama 2 default.
constexpr size_t kDefaultN = 13;

struct IndexOptions {
  size_t n = kDefaultN;
  WindowHash hash = xxh3_window;
  // A blocked Bloom filter over a cheap rolling hash, consulted before the table. It lives in
  // cache while the table does not, and almost every corpus window misses (docs/PERFORMANCE.md).
  bool prefilter = true;
};

inline constexpr uint32_t kNoNgram = UINT32_MAX;

class NgramIndex {
 public:
  explicit NgramIndex(std::vector<std::vector<Token>> samples, IndexOptions options = {});

  size_t n() const { return n_; }
  size_t num_samples() const { return sample_begin_.size() - 1; }
  // Distinct n-grams (ids 0..num_distinct()-1) and n-gram positions over all samples.
  size_t num_distinct() const { return rep_.size(); }
  size_t num_positions() const { return position_ids_.size(); }
  size_t memory_bytes() const;
  // Identifies the indexed content and n, so shard results of different indexes never merge.
  uint64_t fingerprint() const { return fingerprint_; }

  std::span<const Token> sample_tokens(size_t sample) const;
  // The distinct n-gram id at each position of the sample (empty if shorter than n).
  std::span<const uint32_t> sample_ngrams(size_t sample) const;
  // A sample containing the n-gram (the first one, in sample order).
  size_t sample_of(uint32_t id) const;

  // The id of the n-gram equal to window[0..n), or kNoNgram. Verified against the stored tokens.
  uint32_t find(const Token* window) const;
  // Appends the id of every indexed n-gram occurring in tokens (one per position, in order).
  void scan_span(std::span<const Token> tokens, std::vector<uint32_t>& out) const;

 private:
  uint32_t find_hashed(const Token* window, uint64_t hash) const;
  void insert_slot(uint64_t hash, uint32_t id);
  void build_prefilter();

  size_t n_;
  WindowHash hash_;
  std::vector<Token> tokens_;            // all samples, concatenated
  std::vector<size_t> sample_begin_;     // sample s is tokens_[sample_begin_[s], sample_begin_[s+1])
  std::vector<size_t> ngram_begin_;      // its positions are position_ids_[ngram_begin_[s], ...)
  std::vector<uint32_t> position_ids_;   // distinct id per n-gram position
  std::vector<uint32_t> rep_;            // distinct id -> offset of its first occurrence in tokens_
  std::vector<uint64_t> slots_;          // (hash tag << 32) | (id + 1); 0 = empty
  uint64_t slot_mask_ = 0;
  std::vector<uint64_t> bloom_;          // empty when the prefilter is off
  uint64_t bloom_mask_ = 0;
  uint64_t roll_pow_ = 1;                // kRollBase^(n-1), to drop the oldest token
  uint64_t fingerprint_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Corpora

// Text -> token ids; must be safe to call from several threads at once.
using TextTokenizer = std::function<std::vector<Token>(std::string_view)>;

// One corpus input (a tokenized directory, a JSONL file, text files) as a list of documents.
class CorpusSource {
 public:
  virtual ~CorpusSource() = default;
  virtual std::string name() const = 0;
  virtual uint64_t num_documents() const = 0;
  // Calls fn(doc, tokens) for each document in [begin, end), in order. Safe to call concurrently
  // on disjoint ranges; `tokens` is valid only during the call. Throws hrm::Error on bad input.
  virtual void read(uint64_t begin, uint64_t end,
                    const std::function<void(uint64_t, std::span<const Token>)>& fn) const = 0;
};

// The data pipeline's tokenized directory (DESIGN §3): tokens.npy (<u4/<i4) and
// inst_start/inst_len/resp_start/resp_len.npy (<i8), memory-mapped. A document is one
// instruction/response pair (instruction tokens followed by response tokens). A directory prepared by
// the reference's prepare_sft_data.py (tokens.npy + epoch_N/ index arrays) is read through epoch_0/:
// its documents are the samples in that epoch's order.
std::unique_ptr<CorpusSource> open_tokenized_dir(const std::filesystem::path& dir);
// Only when asked (DESIGN §5: "unless asked"): tokens.npy of a tokenized dir as one token stream,
// so n-grams also cross pair boundaries. Read in chunks of `chunk` tokens that overlap by n-1
// tokens, so every window is seen exactly once; a "document" (in locations) is a chunk, and the
// corpus token count includes the overlaps (n-1 per chunk).
constexpr size_t kStreamChunkTokens = size_t{1} << 20;
std::unique_ptr<CorpusSource> open_tokenized_stream(const std::filesystem::path& dir, size_t n,
                                                    size_t chunk = kStreamChunkTokens);
// JSONL, one document per line made of `fields` (each tokenized separately, then concatenated).
// A line missing a field, or with a non-string one, is an error naming file and line.
std::unique_ptr<CorpusSource> open_jsonl(const std::filesystem::path& file,
                                         std::vector<std::string> fields, TextTokenizer tokenize);
// Plain text: each file one document, or each non-empty line one document.
std::unique_ptr<CorpusSource> open_text_files(std::vector<std::filesystem::path> files, bool per_line,
                                              TextTokenizer tokenize);
// Expands a path from the command line: a tokenized dir, a dir of tokenized dirs (recursively),
// *.jsonl, or a text file. `tokenize` may be empty only for tokenized dirs. With stream_n > 0,
// tokenized dirs are read with open_tokenized_stream(dir, stream_n).
std::vector<std::unique_ptr<CorpusSource>> open_corpus(const std::filesystem::path& path,
                                                       const std::vector<std::string>& jsonl_fields,
                                                       bool text_per_line, const TextTokenizer& tokenize,
                                                       size_t stream_n = 0);

// ---------------------------------------------------------------------------------------------
// .npy files (the subset the pipeline writes)

// The parser lives in common/npy.h (shared with the training data reader).
using ::hrm::NpyHeader;
using ::hrm::parse_npy_header;

// ---------------------------------------------------------------------------------------------
// Word mode (GPT-3's 13-gram method): lower-cased words with ASCII punctuation removed, split on
// whitespace. Needs no tokenizer.

std::vector<std::string> split_words(std::string_view text);

// Word -> id for the words of the benchmark samples; any other word maps to kUnknownWord, which is
// never part of an indexed n-gram, so corpus windows containing it can never match.
class WordVocab {
 public:
  static constexpr Token kUnknownWord = 0;
  // Ids of the words of a benchmark text, adding new words.
  std::vector<Token> add_text(std::string_view text);
  // Ids of the words of a corpus text (read-only: safe from several threads).
  std::vector<Token> encode(std::string_view text) const;
  size_t size() const { return ids_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const;
  };
  std::unordered_map<std::string, Token, Hash, std::equal_to<>> ids_;
};

// ---------------------------------------------------------------------------------------------
// Scanning

struct Location {
  uint32_t source = 0;  // index into the corpus list
  uint64_t doc = 0;     // document index within that source
  auto operator<=>(const Location&) const = default;
};

struct DocMatches {
  Location where;
  uint64_t matches = 0;       // matched n-gram positions in the document
  uint32_t example_ngram = 0; // the first matched n-gram id (to show which sample it hit)
  bool operator==(const DocMatches&) const = default;
};
// Order of the "most matched documents" list: more matches first, then by location.
bool more_matched(const DocMatches& a, const DocMatches& b);

// Everything a scan (or one shard of it) found. Merging the states of disjoint shards gives exactly
// the state of one scan over all of them.
struct ScanState {
  uint64_t fingerprint = 0;
  uint64_t tokens = 0;     // corpus tokens scanned
  uint64_t documents = 0;  // corpus documents scanned
  std::vector<uint64_t> hits;  // per distinct n-gram: occurrences in the corpus
  // Per matched n-gram: the smallest (source, doc) locations, at most max_locations, sorted.
  std::unordered_map<uint32_t, std::vector<Location>> where;
  std::vector<DocMatches> top_docs;  // at most max_top_docs, sorted by more_matched
  size_t max_locations = 4;
  size_t max_top_docs = 20;

  void merge(const ScanState& other);
  bool operator==(const ScanState&) const = default;
};

struct Shard {
  uint64_t index = 0;
  uint64_t count = 1;
};
// Documents [begin, end) of a source with `docs` documents that belong to this shard.
std::pair<uint64_t, uint64_t> shard_range(uint64_t docs, Shard shard);

struct ScanOptions {
  size_t threads = 0;  // 0: all hardware threads
  Shard shard{};
  bool progress = false;  // items done, rate and ETA on stderr
  size_t max_locations = 4;
  size_t max_top_docs = 20;
};

ScanState scan(const NgramIndex& index, const std::vector<std::unique_ptr<CorpusSource>>& corpus,
               const ScanOptions& options = {});

// Per benchmark sample (DESIGN §5).
struct SampleStats {
  size_t tokens = 0;
  double contamination = 0;  // percent of tokens covered by >= 1 matched n-gram, 0-100
  size_t longest_match = 0;  // tokens in the longest chain of overlapping matched n-grams
  size_t matches = 0;        // matched n-gram positions
};
std::vector<SampleStats> sample_stats(const NgramIndex& index, const ScanState& state);

// ---------------------------------------------------------------------------------------------
// Subsets and the Z-test (DESIGN §5, after Llama 2 §A.6).

// Clean means < 20% contaminated, Dirty means >= 80% (Llama 2 / HRM-Text thresholds).
constexpr double kCleanBelow = 20.0;
constexpr double kDirtyFrom = 80.0;
// |Z| above this in all four subsets means significant contamination.
constexpr double kZSignificant = 2.0;

enum class Subset { kStrictlyClean, kClean, kNotClean, kNotDirty, kDirty };
struct SubsetInfo {
  Subset subset;
  const char* name;   // file-name friendly: "strictly_clean", "clean", ...
  const char* label;  // "Clean (< 20%)"
};
const std::vector<SubsetInfo>& subsets();
bool in_subset(Subset subset, double contamination_percent);

struct SubsetZ {
  SubsetInfo info;
  size_t k = 0;
  double avg_contamination = 0;  // percent
  double mean = 0;               // mean score X̄ of the subset
  double sigma = 0;              // s / sqrt(k): the published convention
  double sigma_fpc = 0;          // with the finite-population correction sqrt((N-k)/(N-1))
  std::optional<double> z;       // (X̄ - μ) / sigma; empty when k == 0 or sigma == 0
  std::optional<double> z_fpc;
};

struct ZTest {
  size_t n = 0;     // samples with both a score and a contamination value
  double mu = 0;    // full-set mean score
  double s = 0;     // full-set standard deviation (population, ddof = 0)
  std::vector<SubsetZ> rows;  // clean, not clean, not dirty, dirty
  SubsetZ strictly_clean;     // the 0% subset: the re-score
  bool significant = false;   // |Z| > 2 in all four rows (published convention)
};
ZTest contamination_ztest(std::span<const double> contamination_percent, std::span<const double> scores);
// σ_k of the mean of a random size-k subset of N values with standard deviation s.
double sigma_k(double s, size_t k);
double sigma_k_fpc(double s, size_t k, size_t n);

}  // namespace hrm::ngram
