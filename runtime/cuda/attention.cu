// Gated PrefixLM attention over the paged KV cache (see kernels.h).
//
// prefill_attention: one block of 4 warps per (64-query tile, head). K and V tiles of 64 keys are
// staged in shared memory as bf16 (converted from fp8 when the cache is fp8); each warp computes its
// 16 query rows' scores with tensor cores (WMMA, fp32 accumulation), applies the PrefixLM mask and an
// online softmax in fp32, and accumulates P·V into an fp32 tile in shared memory. Keys past the last
// one any query of the tile may see are never loaded.
//
// decode_attention: one query per sequence. Blocks of (sequence, head, split); each warp handles 4
// keys at a time with 8 lanes per key (head_dim/8 elements each), keeps a running (max, sum, output)
// per lane group, and the groups, warps and splits are merged with the same rescaling rule.
#include <mma.h>

#include <algorithm>
#include <cmath>

#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_math.cuh"
#include "runtime/cuda/kernels.h"

namespace hrm::cuda {
namespace {

namespace wmma = nvcuda::wmma;

constexpr float kLog2e = 1.4426950408889634f;
constexpr int kQT = kPrefillTileRows;  // query rows per block
constexpr int kKT = 64;                // keys per inner tile
constexpr int kWarps = kQT / 16;
constexpr int kThreads = kWarps * 32;

template <int HD>
struct PrefillSmem {
  static constexpr int LDB = HD + 8;    // bf16 row stride of Q, K, V tiles (pad against bank conflicts)
  static constexpr int LDS = kKT + 4;   // fp32 scores
  static constexpr int LDP = kKT + 8;   // bf16 probabilities
  static constexpr int LDO = HD + 4;    // fp32 output accumulator
  static constexpr size_t q = 0;
  static constexpr size_t k = q + sizeof(bf16) * kQT * LDB;
  static constexpr size_t v = k + sizeof(bf16) * kKT * LDB;
  static constexpr size_t s = v + sizeof(bf16) * kKT * LDB;
  static constexpr size_t p = s + sizeof(float) * kQT * LDS;
  static constexpr size_t o = p + sizeof(bf16) * kQT * LDP;
  static constexpr size_t stats = o + sizeof(float) * kQT * LDO;
  static constexpr size_t bytes = stats + sizeof(float) * 3 * kQT;
  static_assert(k % 128 == 0 && v % 128 == 0 && s % 128 == 0 && p % 128 == 0 && o % 128 == 0 && stats % 128 == 0);
};

__device__ __forceinline__ int64_t cache_row(const KvLayout& kv, const int32_t* table, int key, int slot,
                                             int kv_index) {
  const int64_t page = table[key / kv.page_tokens];
  const int t = key % kv.page_tokens;
  return ((page * kv.slots + slot) * 2 + kv_index) * kv.page_tokens + t;  // times attn_dim = element offset
}

template <int HD, typename KV>
__global__ void __launch_bounds__(kThreads)
    prefill_attention_kernel(const bf16* gqkv, const AttnSeq* seqs, const AttnTile* tiles, const int32_t* tables,
                             KvLayout kv, int slot, bf16* out, float scale_log2) {
  using L = PrefillSmem<HD>;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* Qs = reinterpret_cast<bf16*>(smem + L::q);
  bf16* Ks = reinterpret_cast<bf16*>(smem + L::k);
  bf16* Vs = reinterpret_cast<bf16*>(smem + L::v);
  float* S = reinterpret_cast<float*>(smem + L::s);
  bf16* P = reinterpret_cast<bf16*>(smem + L::p);
  float* O = reinterpret_cast<float*>(smem + L::o);
  float* row_m = reinterpret_cast<float*>(smem + L::stats);
  float* row_l = row_m + kQT;
  float* row_a = row_l + kQT;

  const AttnTile tile = tiles[blockIdx.x];
  const AttnSeq sq = seqs[tile.seq];
  const int h = blockIdx.y;
  const int A = kv.heads * HD;
  const int64_t ld = 4 * static_cast<int64_t>(A);
  const int nq = min(kQT, sq.n_q - tile.q0);
  const int qpos0 = sq.q_start + tile.q0;
  const int64_t grow0 = static_cast<int64_t>(sq.row0) + tile.q0;  // step row of the tile's first query
  const int32_t* table = tables + sq.table0;
  const KV* pool = static_cast<const KV*>(kv.pool);
  constexpr int CH = HD / 8;  // 8-element chunks per row

  for (int c = threadIdx.x; c < kQT * CH; c += kThreads) {
    const int r = c / CH, col = (c % CH) * 8;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (r < nq) val = *reinterpret_cast<const uint4*>(gqkv + (grow0 + r) * ld + A + h * HD + col);
    *reinterpret_cast<uint4*>(Qs + r * L::LDB + col) = val;
  }
  for (int i = threadIdx.x; i < kQT * L::LDO; i += kThreads) O[i] = 0.f;
  for (int i = threadIdx.x; i < kQT; i += kThreads) {
    row_m[i] = -INFINITY;
    row_l[i] = 0.f;
  }
  // The last key any query of this tile sees: the whole prefix, or causally up to its last query.
  const int kv_end = min(sq.n_kv, max(sq.prefix_len, qpos0 + nq));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();

  for (int kv0 = 0; kv0 < kv_end; kv0 += kKT) {
    for (int c = threadIdx.x; c < kKT * CH; c += kThreads) {
      const int j = c / CH, col = (c % CH) * 8;
      const int key = kv0 + j;
      uint4 kval = make_uint4(0, 0, 0, 0), vval = make_uint4(0, 0, 0, 0);
      if (key < kv_end) {  // zero past the end: P is 0 there, and 0 * garbage could be NaN
        const int64_t off = h * HD + col;
        kval = load8_as_bf16(pool + cache_row(kv, table, key, slot, 0) * A + off);
        vval = load8_as_bf16(pool + cache_row(kv, table, key, slot, 1) * A + off);
      }
      *reinterpret_cast<uint4*>(Ks + j * L::LDB + col) = kval;
      *reinterpret_cast<uint4*>(Vs + j * L::LDB + col) = vval;
    }
    __syncthreads();

    // S[warp rows] = Q K^T
    {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[kKT / 16];
#pragma unroll
      for (int n = 0; n < kKT / 16; ++n) wmma::fill_fragment(acc[n], 0.f);
#pragma unroll
      for (int k = 0; k < HD; k += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
        wmma::load_matrix_sync(a, Qs + warp * 16 * L::LDB + k, L::LDB);
#pragma unroll
        for (int n = 0; n < kKT / 16; ++n) {
          wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> b;  // K^T: column j is key j
          wmma::load_matrix_sync(b, Ks + n * 16 * L::LDB + k, L::LDB);
          wmma::mma_sync(acc[n], a, b, acc[n]);
        }
      }
#pragma unroll
      for (int n = 0; n < kKT / 16; ++n)
        wmma::store_matrix_sync(S + warp * 16 * L::LDS + n * 16, acc[n], L::LDS, wmma::mem_row_major);
    }
    __syncwarp();

    // Mask and online softmax, one row at a time; lane handles keys lane and lane + 32.
    for (int rr = 0; rr < 16; ++rr) {
      const int r = warp * 16 + rr;
      const int qp = qpos0 + r;
      float s[2], p[2];
      bool vis[2];
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int j = lane + 32 * e, key = kv0 + j;
        vis[e] = r < nq && key < kv_end && (key < sq.prefix_len || key <= qp);
        s[e] = vis[e] ? S[r * L::LDS + j] * scale_log2 : -INFINITY;
      }
      const float m_old = row_m[r];
      const float m_new = fmaxf(m_old, warp_max(fmaxf(s[0], s[1])));
#pragma unroll
      for (int e = 0; e < 2; ++e) p[e] = vis[e] ? exp2f(s[e] - m_new) : 0.f;
      const float alpha = m_old == -INFINITY ? 0.f : exp2f(m_old - m_new);
      const float sum = warp_sum(p[0] + p[1]);
      P[r * L::LDP + lane] = __float2bfloat16(p[0]);
      P[r * L::LDP + lane + 32] = __float2bfloat16(p[1]);
      if (lane == 0) {
        row_m[r] = m_new;
        row_l[r] = row_l[r] * alpha + sum;
        row_a[r] = alpha;
      }
      __syncwarp();
    }
    for (int rr = 0; rr < 16; ++rr) {
      const int r = warp * 16 + rr;
      const float a = row_a[r];
      for (int c = lane; c < HD; c += 32) O[r * L::LDO + c] *= a;
    }
    __syncwarp();

    // O[warp rows] += P V
#pragma unroll
    for (int n = 0; n < HD / 16; ++n) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> o;
      wmma::load_matrix_sync(o, O + warp * 16 * L::LDO + n * 16, L::LDO, wmma::mem_row_major);
#pragma unroll
      for (int k = 0; k < kKT; k += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> b;
        wmma::load_matrix_sync(a, P + warp * 16 * L::LDP + k, L::LDP);
        wmma::load_matrix_sync(b, Vs + k * L::LDB + n * 16, L::LDB);
        wmma::mma_sync(o, a, b, o);
      }
      wmma::store_matrix_sync(O + warp * 16 * L::LDO + n * 16, o, L::LDO, wmma::mem_row_major);
    }
    __syncthreads();  // K and V tiles are overwritten next
  }

