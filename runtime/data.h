// Training data: instruction/response corpora, tokenized, and their packing into fixed token budgets.
//
// Two inputs (DESIGN §3): JSONL lines {"instruction", "response", "condition"} tokenized here with the
// prompt format of DESIGN §2 (instruction → <|im_start|> + condition tokens + text + <|im_end|>, the
// bidirectional prefix; response → text + <|box_end|>, the loss tokens) and held in memory, and the
// HRM-Text data pipeline's tokenized directories (tokens.npy + inst_start/inst_len/resp_start/resp_len.npy,
// one directory per source file, or a root holding several), which are memory-mapped, never copied:
// a corpus of tens of billions of tokens costs address space and page cache, not RAM. tokens.npy may be
// <u4, <i4, <u2 or <i2 and the index arrays <i8 or <i4; values are converted as they are read. The
// reference's prepared layout (HRM-Text scripts/prepare_sft_data.py) is read too: tokens.npy at the
// root and the index arrays once per epoch, pre-shuffled, in epoch_0/, epoch_1/, ...; the samples are
// epoch_0's rows, and epoch N is trained in epoch_N's order (dataset_new.py), never beyond the last.
//
// The Packer shuffles the samples per epoch deterministically from a seed (or takes a prepared
// corpus's epoch order) and cuts the epoch's order
// into optimizer steps of one batch per data-parallel rank, each within the token budget (a sample
// takes |inst| + |resp| - 1 tokens). Packing::kMultipack is the reference's packing
// (MultipackDistributedBatchSampler, HRM-Text multipack_sampler.py: the longest prefix of the order
// that longest-first scheduling fits onto the ranks); kGreedy fills each rank's batch in order. The
// Packer's position (epoch, cursor) is what a checkpoint saves. Not for: the contamination scan's
// streaming reader (ngram/), or the data-parallel exchange itself.
//
// Example:
//   hrm::TrainCorpus corpus = hrm::load_corpus("corpus_dir", nullptr, hrm::PromptFormat{});
//   hrm::Packer packer(corpus, {.batch_tokens = 4096, .seed = 0});
//   hrm::PackedBatch batch = packer.next();
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/prompt.h"
#include "runtime/tokenizer.h"
#include "runtime/train.h"

namespace hrm {

// Samples as (start, length) spans into token arrays: one array per tokenized directory (mapped), and
// one in memory for samples added with add() (the JSONL path, tests). Move-only (it owns the maps).
class TrainCorpus {
 public:
  TrainCorpus();
  TrainCorpus(TrainCorpus&&) noexcept;
  TrainCorpus& operator=(TrainCorpus&&) noexcept;
  ~TrainCorpus();

  int64_t size() const;        // samples
  int64_t num_tokens() const;  // entries of all token arrays (gaps between samples included)
  int64_t inst_len(int64_t i) const;
  int64_t resp_len(int64_t i) const;
  int64_t packed_length(int64_t i) const { return PackedBatch::packed_length(inst_len(i), resp_len(i)); }
  // Sample i's token ids, converted from the file's dtype (a copy: a <u2 file has no int32 view).
  std::vector<TokenId> instruction(int64_t i) const;
  std::vector<TokenId> response(int64_t i) const;
  // Appends a sample held in memory.
  void add(std::span<const TokenId> inst, std::span<const TokenId> resp);
  // Throws hrm::Error when a span is empty or outside its tokens, or (vocab > 0) a token id is outside
  // [0, vocab). The message names the tokenized directory, the file and the sample; `origin` stands in
  // for samples added in memory. The id check reads every token once (sequentially).
  void validate(const std::string& origin, int64_t vocab) const;
  // The largest token id (-1 when there are no tokens); reads every token once.
  int64_t max_token_id() const;
  // A prepared corpus's pre-shuffled epochs (epoch_0/ .. epoch_{E-1}/): E, or 0 for other corpora.
  int64_t epoch_orders() const;
  // Epoch k's order as sample ids (a permutation of [0, size())): the rows of epoch_k/ in file order.
  // Throws hrm::Error naming epoch_k/ when k >= epoch_orders() (the reference stops there too).
  std::vector<int64_t> epoch_order(int64_t k) const;

 private:
  struct Part;  // one token array and its four index arrays (data.cpp)
  const Part& locate(int64_t i, int64_t* row) const;

  std::vector<Part> parts_;
  std::vector<int64_t> ends_;  // samples in parts_[0..k]

