// Training data: instruction/response corpora, tokenized, and their packing into fixed token budgets.
//
// Two inputs (DESIGN §3): JSONL lines {"instruction", "response", "condition"} tokenized here with the
// prompt format of DESIGN §2 (instruction → <|im_start|> + condition tokens + text + <|im_end|>, the
// bidirectional prefix; response → text + <|box_end|>, the loss tokens), and the HRM-Text data
// pipeline's tokenized directories (tokens.npy + inst_start/inst_len/resp_start/resp_len.npy, one
// directory per source file, or a root holding several). The Packer shuffles samples per epoch
// deterministically from a seed and fills each batch greedily in that order up to the token budget
// (a sample takes |inst| + |resp| - 1 tokens); its position (epoch, cursor) is what a checkpoint saves.
// The reference's MultipackDistributedBatchSampler packs more tightly and splits across ranks; that
// waits for the data-parallel trainer. Not for: the contamination scan's streaming reader (ngram/).
//
// Example:
//   hrm::TrainCorpus corpus = hrm::load_jsonl_corpus("train.jsonl", tok, hrm::PromptFormat{});
//   hrm::Packer packer(corpus, /*batch_tokens=*/4096, /*seed=*/0);
//   hrm::PackedBatch batch = packer.next();
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "runtime/prompt.h"
#include "runtime/tokenizer.h"
#include "runtime/train.h"

namespace hrm {

// Samples as spans into one token array (the tokenized-directory layout, also used for JSONL).
struct TrainCorpus {
  std::vector<TokenId> tokens;
  std::vector<int64_t> inst_start, inst_len, resp_start, resp_len;

  int64_t size() const { return static_cast<int64_t>(inst_start.size()); }
  std::span<const TokenId> instruction(int64_t i) const;
  std::span<const TokenId> response(int64_t i) const;
  int64_t packed_length(int64_t i) const { return PackedBatch::packed_length(inst_len[i], resp_len[i]); }
  void add(std::span<const TokenId> inst, std::span<const TokenId> resp);
  // Throws hrm::Error naming `origin` and the sample when a span is empty or outside the tokens, or a
  // token id is outside [0, vocab) (vocab <= 0 skips that check).
  void validate(const std::string& origin, int64_t vocab) const;
};

// Tokenizes one sample the way the JSONL loader does (prompt format for the instruction, response text
// + the stop token) and appends it.
void add_text_sample(TrainCorpus& corpus, const Tokenizer& tok, const PromptFormat& fmt,
                     std::string_view instruction, std::string_view response, std::string_view condition);

// One JSONL line: "instruction" and "response" strings required, "condition" optional ("" = none).
TrainCorpus load_jsonl_corpus(const std::filesystem::path& path, const Tokenizer& tok, const PromptFormat& fmt);
// A tokenized directory, or a directory of them (sub-directories in name order).
TrainCorpus load_tokenized_corpus(const std::filesystem::path& dir);
// JSONL file or tokenized directory, by what `path` is. `tok` is needed for JSONL only.
TrainCorpus load_corpus(const std::filesystem::path& path, const Tokenizer* tok, const PromptFormat& fmt);

// A 1-D .npy array read whole into int64 (dtypes <i4, <u4, <i8, <u8, <i2, <u2; C order).
// Throws hrm::Error naming the file on anything else. (ngram/ has an mmap'd reader of its own; the
// runtime cannot depend on ngram/, so this small one duplicates its header parsing.)
std::vector<int64_t> read_npy_1d(const std::filesystem::path& path);

// Writes a 1-D little-endian .npy file exactly as numpy.save does (format 1.0, header padded with
// spaces — including numpy's room for the shape to grow — to a multiple of 64 bytes). `dtype` is
// "<u4", "<i4" or "<i8"; values must fit it (checked).
void write_npy_1d(const std::filesystem::path& path, std::span<const int64_t> values, const std::string& dtype);
// Writes `corpus` as one tokenized directory of the data pipeline (tokens.npy as <u4, the index arrays
// as <i8), so the contamination scan and the trainer can read the very same tokens.
void write_tokenized_corpus(const std::filesystem::path& dir, const TrainCorpus& corpus);

class Packer {
 public:
  // Samples longer than `batch_tokens` or `max_sample_tokens` (> 0; e.g. the model's
  // max_position_embeddings) are skipped, counted in skipped(). Throws hrm::Error when no sample fits.
  Packer(const TrainCorpus& corpus, int64_t batch_tokens, uint64_t seed, int64_t max_sample_tokens = 0);

  PackedBatch next();  // the next batch; wraps into the next epoch (reshuffled) at the end
  int64_t epoch() const { return epoch_; }
  int64_t cursor() const { return cursor_; }
  int64_t skipped() const { return skipped_; }
  // Jump to a saved position (a checkpoint's epoch and cursor).
  void seek(int64_t epoch, int64_t cursor);
  // Batches one epoch gives (packing the epoch's order), for progress/ETA and "--epochs".
  int64_t batches_per_epoch() const;
  // The sample order of an epoch: a Fisher–Yates shuffle of the usable samples, from (seed, epoch).
  std::vector<int64_t> order(int64_t epoch) const;

 private:
  const TrainCorpus& corpus_;
  int64_t budget_;
  uint64_t seed_;
  std::vector<int64_t> usable_;
  int64_t skipped_ = 0;
  int64_t epoch_ = 0, cursor_ = 0;
  std::vector<int64_t> perm_;
};

}  // namespace hrm