  for (int rr = 0; rr < 16; ++rr) {
    const int r = warp * 16 + rr;
    if (r >= nq) break;
    const float inv = 1.f / row_l[r];
    const int64_t grow = grow0 + r;
    for (int c = lane; c < HD; c += 32) {
      const float g = __bfloat162float(gqkv[grow * ld + h * HD + c]);
      out[grow * A + h * HD + c] = __float2bfloat16(O[r * L::LDO + c] * inv / (1.f + expf(-g)));
    }
  }
}

constexpr int kDecodeThreads = 128;
constexpr int kLanesPerKey = 8;
constexpr int kKeysPerStep = kDecodeThreads / kLanesPerKey;  // 16

// Merges running softmax states (m, l, acc) a and b, both over disjoint key sets (log2 domain).
template <int E>
__device__ __forceinline__ void merge_state(float& m, float& l, float* acc, float m2, float l2, const float* acc2) {
  const float M = fmaxf(m, m2);
  const float a1 = m == -INFINITY ? 0.f : exp2f(m - M);
  const float a2 = m2 == -INFINITY ? 0.f : exp2f(m2 - M);
  l = l * a1 + l2 * a2;
#pragma unroll
  for (int e = 0; e < E; ++e) acc[e] = acc[e] * a1 + acc2[e] * a2;
  m = M;
}