  friend TrainCorpus load_tokenized_corpus(const std::filesystem::path& dir);
  friend void write_tokenized_corpus(const std::filesystem::path& dir, const TrainCorpus& corpus);
};

// Tokenizes one sample the way the JSONL loader does (prompt format for the instruction, response text
// + the stop token) and appends it. Returns false, adding nothing, when the response tokenizes to no
// tokens (the reference's data preparation drops those samples too).
bool add_text_sample(TrainCorpus& corpus, const Tokenizer& tok, const PromptFormat& fmt,
                     std::string_view instruction, std::string_view response, std::string_view condition);

// One JSONL line: "instruction" and "response" strings required; "condition" a comma-separated tag list,
// "direct" when absent (as the reference's prepare_sft_data.py), "" for no tag. Empty responses are
// left out (counted on stderr); errors name the file and line.
TrainCorpus load_jsonl_corpus(const std::filesystem::path& path, const Tokenizer& tok, const PromptFormat& fmt);
// A tokenized directory, or a directory of them (sub-directories in name order), or a prepared
// directory (tokens.npy + epoch_N/ index arrays, given on its own), memory-mapped. Checks the headers,
// dtypes, sizes and every sample's spans, and that epoch_0.. are numbered without gaps and each is a
// permutation of epoch_0's samples, and metadata.json's total_length when present (throws hrm::Error
// naming the file and sample); token ids are checked by validate() with the model's vocabulary.
TrainCorpus load_tokenized_corpus(const std::filesystem::path& dir);
// JSONL file or tokenized directory, by what `path` is. `tok` is needed for JSONL only.
TrainCorpus load_corpus(const std::filesystem::path& path, const Tokenizer* tok, const PromptFormat& fmt);

// Writes a 1-D little-endian .npy file exactly as numpy.save does (format 1.0, header padded with
// spaces — including numpy's room for the shape to grow — to a multiple of 64 bytes). `dtype` is
// "<u2", "<i2", "<u4", "<i4" or "<i8"; values must fit it (checked).
void write_npy_1d(const std::filesystem::path& path, std::span<const int64_t> values, const std::string& dtype);
// Writes `corpus` as one tokenized directory of the data pipeline (tokens.npy as <u4, the index arrays
// as <i8; several parts are concatenated), so the contamination scan and the trainer can read the very
// same tokens.
void write_tokenized_corpus(const std::filesystem::path& dir, const TrainCorpus& corpus);

enum class Packing { kGreedy, kMultipack };
const char* packing_name(Packing p);  // "greedy", "multipack"
// Throws hrm::Error naming the value unless it is "greedy" or "multipack".
Packing parse_packing(std::string_view name);

// One optimizer step: a batch per rank, as positions into the lengths it was packed from.
struct PackStep {
  int64_t consumed = 0;                     // samples taken from the front, all ranks together
  std::vector<std::vector<int64_t>> ranks;  // [world_size]: positions, in the order they are packed
  bool full() const;                        // every rank got at least one sample
};

// Packs one step from the front of `lengths` (packed lengths in epoch order, each in [1, budget]):
// kGreedy fills rank 0's batch in order until the next sample does not fit, then rank 1's, and so on.
// kMultipack is the reference's step: the longest prefix of the order whose samples, placed longest
// first onto the least-loaded rank (LPT scheduling), keep every rank within `budget` (found by binary
// search over a window of about budget × world_size tokens); each rank's samples come longest first.
// With one rank both give the same samples (the longest prefix that fits).
PackStep pack_step(Packing packing, std::span<const int64_t> lengths, int64_t budget, int64_t world_size);

struct PackerOptions {
  int64_t batch_tokens = 4096;  // per rank (the reference's batch_max_length = global batch / world size)
  uint64_t seed = 0;
  // Samples longer than this (> 0; e.g. the model's max_position_embeddings) or than batch_tokens are
  // skipped, counted in skipped().
  int64_t max_sample_tokens = 0;
  Packing packing = Packing::kMultipack;
  int64_t world_size = 1, rank = 0;
  // The reference's drop_last_batch (true in its training run): an epoch's last step is dropped, and so
  // is a final step with fewer samples than ranks. When false every sample is packed once per epoch;
  // ranks left without a sample in that final step get an empty batch.
  bool drop_last = false;
};

// What one epoch packs into (the reference sampler's efficiency(): tokens / (steps × ranks × budget)).
struct EpochPacking {
  int64_t steps = 0;    // batches per rank
  int64_t samples = 0;  // samples packed (all ranks)
  int64_t tokens = 0;   // tokens packed (all ranks)
  int64_t dropped = 0;  // usable samples not packed (drop_last)
  double fill = 0;      // fraction of the token budget filled
};

class Packer {
 public:
  // Throws hrm::Error when no sample fits or the rank is outside [0, world_size).
  Packer(const TrainCorpus& corpus, const PackerOptions& opts);

  // This rank's batch of the next step; wraps into the next epoch (reshuffled) at the end. Throws
  // hrm::Error when an epoch gives no step at all (drop_last with a corpus that fits in one step).
  PackedBatch next();
  int64_t epoch() const { return epoch_; }
  int64_t cursor() const { return cursor_; }  // samples of the epoch's order consumed (all ranks)
  int64_t skipped() const { return skipped_; }
  int64_t usable() const { return static_cast<int64_t>(usable_.size()); }
  const PackerOptions& options() const { return opts_; }
  // Jump to a saved position (a checkpoint's epoch and cursor).
  void seek(int64_t epoch, int64_t cursor);
  // Packs a whole epoch's order without building batches (for "--epochs", progress and fill reports).
  EpochPacking epoch_packing(int64_t epoch) const;
  // The sample order of an epoch: a Fisher–Yates shuffle of the usable samples, from (seed, epoch);
  // for a prepared corpus, epoch_N/'s order of the usable samples (the seed plays no part, as in the
  // reference; throws hrm::Error past the last epoch directory).
  std::vector<int64_t> order(int64_t epoch) const;
  // Steps left from the current position to the end of the last epoch directory of a prepared corpus;
  // -1 (no end) for other corpora.
  int64_t steps_remaining() const;

 private:
  PackStep plan(const std::vector<int64_t>& perm, int64_t cursor) const;
  // Packs `perm` from `cursor` to the epoch's end as next() would, without building batches.
  EpochPacking count_steps(const std::vector<int64_t>& perm, int64_t cursor) const;

  const TrainCorpus& corpus_;
  PackerOptions opts_;
  std::vector<int64_t> usable_;
  int64_t skipped_ = 0;
  int64_t epoch_ = 0, cursor_ = 0;
  std::vector<int64_t> perm_;
};

}  // namespace hrm
