// Host-side bookkeeping of the CUDA backend's paged KV cache, and the metadata of one step, in
// plain C++ (no CUDA): which pages each sequence holds, and for a batch of sequences the token rows,
// positions, cache cells, block tables and attention work lists that the kernels read.
//
// Split out of CudaModel so that it is tested without a GPU (tests/cuda/step_plan_test.cpp): the
// kernels are tested against the layout kernels.h documents, and this against the same layout.
// Not for: device memory (cuda_model.cpp owns the buffers and copies the metadata over).
//
// Example:
//   StepLayout L = StepLayout::make(/*max_rows=*/8192, /*max_seqs=*/64, /*max_pages_per_seq=*/256);
//   std::vector<int32_t> meta(L.total);
//   PagedCache cache(/*pages=*/1000, /*page_tokens=*/16, /*max_positions=*/4096, /*vocab=*/65536);
//   cache.open(1);
//   StepPlan p = cache.plan(inputs, /*all_logits=*/false, /*pad_to=*/0, L, meta.data());
//   ... copy meta to the GPU, run the step ...
//   cache.commit(inputs);
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "runtime/tokenizer.h"

namespace hrm::cuda {

// One sequence's view for an attention launch. Positions are absolute within the sequence.
struct AttnSeq {
  int32_t row0;        // first of its rows in the step's token rows
  int32_t n_q;         // new tokens (query rows) in this step
  int32_t q_start;     // position of its first new token (= cached tokens before the step)
  int32_t n_kv;        // tokens in the cache after the step (= q_start + n_q)
  int32_t prefix_len;  // bidirectional prefix length after the step
  int32_t table0;      // offset of its block table in the step's table array
};

// One 64-row query tile of a prefill launch.
struct AttnTile {
  int32_t seq;  // index into the AttnSeq array
  int32_t q0;   // first query row of the tile, relative to the sequence's new tokens
};
inline constexpr int kPrefillTileRows = 64;

// Where a step's metadata lives: offsets, in int32 units (each array 16-byte aligned), into one
// buffer that has a device copy and a pinned host mirror. Fixed for a model's lifetime, so captured
// CUDA graphs find the metadata where they expect it.
struct StepLayout {
  size_t tokens = 0, positions = 0, row_page = 0, row_off = 0;  // [max_rows] each
  size_t out_rows = 0;                                          // [max(max_rows, max_seqs)]
  size_t prefill_seqs = 0, decode_seqs = 0;                     // AttnSeq[max_seqs] each
  size_t tiles = 0;                                             // AttnTile[max_rows / 64 + max_seqs + 1]
  size_t tables = 0;                                            // [max_seqs * max_pages_per_seq]
  size_t temperature = 0, u = 0;                                // float[max_seqs]
  size_t next = 0;                                              // [max_seqs]
  size_t total = 0;
  int64_t max_rows = 0, max_seqs = 0, max_pages_per_seq = 0;

  static StepLayout make(int64_t max_rows, int64_t max_seqs, int64_t max_pages_per_seq);
};

// Counts of one planned step.
struct StepPlan {
  int rows = 0;          // token rows, padding included
  int seqs = 0;          // sequences, padding included (block tables to copy)
  int prefill_seqs = 0;  // sequences with several new tokens (prefill attention)
  int tiles = 0;         // their 64-row query tiles
  int decode_seqs = 0;   // sequences with one new token (decode attention), padding included
  int out_rows = 0;      // rows whose logits the step produces
};

class PagedCache {
 public:
  // `pages` usable pages, numbered 1..pages (page 0 is the padding rows' scratch page).
  PagedCache(int64_t pages, int page_tokens, int64_t max_positions, int64_t vocab);

  // One sequence's share of a step (as hrm::StepInput): `prefix` leading tokens extend the prefix.
  struct Input {
    uint64_t seq = 0;
    std::span<const TokenId> tokens;
    int64_t prefix = 0;
  };

  void open(uint64_t seq);
  void close(uint64_t seq);  // its pages are free again at once
  int64_t length(uint64_t seq) const;
  const std::vector<int32_t>& pages_of(uint64_t seq) const;
  int64_t pages_free() const { return static_cast<int64_t>(free_.size()); }
  int64_t pages_total() const { return pages_; }
  int page_tokens() const { return page_tokens_; }

  // Checks the inputs (open sequences, token ids, prefix rules, context, row capacity), takes the
  // pages their new tokens need, and writes the step's metadata into `meta` (layout `L`):
  //   rows in input order, each sequence's new tokens consecutive; out_rows the last row of each
  //   sequence, or all its rows when `all_logits`; sequences with one new token in decode_seqs, the
  //   others in prefill_seqs with their 64-row tiles; then, up to `pad_to` sequences, padding
  //   sequences of one token at position 0 in scratch page 0 (decode-only CUDA graph buckets).
  // Throws hrm::Error on bad input, or when the cache is out of pages. Does not advance lengths.
  StepPlan plan(std::span<const Input> inputs, bool all_logits, int pad_to, const StepLayout& L, int32_t* meta);
  // Advances the sequences by their new tokens once the step has run.
  void commit(std::span<const Input> inputs);

 private:
  struct Seq {
    std::vector<int32_t> pages;
    int64_t length = 0, prefix = 0;
  };
  Seq& find(uint64_t seq);
  const Seq& find(uint64_t seq) const;

  int64_t pages_;
  int page_tokens_;
  int64_t max_positions_, vocab_;
  std::vector<int32_t> free_;
  std::unordered_map<uint64_t, Seq> seqs_;
};

}  // namespace hrm::cuda