template <int HD, typename KV>
__global__ void __launch_bounds__(kDecodeThreads)
    decode_attention_kernel(const bf16* gqkv, const AttnSeq* seqs, const int32_t* tables, KvLayout kv, int slot,
                            int splits, float* partial, bf16* out, float scale_log2) {
  constexpr int E = HD / kLanesPerKey;
  __shared__ float w_m[kDecodeThreads / 32], w_l[kDecodeThreads / 32];
  __shared__ float w_acc[kDecodeThreads / 32][HD];
  const AttnSeq sq = seqs[blockIdx.x];
  const int h = blockIdx.y, split = blockIdx.z;
  const int A = kv.heads * HD;
  const int64_t row = sq.row0;
  const int64_t ld = 4 * static_cast<int64_t>(A);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = lane / kLanesPerKey, gl = lane % kLanesPerKey;
  const int32_t* table = tables + sq.table0;
  const KV* pool = static_cast<const KV*>(kv.pool);

  int chunk = (sq.n_kv + splits - 1) / splits;
  chunk = (chunk + kKeysPerStep - 1) / kKeysPerStep * kKeysPerStep;
  const int k_begin = split * chunk, k_end = min(sq.n_kv, k_begin + chunk);

  float q[E], acc[E];
  {
    const bf16* qp = gqkv + row * ld + A + h * HD + gl * E;
#pragma unroll
    for (int e = 0; e < E; ++e) {
      q[e] = __bfloat162float(qp[e]) * scale_log2;
      acc[e] = 0.f;
    }
  }
  float m = -INFINITY, l = 0.f;
  const int sub = warp * (32 / kLanesPerKey) + group;
  for (int base = k_begin; base < k_end; base += kKeysPerStep) {  // uniform trip count in the block
    const int key = base + sub;
    const bool valid = key < k_end;
    float kf[E], vf[E];
    float dot = 0.f;
    if (valid) {
      const int64_t off = h * HD + gl * E;
      load_floats<E>(pool + cache_row(kv, table, key, slot, 0) * A + off, kf);
      load_floats<E>(pool + cache_row(kv, table, key, slot, 1) * A + off, vf);
#pragma unroll
      for (int e = 0; e < E; ++e) dot += q[e] * kf[e];
    }
#pragma unroll
    for (int off = kLanesPerKey / 2; off > 0; off >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, off);
    if (valid) {
      const float m_new = fmaxf(m, dot);
      const float alpha = exp2f(m - m_new), p = exp2f(dot - m_new);
      l = l * alpha + p;
#pragma unroll
      for (int e = 0; e < E; ++e) acc[e] = acc[e] * alpha + p * vf[e];
      m = m_new;
    }
  }
  // Merge the 4 lane groups of each warp (lanes holding the same dims are 8 apart).
#pragma unroll
  for (int off = kLanesPerKey; off < 32; off <<= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, off), l2 = __shfl_xor_sync(0xffffffffu, l, off);
    float acc2[E];
#pragma unroll
    for (int e = 0; e < E; ++e) acc2[e] = __shfl_xor_sync(0xffffffffu, acc[e], off);
    merge_state<E>(m, l, acc, m2, l2, acc2);
  }
  if (group == 0) {
#pragma unroll
    for (int e = 0; e < E; ++e) w_acc[warp][gl * E + e] = acc[e];
    if (gl == 0) {
      w_m[warp] = m;
      w_l[warp] = l;
    }
  }
  __syncthreads();
  float M = -INFINITY;
  for (int w = 0; w < kDecodeThreads / 32; ++w) M = fmaxf(M, w_m[w]);
  float L = 0.f;
  for (int w = 0; w < kDecodeThreads / 32; ++w) L += w_m[w] == -INFINITY ? 0.f : w_l[w] * exp2f(w_m[w] - M);
  for (int d = threadIdx.x; d < HD; d += kDecodeThreads) {
    float o = 0.f;
    for (int w = 0; w < kDecodeThreads / 32; ++w)
      if (w_m[w] != -INFINITY) o += w_acc[w][d] * exp2f(w_m[w] - M);
    if (splits == 1) {
      const float g = __bfloat162float(gqkv[row * ld + h * HD + d]);
      out[row * A + h * HD + d] = __float2bfloat16(o / L / (1.f + expf(-g)));
    } else {
      float* part = partial + ((static_cast<int64_t>(blockIdx.x) * kv.heads + h) * splits + split) * (HD + 2);
      part[d] = o;
      if (d == 0) {
        part[HD] = M;
        part[HD + 1] = L;
      }
    }
  }
}

