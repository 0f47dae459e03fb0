// The inference launchers of runtime/cuda/kernels.h in the host emulation (see emu.h): each does
// what its header comment says, on the host, with the CPU reference ops (runtime/cpu/ops.h) for the
// arithmetic and the header's rounding of outputs (bf16, or the KV cache's bf16 / fp8 e4m3).
//
// Every pointer a launcher touches is checked against the live device allocations when the work
// runs (so also at each replay of a captured graph), and so is the metadata the host wrote: cache
// cells inside their page, block-table entries, sequence bounds, sampling draws. A host-code bug
// that would read or write the wrong memory on a GPU stops here with an error naming the launcher.
// Not for: testing the kernels themselves (tests/cuda/ops_test.cpp does that on a GPU).
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "common/error.h"
#include "runtime/cpu/ops.h"
#include "runtime/cuda/kernels.h"
#include "runtime/sampling.h"
#include "tests/emu/emu.h"

namespace hrm::cuda {
namespace {

using emu::device;

float to_f(bf16 x) { return __bfloat162float(x); }

// Where one (page, slot, k-or-v) run of page_tokens x attn_dim cache elements starts (kernels.h).
int64_t kv_run(const KvLayout& kv, int64_t page, int slot, int kv_index) {
  const int64_t attn_dim = int64_t{kv.heads} * kv.head_dim;
  return ((page * kv.slots + slot) * 2 + kv_index) * kv.page_tokens * attn_dim;
}

float load_kv(const KvLayout& kv, int64_t elem) {
  if (kv.dtype == KvDtype::kFp8E4M3) {
    __nv_fp8_e4m3 x;
    x.__x = static_cast<const uint8_t*>(kv.pool)[elem];
    return static_cast<float>(x);
  }
  return to_f(static_cast<const bf16*>(kv.pool)[elem]);
}

void store_kv(const KvLayout& kv, int64_t elem, float x) {
  if (kv.dtype == KvDtype::kFp8E4M3)
    static_cast<uint8_t*>(kv.pool)[elem] = __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3);
  else
    static_cast<bf16*>(kv.pool)[elem] = __float2bfloat16(x);
}

// Checks that (page, slot)'s k and v runs lie in the pool's allocation.
void check_page(const KvLayout& kv, int64_t page, int slot, const char* what) {
  if (page < 0) throw Error(cat(what, ": page ", page, " is negative"));
  const int64_t esize = kv_dtype_bytes(kv.dtype);
  const auto* pool = static_cast<const uint8_t*>(kv.pool);
  emu::check_device(pool + kv_run(kv, page, slot, 0) * esize,
                    static_cast<size_t>(2 * int64_t{kv.page_tokens} * kv.heads * kv.head_dim * esize), what);
}

void check_layout(const KvLayout& kv, int slot, const char* what) {
  HRM_CHECK(kv.slots >= 1 && kv.page_tokens >= 1 && kv.heads >= 1 && kv.head_dim >= 2 && kv.head_dim % 2 == 0,
            what, ": bad KvLayout (slots ", kv.slots, ", page_tokens ", kv.page_tokens, ", heads ", kv.heads,
            ", head_dim ", kv.head_dim, ")");
  HRM_CHECK(slot >= 0 && slot < kv.slots, what, ": slot ", slot, " outside [0, ", kv.slots, ")");
}

void check_head_dim(const KvLayout& kv, const char* what) {
  if (!attention_supports_head_dim(kv.head_dim))
    throw Error(cat(what, ": head_dim ", kv.head_dim, " is not supported (16, 32, 64, 128 or 256)"));
}

// The attention kernels load q, k and v eight elements (16 bytes of bf16) at a time.
constexpr uintptr_t kVectorBytes = 16;
void check_aligned(const void* p, const char* what) {
  HRM_CHECK(reinterpret_cast<uintptr_t>(p) % kVectorBytes == 0, what, ": ", p, " is not ", kVectorBytes,
            "-byte aligned");
}

// The attention of query rows [q0, q0 + n) of sequence s (absolute positions from s.q_start + q0),
// written to out as bf16: keys and values gathered from the paged cache, then cpu::gated_attention.
void attend(const bf16* gqkv, const AttnSeq& s, int q0, int n, const int32_t* tables, const KvLayout& kv, int slot,
            bf16* out, const char* what) {
  const int64_t A = int64_t{kv.heads} * kv.head_dim, W = 4 * A;
  HRM_CHECK(s.n_q >= 1 && s.q_start >= 0 && s.n_kv == s.q_start + s.n_q && s.row0 >= 0 && s.table0 >= 0, what,
            ": inconsistent AttnSeq {row0 ", s.row0, ", n_q ", s.n_q, ", q_start ", s.q_start, ", n_kv ", s.n_kv,
            ", prefix_len ", s.prefix_len, ", table0 ", s.table0, "}");
  HRM_CHECK(s.prefix_len >= 0 && s.prefix_len <= s.n_kv, what, ": prefix_len ", s.prefix_len, " outside [0, n_kv = ",
            s.n_kv, "]");
  const int64_t row = int64_t{s.row0} + q0;
  // Keys no query of these rows may see are not read.
  const int64_t visible = std::min<int64_t>(s.n_kv, std::max<int64_t>(s.prefix_len, int64_t{s.q_start} + q0 + n));
  const int64_t pages = (visible + kv.page_tokens - 1) / kv.page_tokens;
  device(gqkv + row * W, n * W, cat(what, " gqkv rows").c_str());
  device(tables + s.table0, pages, cat(what, " block table").c_str());
  device(out + row * A, n * A, cat(what, " out rows").c_str());

  std::vector<float> k(static_cast<size_t>(visible * A)), v(k.size());
  for (int64_t p = 0; p < pages; ++p) check_page(kv, tables[s.table0 + p], slot, cat(what, " cache page").c_str());
  tbb::parallel_for(int64_t{0}, visible, [&](int64_t j) {
    const int64_t page = tables[s.table0 + j / kv.page_tokens], t = j % kv.page_tokens;
    const int64_t k0 = kv_run(kv, page, slot, 0) + t * A, v0 = kv_run(kv, page, slot, 1) + t * A;
    for (int64_t c = 0; c < A; ++c) {
      k[j * A + c] = load_kv(kv, k0 + c);
      v[j * A + c] = load_kv(kv, v0 + c);
    }
  });
  std::vector<float> q(static_cast<size_t>(n * A)), gate(q.size()), o(q.size());
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t c = 0; c < A; ++c) {
      gate[i * A + c] = to_f(gqkv[(row + i) * W + c]);
      q[i * A + c] = to_f(gqkv[(row + i) * W + A + c]);
    }
  }
  cpu::gated_attention(q.data(), gate.data(), n, int64_t{s.q_start} + q0, k.data(), v.data(), visible, s.prefix_len,
                       kv.heads, kv.head_dim, o.data());
  for (int64_t i = 0; i < n * A; ++i) out[row * A + i] = __float2bfloat16(o[i]);
}

}  // namespace

