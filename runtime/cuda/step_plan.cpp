// Paged-cache bookkeeping and step metadata of the CUDA backend (see step_plan.h).
#include "runtime/cuda/step_plan.h"

#include <algorithm>

#include "common/error.h"

namespace hrm::cuda {

StepLayout StepLayout::make(int64_t max_rows, int64_t max_seqs, int64_t max_pages_per_seq) {
  StepLayout L;
  L.max_rows = max_rows, L.max_seqs = max_seqs, L.max_pages_per_seq = max_pages_per_seq;
  const size_t rows = static_cast<size_t>(max_rows), seqs = static_cast<size_t>(max_seqs);
  const size_t seq_ints = sizeof(AttnSeq) / sizeof(int32_t), tile_ints = sizeof(AttnTile) / sizeof(int32_t);
  size_t at = 0;
  auto take = [&](size_t n) {
    const size_t off = at;
    at += (n + 3) / 4 * 4;
    return off;
  };
  L.tokens = take(rows);
  L.positions = take(rows);
  L.row_page = take(rows);
  L.row_off = take(rows);
  L.out_rows = take(std::max(rows, seqs));
  L.prefill_seqs = take(seqs * seq_ints);
  L.decode_seqs = take(seqs * seq_ints);
  L.tiles = take((rows / kPrefillTileRows + seqs + 1) * tile_ints);
  L.tables = take(seqs * static_cast<size_t>(max_pages_per_seq));
  L.temperature = take(seqs);
  L.u = take(seqs);
  L.next = take(seqs);
  L.total = at;
  return L;
}

PagedCache::PagedCache(int64_t pages, int page_tokens, int64_t max_positions, int64_t vocab)
    : pages_(pages), page_tokens_(page_tokens), max_positions_(max_positions), vocab_(vocab) {
  HRM_CHECK(pages >= 1, "paged KV cache: needs at least one page, got ", pages);
  HRM_CHECK(page_tokens >= 1, "paged KV cache: page_tokens must be >= 1, got ", page_tokens);
  free_.reserve(static_cast<size_t>(pages));
  for (int64_t p = pages; p >= 1; --p) free_.push_back(static_cast<int32_t>(p));  // page 1 is taken first
}

PagedCache::Seq& PagedCache::find(uint64_t seq) {
  auto it = seqs_.find(seq);
  HRM_CHECK(it != seqs_.end(), "CUDA backend: sequence ", seq, " is not open");
  return it->second;
}

const PagedCache::Seq& PagedCache::find(uint64_t seq) const {
  auto it = seqs_.find(seq);
  HRM_CHECK(it != seqs_.end(), "CUDA backend: sequence ", seq, " is not open");
  return it->second;
}

void PagedCache::open(uint64_t seq) {
  HRM_CHECK(!seqs_.contains(seq), "CUDA backend: sequence ", seq, " is already open");
  seqs_.emplace(seq, Seq{});
}

void PagedCache::close(uint64_t seq) {
  const Seq& s = find(seq);
  free_.insert(free_.end(), s.pages.rbegin(), s.pages.rend());
  seqs_.erase(seq);
}

int64_t PagedCache::length(uint64_t seq) const { return find(seq).length; }
const std::vector<int32_t>& PagedCache::pages_of(uint64_t seq) const { return find(seq).pages; }

StepPlan PagedCache::plan(std::span<const Input> inputs, bool all_logits, int pad_to, const StepLayout& L,
                          int32_t* meta) {
  HRM_CHECK(!inputs.empty(), "CUDA backend: a step needs at least one sequence");
  const int n = static_cast<int>(inputs.size());
  const int S = std::max(n, pad_to);
  if (S > L.max_seqs)
    throw Error(cat("CUDA backend: ", S, " sequences in one step, more than max_seqs = ", L.max_seqs));
  int64_t total = 0;
  for (int i = 0; i < n; ++i) {
    const Input& in = inputs[i];
    const Seq& s = find(in.seq);
    for (int j = 0; j < i; ++j)
      HRM_CHECK(inputs[j].seq != in.seq, "CUDA backend: sequence ", in.seq, " appears twice in one step");
    const int64_t len = static_cast<int64_t>(in.tokens.size());
    HRM_CHECK(len > 0, "step input ", i, " has no tokens");
    HRM_CHECK(in.prefix >= 0 && in.prefix <= len, "prefix count ", in.prefix, " outside [0, ", len, "] (sequence ", i,
              ")");
    HRM_CHECK(in.prefix == 0 || s.length == s.prefix, "prefix tokens cannot follow response tokens (sequence ", i,
              ")");
    if (s.length + len > max_positions_)
      throw Error(cat("sequence of ", s.length + len, " tokens exceeds max_position_embeddings = ", max_positions_));
    for (TokenId t : in.tokens)
      if (t < 0 || t >= vocab_) throw Error(cat("token id ", t, " out of range [0, ", vocab_, ")"));
    total += len;
  }
  if (total + (S - n) > L.max_rows)
    throw Error(cat("CUDA backend: ", total + (S - n), " token rows in one step, more than max_step_tokens = ",
                    L.max_rows));

  int32_t* tokens = meta + L.tokens;
  int32_t* positions = meta + L.positions;
  int32_t* row_page = meta + L.row_page;
  int32_t* row_off = meta + L.row_off;
  int32_t* out_rows = meta + L.out_rows;
  auto* pre = reinterpret_cast<AttnSeq*>(meta + L.prefill_seqs);
  auto* dec = reinterpret_cast<AttnSeq*>(meta + L.decode_seqs);
  auto* tiles = reinterpret_cast<AttnTile*>(meta + L.tiles);
  int32_t* tables = meta + L.tables;
  const int32_t PT = page_tokens_;

  StepPlan p;
  for (int i = 0; i < n; ++i) {
    const Input& in = inputs[i];
    Seq& s = find(in.seq);
    const int32_t nq = static_cast<int32_t>(in.tokens.size());
    const int32_t q_start = static_cast<int32_t>(s.length), n_kv = q_start + nq;
    const size_t pages = static_cast<size_t>((n_kv + PT - 1) / PT);
    HRM_CHECK(static_cast<int64_t>(pages) <= L.max_pages_per_seq, "CUDA backend: sequence ", in.seq, " needs ",
              pages, " pages, more than the ", L.max_pages_per_seq, " a block table holds");
    while (s.pages.size() < pages) {
      if (free_.empty())
        throw Error(cat("CUDA backend: the KV cache is out of pages (", pages_,
                        " in all); the engine's admission control should have prevented this"));
      s.pages.push_back(free_.back());
      free_.pop_back();
    }
    for (int32_t j = 0; j < nq; ++j) {
      const int r = p.rows + j, pos = q_start + j;
      tokens[r] = in.tokens[j];
      positions[r] = pos;
      row_page[r] = s.pages[pos / PT];
      row_off[r] = pos % PT;
    }
    const int32_t table0 = i * static_cast<int32_t>(L.max_pages_per_seq);
    std::copy(s.pages.begin(), s.pages.end(), tables + table0);
    const AttnSeq a{p.rows, nq, q_start, n_kv, static_cast<int32_t>(s.prefix + in.prefix), table0};
    if (nq == 1) {
      dec[p.decode_seqs++] = a;
    } else {
      for (int32_t q0 = 0; q0 < nq; q0 += kPrefillTileRows) tiles[p.tiles++] = AttnTile{p.prefill_seqs, q0};
      pre[p.prefill_seqs++] = a;
    }
    if (all_logits)
      for (int32_t j = 0; j < nq; ++j) out_rows[p.out_rows++] = p.rows + j;
    else
      out_rows[p.out_rows++] = p.rows + nq - 1;
    p.rows += nq;
  }
  for (int i = n; i < S; ++i) {
    const int r = p.rows++;
    tokens[r] = 0, positions[r] = 0, row_page[r] = 0, row_off[r] = 0;
    const int32_t table0 = i * static_cast<int32_t>(L.max_pages_per_seq);
    tables[table0] = 0;
    dec[p.decode_seqs++] = AttnSeq{r, 1, 0, 1, 0, table0};
    out_rows[p.out_rows++] = r;
  }
  p.seqs = S;
  return p;
}

void PagedCache::commit(std::span<const Input> inputs) {
  for (const Input& in : inputs) {
    Seq& s = find(in.seq);
    s.length += static_cast<int64_t>(in.tokens.size());
    s.prefix += in.prefix;
  }
}

}  // namespace hrm::cuda