__global__ void decode_combine_kernel(const bf16* gqkv, const AttnSeq* seqs, int heads, int head_dim, int splits,
                                      const float* partial, bf16* out) {
  const AttnSeq sq = seqs[blockIdx.x];
  const int h = blockIdx.y;
  const int A = heads * head_dim;
  const int64_t row = sq.row0;
  const float* part = partial + (static_cast<int64_t>(blockIdx.x) * heads + h) * splits * (head_dim + 2);
  float M = -INFINITY;
  for (int s = 0; s < splits; ++s) M = fmaxf(M, part[s * (head_dim + 2) + head_dim]);
  float L = 0.f;
  for (int s = 0; s < splits; ++s) {
    const float m = part[s * (head_dim + 2) + head_dim];
    if (m != -INFINITY) L += part[s * (head_dim + 2) + head_dim + 1] * exp2f(m - M);
  }
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float o = 0.f;
    for (int s = 0; s < splits; ++s) {
      const float m = part[s * (head_dim + 2) + head_dim];
      if (m != -INFINITY) o += part[s * (head_dim + 2) + d] * exp2f(m - M);
    }
    const float g = __bfloat162float(gqkv[row * 4 * A + h * head_dim + d]);
    out[row * A + h * head_dim + d] = __float2bfloat16(o / L / (1.f + expf(-g)));
  }
}