void embed(const int32_t* tokens, int rows, const float* embed_table, const float* z_L_init, int dim, float scale,
           float* zH, float* zL, cudaStream_t stream) {
  if (rows == 0) return;
  emu::submit(stream, [=] {
    device(tokens, rows, "embed tokens");
    device(z_L_init, dim, "embed z_L_init");
    device(zH, int64_t{rows} * dim, "embed zH");
    device(zL, int64_t{rows} * dim, "embed zL");
    for (int r = 0; r < rows; ++r) {
      const float* e = device(embed_table + int64_t{tokens[r]} * dim, dim,
                              cat("embed embed_table row of token ", tokens[r]).c_str());
      float* h = zH + int64_t{r} * dim;
      float* l = zL + int64_t{r} * dim;
      for (int d = 0; d < dim; ++d) h[d] = e[d] * scale, l[d] = z_L_init[d];
    }
  });
}

void rms_norm(const float* x, int rows, int dim, float eps, bf16* y, cudaStream_t stream) {
  if (rows == 0) return;
  emu::submit(stream, [=] {
    const int64_t n = int64_t{rows} * dim;
    device(x, n, "rms_norm x");
    device(y, n, "rms_norm y");
    std::vector<float> t(static_cast<size_t>(n));
    cpu::rms_norm(x, rows, dim, eps, t.data());
    for (int64_t i = 0; i < n; ++i) y[i] = __float2bfloat16(t[i]);
  });
}

