// PrefixLM attention of a packed training batch, forward and backward, on tensor cores (see
// train_kernels.h).
//
// Every kernel is one block of 4 warps per (64-row tile of one sequence, head). Tiles of Q, K, V and
// dO sit in shared memory as bf16; each product of two tiles is a WMMA loop (bf16 inputs, fp32
// accumulation) from shared memory into an fp32 tile in shared memory (smem_mma), and the softmax
// arithmetic runs in fp32 with 2 threads per row. Scores live in the log2 domain: s2 = q.k *
// log2(e)/sqrt(d), so p = exp2(s2 - lse2).
//
// Forward (per query tile): the online softmax over the key tiles the tile may see; writes the
// output and lse2 per row. Backward, FlashAttention-2's recurrences in two deterministic passes:
//   per key tile:   over the query tiles that see it, P = exp2(S - lse2), dV += P^T dO,
//                   dP = dO V^T, dS = P * (dP - delta), dK += dS^T Q;
//   per query tile: over its visible key tiles, the same P and dS, dQ += dS K.
// dQ and dK carry the 1/sqrt(d) of the scores. Which tiles meet: query i sees key j iff j < prefix or
// j <= i, so a key tile below the prefix is seen by every query of the sequence, a later one only by
// queries from its first row on; a query tile sees keys below max(prefix, its last row + 1).
#include <mma.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_math.cuh"
#include "runtime/cuda/train_kernels.h"