template <int HD, typename KV>
void launch_prefill(const bf16* gqkv, const AttnSeq* seqs, const AttnTile* tiles, int num_tiles,
                    const int32_t* tables, const KvLayout& kv, int slot, bf16* out, cudaStream_t stream) {
  constexpr size_t bytes = PrefillSmem<HD>::bytes;
  static const bool configured = [] {
    HRM_CUDA_CHECK(cudaFuncSetAttribute(prefill_attention_kernel<HD, KV>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
    return true;
  }();
  (void)configured;
  const float scale_log2 = kLog2e / sqrtf(static_cast<float>(HD));
  prefill_attention_kernel<HD, KV><<<dim3(num_tiles, kv.heads), kThreads, bytes, stream>>>(
      gqkv, seqs, tiles, tables, kv, slot, out, scale_log2);
  HRM_CUDA_CHECK(cudaGetLastError());
}

template <int HD, typename KV>
void launch_decode(const bf16* gqkv, const AttnSeq* seqs, int num_seqs, const int32_t* tables, const KvLayout& kv,
                   int slot, int splits, float* partial, bf16* out, cudaStream_t stream) {
  const float scale_log2 = kLog2e / sqrtf(static_cast<float>(HD));
  decode_attention_kernel<HD, KV><<<dim3(num_seqs, kv.heads, splits), kDecodeThreads, 0, stream>>>(
      gqkv, seqs, tables, kv, slot, splits, partial, out, scale_log2);
  HRM_CUDA_CHECK(cudaGetLastError());
  if (splits > 1) {
    decode_combine_kernel<<<dim3(num_seqs, kv.heads), 128, 0, stream>>>(gqkv, seqs, kv.heads, HD, splits, partial,
                                                                        out);
    HRM_CUDA_CHECK(cudaGetLastError());
  }
}

// Calls f.template operator()<HD, KV>() for the layout's head_dim and cache dtype.
template <typename F>
void dispatch(const KvLayout& kv, F&& f) {
  auto with_dtype = [&]<int HD>() {
    if (kv.dtype == KvDtype::kBf16) f.template operator()<HD, bf16>();
    else f.template operator()<HD, fp8>();
  };
  switch (kv.head_dim) {
    case 16: with_dtype.template operator()<16>(); return;
    case 32: with_dtype.template operator()<32>(); return;
    case 64: with_dtype.template operator()<64>(); return;
    case 128: with_dtype.template operator()<128>(); return;
    case 256: with_dtype.template operator()<256>(); return;
  }
  throw Error(cat("CUDA attention: head_dim ", kv.head_dim, " is not supported (16, 32, 64, 128 or 256)"));
}

}  // namespace

bool attention_supports_head_dim(int head_dim) {
  return head_dim == 16 || head_dim == 32 || head_dim == 64 || head_dim == 128 || head_dim == 256;
}

void prefill_attention(const bf16* gqkv, const AttnSeq* seqs, const AttnTile* tiles, int num_tiles,
                       const int32_t* tables, const KvLayout& kv, int slot, bf16* out, cudaStream_t stream) {
  if (num_tiles == 0) return;
  dispatch(kv, [&]<int HD, typename KV>() {
    launch_prefill<HD, KV>(gqkv, seqs, tiles, num_tiles, tables, kv, slot, out, stream);
  });
}

void decode_attention(const bf16* gqkv, const AttnSeq* seqs, int num_seqs, const int32_t* tables,
                      const KvLayout& kv, int slot, int splits, float* partial, bf16* out, cudaStream_t stream) {
  if (num_seqs == 0) return;
  HRM_CHECK(splits >= 1, "decode_attention: splits must be >= 1");
  dispatch(kv, [&]<int HD, typename KV>() {
    launch_decode<HD, KV>(gqkv, seqs, num_seqs, tables, kv, slot, splits, partial, out, stream);
  });
}

}  // namespace hrm::cuda