void add_rms_norm(const float* a, const float* b, int rows, int dim, float eps, float* sum, bf16* y,
                  cudaStream_t stream) {
  if (rows == 0) return;
  emu::submit(stream, [=] {
    const int64_t n = int64_t{rows} * dim;
    device(a, n, "add_rms_norm a");
    device(b, n, "add_rms_norm b");
    device(sum, n, "add_rms_norm sum");
    device(y, n, "add_rms_norm y");
    for (int64_t i = 0; i < n; ++i) sum[i] = a[i] + b[i];
    std::vector<float> t(static_cast<size_t>(n));
    cpu::rms_norm(sum, rows, dim, eps, t.data());
    for (int64_t i = 0; i < n; ++i) y[i] = __float2bfloat16(t[i]);
  });
}

void rms_norm_f32(const float* x, int rows, int dim, float eps, float* y, cudaStream_t stream) {
  if (rows == 0) return;
  emu::submit(stream, [=] {
    const int64_t n = int64_t{rows} * dim;
    device(x, n, "rms_norm_f32 x");
    device(y, n, "rms_norm_f32 y");
    cpu::rms_norm(x, rows, dim, eps, y);  // y may equal x
  });
}

void rope_and_store_kv(bf16* gqkv, int rows, const int32_t* positions, const float* inv_freq, const int32_t* row_page,
                       const int32_t* row_off, const KvLayout& kv, int slot, cudaStream_t stream) {
  if (rows == 0) return;
  check_layout(kv, slot, "rope_and_store_kv");
  emu::submit(stream, [=, kv = kv] {
    const int64_t heads = kv.heads, hd = kv.head_dim, A = heads * hd, W = 4 * A;
    device(gqkv, rows * W, "rope_and_store_kv gqkv");
    device(positions, rows, "rope_and_store_kv positions");
    device(inv_freq, hd / 2, "rope_and_store_kv inv_freq");
    device(row_page, rows, "rope_and_store_kv row_page");
    device(row_off, rows, "rope_and_store_kv row_off");
    const std::span<const float> freq(inv_freq, static_cast<size_t>(hd / 2));
    for (int r = 0; r < rows; ++r) {
      HRM_CHECK(row_off[r] >= 0 && row_off[r] < kv.page_tokens && positions[r] >= 0, "rope_and_store_kv row ", r,
                ": cache cell (page ", row_page[r], ", token ", row_off[r], ") or position ", positions[r],
                " out of range (page_tokens ", kv.page_tokens, ")");
      check_page(kv, row_page[r], slot, "rope_and_store_kv cache page");
    }
    tbb::parallel_for(0, rows, [&](int r) {
      bf16* g = gqkv + r * W;
      std::vector<float> q(static_cast<size_t>(A)), k(q.size());
      for (int64_t c = 0; c < A; ++c) q[c] = to_f(g[A + c]), k[c] = to_f(g[2 * A + c]);
      const int64_t pos = positions[r];
      cpu::rope_rotate_half(q.data(), 1, heads, hd, std::span(&pos, 1), freq);
      cpu::rope_rotate_half(k.data(), 1, heads, hd, std::span(&pos, 1), freq);
      const int64_t k0 = kv_run(kv, row_page[r], slot, 0) + row_off[r] * A;
      const int64_t v0 = kv_run(kv, row_page[r], slot, 1) + row_off[r] * A;
      for (int64_t c = 0; c < A; ++c) {
        g[A + c] = __float2bfloat16(q[c]);
        store_kv(kv, k0 + c, k[c]);
        store_kv(kv, v0 + c, to_f(g[3 * A + c]));
      }
    });
  });
}

void silu_mul(const bf16* gu, int rows, int inter, bf16* out, cudaStream_t stream) {
  if (rows == 0) return;
  emu::submit(stream, [=] {
    device(gu, int64_t{rows} * 2 * inter, "silu_mul gu");
    device(out, int64_t{rows} * inter, "silu_mul out");
    tbb::parallel_for(0, rows, [&](int r) {
      std::vector<float> gate(static_cast<size_t>(inter)), up(gate.size()), y(gate.size());
      const bf16* row = gu + int64_t{r} * 2 * inter;
      for (int i = 0; i < inter; ++i) gate[i] = to_f(row[i]), up[i] = to_f(row[inter + i]);
      cpu::silu_mul(gate.data(), up.data(), inter, y.data());
      for (int i = 0; i < inter; ++i) out[int64_t{r} * inter + i] = __float2bfloat16(y[i]);
    });
  });
}