namespace hrm::cuda {
namespace {

namespace wmma = nvcuda::wmma;

constexpr float kLog2e = 1.4426950408889634f;
constexpr int kT = kTrainTileRows;  // rows of every tile (queries and keys)
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;

// Row strides (elements), padded against bank conflicts; WMMA needs multiples of 8 (bf16) / 4 (fp32).
template <int HD>
struct Strides {
  static constexpr int B = HD + 8;  // bf16 [kT][HD] tiles
  static constexpr int S = kT + 4;  // fp32 [kT][kT] scores
  static constexpr int P = kT + 8;  // bf16 [kT][kT] probabilities
  static constexpr int O = HD + 4;  // fp32 [kT][HD] accumulators
};

// Shared-memory carving: consecutive regions, each 128-byte aligned.
struct Carver {
  char* base;
  size_t off = 0;
  template <typename T>
  __device__ T* take(size_t elems) {
    T* p = reinterpret_cast<T*>(base + off);
    off += (elems * sizeof(T) + 127) / 128 * 128;
    return p;
  }
};
constexpr size_t carve(size_t elems, size_t bytes) { return (elems * bytes + 127) / 128 * 128; }

// C[M][N] (fp32, row-major, ldc) = (accumulate ? C : 0) + A[M][K] * B[K][N], everything in shared
// memory. ALayout row_major: A(m, k) at A[m*lda + k]; col_major: at A[k*lda + m] (A stored transposed).
// BLayout row_major: B(k, n) at B[k*ldb + n]; col_major: at B[n*ldb + k]. M, N, K multiples of 16;
// the warps split the 16x16 output tiles. The caller synchronizes.
template <int M, int N, int K, typename ALayout, typename BLayout>
__device__ __forceinline__ void smem_mma(const bf16* A, int lda, const bf16* B, int ldb, float* C, int ldc,
                                         bool accumulate) {
  constexpr int TN = N / 16;
  const int warp = threadIdx.x >> 5;
  for (int t = warp; t < (M / 16) * TN; t += kWarps) {
    const int tm = t / TN, tn = t % TN;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
    float* ctile = C + tm * 16 * ldc + tn * 16;
    if (accumulate) wmma::load_matrix_sync(c, ctile, ldc, wmma::mem_row_major);
    else wmma::fill_fragment(c, 0.f);
#pragma unroll
    for (int kk = 0; kk < K; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, ALayout> a;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, BLayout> b;
      if constexpr (std::is_same_v<ALayout, wmma::row_major>) wmma::load_matrix_sync(a, A + tm * 16 * lda + kk, lda);
      else wmma::load_matrix_sync(a, A + kk * lda + tm * 16, lda);
      if constexpr (std::is_same_v<BLayout, wmma::row_major>) wmma::load_matrix_sync(b, B + kk * ldb + tn * 16, ldb);
      else wmma::load_matrix_sync(b, B + tn * 16 * ldb + kk, ldb);
      wmma::mma_sync(c, a, b, c);
    }
    wmma::store_matrix_sync(ctile, c, ldc, wmma::mem_row_major);
  }
}

// Loads rows [row0, row0 + kT) of one head's columns (stride `ld` elements, column offset `col`) of
// the sequence starting at global row `seq_start` into a [kT][LD] tile; rows at or past `len` are zero.
template <int HD, int LD>
__device__ __forceinline__ void load_tile(const bf16* src, int64_t ld, int64_t col, int seq_start, int row0, int len,
                                          bf16* dst) {
  constexpr int kVecs = HD / 8;  // 16-byte vectors per row
  for (int idx = threadIdx.x; idx < kT * kVecs; idx += kThreads) {
    const int r = idx / kVecs, c = (idx % kVecs) * 8;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (row0 + r < len)
      v = *reinterpret_cast<const uint4*>(src + static_cast<int64_t>(seq_start + row0 + r) * ld + col + c);
    *reinterpret_cast<uint4*>(dst + r * LD + c) = v;
  }
}

__device__ __forceinline__ bool visible(int i, int j, int len, int prefix) {
  return i < len && j < len && (j < prefix || j <= i);
}

// One past the last key a query tile starting at row0 may see.
__device__ __forceinline__ int key_end(int row0, int len, int prefix) {
  const int last_query = min(row0 + kT, len) - 1;
  return min(len, max(prefix, last_query + 1));
}

// ---- forward ----

template <int HD>
struct FwdSmem {
  using St = Strides<HD>;
  static constexpr size_t bytes = 3 * carve(kT * St::B, 2) + carve(kT * St::S, 4) + carve(kT * St::P, 2) +
                                  carve(kT * St::O, 4) + 2 * carve(kT, 4);
};

template <int HD>
__global__ void __launch_bounds__(kThreads)
    fwd_kernel(const bf16* gqkv, int rows, const TrainSeq* seqs, const TrainTile* tiles, int heads, bf16* out,
               float* lse, float scale_log2) {
  using St = Strides<HD>;
  extern __shared__ __align__(128) char smem[];
  Carver cv{smem};
  bf16* sq = cv.take<bf16>(kT * St::B);
  bf16* sk = cv.take<bf16>(kT * St::B);
  bf16* sv = cv.take<bf16>(kT * St::B);
  float* ss = cv.take<float>(kT * St::S);
  bf16* sp = cv.take<bf16>(kT * St::P);
  float* so = cv.take<float>(kT * St::O);
  float* sm = cv.take<float>(kT);
  float* sl = cv.take<float>(kT);

  const TrainTile tile = tiles[blockIdx.x];
  const TrainSeq seq = seqs[tile.seq];
  const int h = blockIdx.y;
  const int64_t A = int64_t{heads} * HD, ld = 4 * A;
  load_tile<HD, St::B>(gqkv, ld, A + h * HD, seq.start, tile.row0, seq.len, sq);
  for (int i = threadIdx.x; i < kT * St::O; i += kThreads) so[i] = 0.f;
  if (threadIdx.x < kT) sm[threadIdx.x] = -INFINITY, sl[threadIdx.x] = 0.f;
  const int kend = key_end(tile.row0, seq.len, seq.prefix);
  const int r = threadIdx.x >> 1, half = threadIdx.x & 1;  // 2 threads per row
  const int qi = tile.row0 + r;
  for (int k0 = 0; k0 < kend; k0 += kT) {
    load_tile<HD, St::B>(gqkv, ld, 2 * A + h * HD, seq.start, k0, seq.len, sk);
    load_tile<HD, St::B>(gqkv, ld, 3 * A + h * HD, seq.start, k0, seq.len, sv);
    __syncthreads();
    smem_mma<kT, kT, HD, wmma::row_major, wmma::col_major>(sq, St::B, sk, St::B, ss, St::S, false);
    __syncthreads();
    // Online softmax of row r over this tile's columns (this thread: half of them).
    float* srow = ss + r * St::S;
    float mx = -INFINITY;
    for (int c = half * (kT / 2); c < (half + 1) * (kT / 2); ++c) {
      const float s2 = visible(qi, k0 + c, seq.len, seq.prefix) ? srow[c] * scale_log2 : -INFINITY;
      srow[c] = s2;
      mx = fmaxf(mx, s2);
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    const float m_old = sm[r];
    const float m_new = fmaxf(m_old, mx);
    const float alpha = m_old == -INFINITY ? 0.f : exp2f(m_old - m_new);
    float sum = 0.f;
    for (int c = half * (kT / 2); c < (half + 1) * (kT / 2); ++c) {
      const float p = srow[c] == -INFINITY ? 0.f : exp2f(srow[c] - m_new);
      sum += p;
      sp[r * St::P + c] = __float2bfloat16(p);
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    for (int c = half * (HD / 2); c < (half + 1) * (HD / 2); ++c) so[r * St::O + c] *= alpha;
    __syncwarp();
    if (half == 0) sm[r] = m_new, sl[r] = sl[r] * alpha + sum;
    __syncthreads();
    smem_mma<kT, HD, kT, wmma::row_major, wmma::row_major>(sp, St::P, sv, St::B, so, St::O, true);
    __syncthreads();
  }
  // Write the normalised rows of this tile.
  for (int idx = threadIdx.x; idx < kT * HD; idx += kThreads) {
    const int rr = idx / HD, c = idx % HD;
    if (tile.row0 + rr >= seq.len) continue;
    const float l = sl[rr];
    const int64_t row = seq.start + tile.row0 + rr;
    out[row * A + h * HD + c] = __float2bfloat16(l > 0.f ? so[rr * St::O + c] / l : 0.f);
  }
  if (threadIdx.x < kT && tile.row0 + threadIdx.x < seq.len) {
    const int64_t row = seq.start + tile.row0 + threadIdx.x;
    lse[int64_t{h} * rows + row] = sm[threadIdx.x] + log2f(sl[threadIdx.x]);
  }
}

// ---- backward ----

// P = exp2(S2 - lse2) (masked) into the fp32 score tile and bf16, then dS = P * (dP - delta) as bf16.
// Rows are queries q0 + r, columns keys k0 + c.
template <int HD>
__device__ __forceinline__ void probs_and_dscores(float* ss, const float* sdp, bf16* sds, const float* slse,
                                                  const float* sdelta, int q0, int k0, const TrainSeq& seq,
                                                  float scale_log2, bf16* sp) {
  using St = Strides<HD>;
  for (int idx = threadIdx.x; idx < kT * kT; idx += kThreads) {
    const int r = idx / kT, c = idx % kT;
    const float p = visible(q0 + r, k0 + c, seq.len, seq.prefix) ? exp2f(ss[r * St::S + c] * scale_log2 - slse[r])
                                                                  : 0.f;
    if (sp) sp[r * St::P + c] = __float2bfloat16(p);
    sds[r * St::P + c] = __float2bfloat16(p * (sdp[r * St::S + c] - sdelta[r]));
  }
}

// For one (query tile, key tile) pair, what both backward passes recompute: S = Q K^T and
// dP = dO V^T on tensor cores, then P and dS (probs_and_dscores). Synchronizes before and after.
template <int HD>
__device__ __forceinline__ void recompute_p_and_ds(const bf16* sq, const bf16* sk, const bf16* sdo, const bf16* sv,
                                                   float* ss, float* sdp, bf16* sds, bf16* sp, const float* slse,
                                                   const float* sdelta, int q0, int k0, const TrainSeq& seq,
                                                   float scale_log2) {
  using St = Strides<HD>;
  __syncthreads();
  smem_mma<kT, kT, HD, wmma::row_major, wmma::col_major>(sq, St::B, sk, St::B, ss, St::S, false);    // Q K^T
  smem_mma<kT, kT, HD, wmma::row_major, wmma::col_major>(sdo, St::B, sv, St::B, sdp, St::S, false);  // dO V^T
  __syncthreads();
  probs_and_dscores<HD>(ss, sdp, sds, slse, sdelta, q0, k0, seq, scale_log2, sp);
  __syncthreads();
}

// Per-row lse2 and delta of a query tile into shared memory (0 past the sequence's end).
__device__ __forceinline__ void load_row_stats(const float* lse, const float* delta, int rows, int h, int seq_start,
                                               int q0, int len, float* slse, float* sdelta) {
  if (threadIdx.x < kT) {
    const bool ok = q0 + static_cast<int>(threadIdx.x) < len;
    const int64_t at = int64_t{h} * rows + seq_start + q0 + threadIdx.x;
    slse[threadIdx.x] = ok ? lse[at] : 0.f;
    sdelta[threadIdx.x] = ok ? delta[at] : 0.f;
  }
}

template <int HD>
struct BwdKvSmem {
  using St = Strides<HD>;
  static constexpr size_t bytes = 4 * carve(kT * St::B, 2) + 2 * carve(kT * St::S, 4) + 2 * carve(kT * St::P, 2) +
                                  2 * carve(kT * St::O, 4) + 2 * carve(kT, 4);
};

template <int HD>
__global__ void __launch_bounds__(kThreads)
    bwd_kv_kernel(const bf16* gqkv, const bf16* dout, const float* lse, const float* delta, int rows,
                  const TrainSeq* seqs, const TrainTile* tiles, int heads, bf16* dgqkv, float scale_log2,
                  float scale) {
  using St = Strides<HD>;
  extern __shared__ __align__(128) char smem[];
  Carver cv{smem};
  bf16* sk = cv.take<bf16>(kT * St::B);
  bf16* sv = cv.take<bf16>(kT * St::B);
  bf16* sq = cv.take<bf16>(kT * St::B);
  bf16* sdo = cv.take<bf16>(kT * St::B);
  float* ss = cv.take<float>(kT * St::S);
  float* sdp = cv.take<float>(kT * St::S);
  bf16* sp = cv.take<bf16>(kT * St::P);
  bf16* sds = cv.take<bf16>(kT * St::P);
  float* sdk = cv.take<float>(kT * St::O);
  float* sdv = cv.take<float>(kT * St::O);
  float* slse = cv.take<float>(kT);
  float* sdelta = cv.take<float>(kT);

  const TrainTile tile = tiles[blockIdx.x];
  const TrainSeq seq = seqs[tile.seq];
  const int h = blockIdx.y;
  const int64_t A = int64_t{heads} * HD, ld = 4 * A;
  const int k0 = tile.row0;
  load_tile<HD, St::B>(gqkv, ld, 2 * A + h * HD, seq.start, k0, seq.len, sk);
  load_tile<HD, St::B>(gqkv, ld, 3 * A + h * HD, seq.start, k0, seq.len, sv);
  for (int i = threadIdx.x; i < kT * St::O; i += kThreads) sdk[i] = 0.f, sdv[i] = 0.f;
  const int q_begin = k0 < seq.prefix ? 0 : k0;
  for (int q0 = q_begin; q0 < seq.len; q0 += kT) {
    load_tile<HD, St::B>(gqkv, ld, A + h * HD, seq.start, q0, seq.len, sq);
    load_tile<HD, St::B>(dout, A, h * HD, seq.start, q0, seq.len, sdo);
    load_row_stats(lse, delta, rows, h, seq.start, q0, seq.len, slse, sdelta);
    recompute_p_and_ds<HD>(sq, sk, sdo, sv, ss, sdp, sds, sp, slse, sdelta, q0, k0, seq, scale_log2);
    smem_mma<kT, HD, kT, wmma::col_major, wmma::row_major>(sp, St::P, sdo, St::B, sdv, St::O, true);   // P^T dO
    smem_mma<kT, HD, kT, wmma::col_major, wmma::row_major>(sds, St::P, sq, St::B, sdk, St::O, true);   // dS^T Q
    __syncthreads();
  }
  for (int idx = threadIdx.x; idx < kT * HD; idx += kThreads) {
    const int r = idx / HD, c = idx % HD;
    if (k0 + r >= seq.len) continue;
    bf16* row = dgqkv + static_cast<int64_t>(seq.start + k0 + r) * ld;
    row[2 * A + h * HD + c] = __float2bfloat16(sdk[r * St::O + c] * scale);
    row[3 * A + h * HD + c] = __float2bfloat16(sdv[r * St::O + c]);
  }
}

template <int HD>
struct BwdQSmem {
  using St = Strides<HD>;
  static constexpr size_t bytes = 4 * carve(kT * St::B, 2) + 2 * carve(kT * St::S, 4) + carve(kT * St::P, 2) +
                                  carve(kT * St::O, 4) + 2 * carve(kT, 4);
};

template <int HD>
__global__ void __launch_bounds__(kThreads)
    bwd_q_kernel(const bf16* gqkv, const bf16* dout, const float* lse, const float* delta, int rows,
                 const TrainSeq* seqs, const TrainTile* tiles, int heads, bf16* dgqkv, float scale_log2,
                 float scale) {
  using St = Strides<HD>;
  extern __shared__ __align__(128) char smem[];
  Carver cv{smem};
  bf16* sq = cv.take<bf16>(kT * St::B);
  bf16* sdo = cv.take<bf16>(kT * St::B);
  bf16* sk = cv.take<bf16>(kT * St::B);
  bf16* sv = cv.take<bf16>(kT * St::B);
  float* ss = cv.take<float>(kT * St::S);
  float* sdp = cv.take<float>(kT * St::S);
  bf16* sds = cv.take<bf16>(kT * St::P);
  float* sdq = cv.take<float>(kT * St::O);
  float* slse = cv.take<float>(kT);
  float* sdelta = cv.take<float>(kT);

  const TrainTile tile = tiles[blockIdx.x];
  const TrainSeq seq = seqs[tile.seq];
  const int h = blockIdx.y;
  const int64_t A = int64_t{heads} * HD, ld = 4 * A;
  const int q0 = tile.row0;
  load_tile<HD, St::B>(gqkv, ld, A + h * HD, seq.start, q0, seq.len, sq);
  load_tile<HD, St::B>(dout, A, h * HD, seq.start, q0, seq.len, sdo);
  load_row_stats(lse, delta, rows, h, seq.start, q0, seq.len, slse, sdelta);
  for (int i = threadIdx.x; i < kT * St::O; i += kThreads) sdq[i] = 0.f;
  const int kend = key_end(q0, seq.len, seq.prefix);
  for (int k0 = 0; k0 < kend; k0 += kT) {
    load_tile<HD, St::B>(gqkv, ld, 2 * A + h * HD, seq.start, k0, seq.len, sk);
    load_tile<HD, St::B>(gqkv, ld, 3 * A + h * HD, seq.start, k0, seq.len, sv);
    recompute_p_and_ds<HD>(sq, sk, sdo, sv, ss, sdp, sds, nullptr, slse, sdelta, q0, k0, seq, scale_log2);
    smem_mma<kT, HD, kT, wmma::row_major, wmma::row_major>(sds, St::P, sk, St::B, sdq, St::O, true);   // dS K
    __syncthreads();
  }
  for (int idx = threadIdx.x; idx < kT * HD; idx += kThreads) {
    const int r = idx / HD, c = idx % HD;
    if (q0 + r >= seq.len) continue;
    dgqkv[static_cast<int64_t>(seq.start + q0 + r) * ld + A + h * HD + c] = __float2bfloat16(sdq[r * St::O + c] * scale);
  }
}

template <typename Kernel>
void set_smem(Kernel k, size_t bytes) {
  HRM_CUDA_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

template <int HD>
void forward_hd(const bf16* gqkv, int rows, const TrainSeq* seqs, const TrainTile* tiles, int num_tiles, int heads,
                bf16* out, float* lse, cudaStream_t stream) {
  constexpr size_t bytes = FwdSmem<HD>::bytes;
  set_smem(fwd_kernel<HD>, bytes);
  const float scale_log2 = kLog2e / std::sqrt(static_cast<float>(HD));
  fwd_kernel<HD><<<dim3(num_tiles, heads), kThreads, bytes, stream>>>(gqkv, rows, seqs, tiles, heads, out, lse,
                                                                      scale_log2);
  HRM_CUDA_CHECK(cudaGetLastError());
}

template <int HD>
void backward_hd(const bf16* gqkv, const bf16* dout, const float* lse, const float* delta, int rows,
                 const TrainSeq* seqs, const TrainTile* tiles, int num_tiles, int heads, bf16* dgqkv,
                 cudaStream_t stream) {
  const float scale = 1.f / std::sqrt(static_cast<float>(HD));
  const float scale_log2 = kLog2e * scale;
  constexpr size_t kv_bytes = BwdKvSmem<HD>::bytes, q_bytes = BwdQSmem<HD>::bytes;
  set_smem(bwd_kv_kernel<HD>, kv_bytes);
  set_smem(bwd_q_kernel<HD>, q_bytes);
  bwd_kv_kernel<HD><<<dim3(num_tiles, heads), kThreads, kv_bytes, stream>>>(gqkv, dout, lse, delta, rows, seqs, tiles,
                                                                            heads, dgqkv, scale_log2, scale);
  HRM_CUDA_CHECK(cudaGetLastError());
  bwd_q_kernel<HD><<<dim3(num_tiles, heads), kThreads, q_bytes, stream>>>(gqkv, dout, lse, delta, rows, seqs, tiles,
                                                                          heads, dgqkv, scale_log2, scale);
  HRM_CUDA_CHECK(cudaGetLastError());
}

// The 227 KB of shared memory a Hopper block may use bound the head dim (BwdKvSmem<128> is ~190 KB).
static_assert(BwdKvSmem<128>::bytes <= 227 * 1024, "backward tile does not fit in shared memory");

}  // namespace

bool train_attention_supports_head_dim(int head_dim) {
  return head_dim == 16 || head_dim == 32 || head_dim == 64 || head_dim == 128;
}

#define HRM_TRAIN_HD_DISPATCH(hd, CALL)                                                                   \
  switch (hd) {                                                                                          \
    case 16: CALL(16); break;                                                                             \
    case 32: CALL(32); break;                                                                             \
    case 64: CALL(64); break;                                                                             \
    case 128: CALL(128); break;                                                                           \
    default: throw Error(cat("CUDA training: head_dim ", hd, " is not supported (16, 32, 64 or 128)"));  \
  }

void train_attention_forward(const bf16* gqkv, int rows, const TrainSeq* seqs, const TrainTile* tiles, int num_tiles,
                             int heads, int head_dim, bf16* out, float* lse, cudaStream_t stream) {
  if (num_tiles == 0) return;
#define HRM_FWD(HD) forward_hd<HD>(gqkv, rows, seqs, tiles, num_tiles, heads, out, lse, stream)
  HRM_TRAIN_HD_DISPATCH(head_dim, HRM_FWD)
#undef HRM_FWD
}

void train_attention_backward(const bf16* gqkv, const bf16* dout, const float* lse, const float* delta, int rows,
                              const TrainSeq* seqs, const TrainTile* tiles, int num_tiles, int heads, int head_dim,
                              bf16* dgqkv, cudaStream_t stream) {
  if (num_tiles == 0) return;
#define HRM_BWD(HD) backward_hd<HD>(gqkv, dout, lse, delta, rows, seqs, tiles, num_tiles, heads, dgqkv, stream)
  HRM_TRAIN_HD_DISPATCH(head_dim, HRM_BWD)
#undef HRM_BWD
}

}  // namespace hrm::cuda