void gather_rows(const float* x, const int32_t* rows, int n, int dim, bf16* out, cudaStream_t stream) {
  if (n == 0) return;
  emu::submit(stream, [=] {
    device(rows, n, "gather_rows rows");
    device(out, int64_t{n} * dim, "gather_rows out");
    for (int i = 0; i < n; ++i) {
      const float* src = device(x + int64_t{rows[i]} * dim, dim, cat("gather_rows x row ", rows[i]).c_str());
      for (int d = 0; d < dim; ++d) out[int64_t{i} * dim + d] = __float2bfloat16(src[d]);
    }
  });
}

void prefill_attention(const bf16* gqkv, const AttnSeq* seqs, const AttnTile* tiles, int num_tiles,
                       const int32_t* tables, const KvLayout& kv, int slot, bf16* out, cudaStream_t stream) {
  if (num_tiles == 0) return;
  check_head_dim(kv, "prefill_attention");  // before any pointer is looked at, as the real dispatch
  check_layout(kv, slot, "prefill_attention");
  check_aligned(gqkv, "prefill_attention gqkv");
  check_aligned(kv.pool, "prefill_attention kv.pool");
  emu::submit(stream, [=, kv = kv] {
    device(tiles, num_tiles, "prefill_attention tiles");
    for (int t = 0; t < num_tiles; ++t) {
      const AttnTile tile = tiles[t];
      HRM_CHECK(tile.seq >= 0, "prefill_attention tile ", t, ": sequence index ", tile.seq);
      const AttnSeq s = *device(seqs + tile.seq, 1, "prefill_attention seqs");
      HRM_CHECK(tile.q0 >= 0 && tile.q0 < s.n_q && tile.q0 % kPrefillTileRows == 0, "prefill_attention tile ", t,
                ": q0 ", tile.q0, " is not a tile start of a sequence with ", s.n_q, " new tokens");
      attend(gqkv, s, tile.q0, std::min(kPrefillTileRows, s.n_q - tile.q0), tables, kv, slot, out,
             "prefill_attention");
    }
  });
}

void decode_attention(const bf16* gqkv, const AttnSeq* seqs, int num_seqs, const int32_t* tables, const KvLayout& kv,
                      int slot, int splits, float* partial, bf16* out, cudaStream_t stream) {
  if (num_seqs == 0) return;
  HRM_CHECK(splits >= 1, "decode_attention: splits must be >= 1");
  check_head_dim(kv, "decode_attention");
  check_layout(kv, slot, "decode_attention");
  check_aligned(gqkv, "decode_attention gqkv");
  check_aligned(kv.pool, "decode_attention kv.pool");
  emu::submit(stream, [=, kv = kv] {
    device(seqs, num_seqs, "decode_attention seqs");
    // The split partials are the kernels' scratch; unused with one split.
    if (splits > 1)
      device(partial, int64_t{num_seqs} * kv.heads * splits * (kv.head_dim + 2), "decode_attention partial");
    tbb::parallel_for(0, num_seqs, [&](int i) {
      const AttnSeq s = seqs[i];
      HRM_CHECK(s.n_q == 1, "decode_attention sequence ", i, ": ", s.n_q, " new tokens, not one");
      attend(gqkv, s, 0, 1, tables, kv, slot, out, "decode_attention");
    });
  });
}

bool attention_supports_head_dim(int head_dim) {
  return head_dim == 16 || head_dim == 32 || head_dim == 64 || head_dim == 128 || head_dim == 256;
}

void sample_rows(const float* logits, int n, int vocab, const float* temperature, const float* u, int32_t* out,
                 cudaStream_t stream) {
  if (n == 0) return;
  emu::submit(stream, [=] {
    device(logits, int64_t{n} * vocab, "sample_rows logits");
    device(temperature, n, "sample_rows temperature");
    device(u, n, "sample_rows u");
    device(out, n, "sample_rows out");
    tbb::parallel_for(0, n, [&](int r) {
      HRM_CHECK(std::isfinite(temperature[r]) && temperature[r] >= 0.f && u[r] >= 0.f && u[r] < 1.f,
                "sample_rows row ", r, ": temperature ", temperature[r], " and draw ", u[r],
                " (want temperature >= 0 and u in [0, 1))");
      const std::span<const float> row(logits + int64_t{r} * vocab, static_cast<size_t>(vocab));
      out[r] = temperature[r] < kGreedyBelow ? argmax(row) : sample_inverse_cdf(row, temperature[r], u[r]);
    });
  });
}

}  // namespace hrm::cuda
