// Elementwise and row kernels of the CUDA backend (see kernels.h). Attention is in attention.cu.
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_math.cuh"
#include "runtime/cuda/kernels.h"
#include "runtime/sampling.h"  // kGreedyBelow: the CPU sampler's greedy threshold

namespace hrm::cuda {
namespace {

constexpr int kRowThreads = 256;

__global__ void embed_kernel(const int32_t* tokens, const float* table, const float* z_L_init, int dim,
                             float scale, float* zH, float* zL) {
  const int64_t r = blockIdx.x;
  const float* e = table + static_cast<int64_t>(tokens[r]) * dim;
  for (int d = threadIdx.x; d < dim; d += blockDim.x) {
    zH[r * dim + d] = e[d] * scale;
    zL[r * dim + d] = z_L_init[d];
  }
}

// One block per row. When `b` is set the row is a + b (written to `sum`); the normalised row goes to
// y (bf16) or, when y is null, back to x_out in fp32.
__global__ void rms_norm_kernel(const float* a, const float* b, int dim, float eps, float* sum, bf16* y,
                                float* x_out) {
  const int64_t r = blockIdx.x;
  const float* xa = a + r * dim;
  const float* xb = b ? b + r * dim : nullptr;
  float ss = 0.f;
  for (int d = threadIdx.x; d < dim; d += blockDim.x) {
    const float v = xb ? xa[d] + xb[d] : xa[d];
    ss += v * v;
  }
  const float inv = rsqrtf(block_sum(ss) / static_cast<float>(dim) + eps);
  for (int d = threadIdx.x; d < dim; d += blockDim.x) {
    const float v = xb ? xa[d] + xb[d] : xa[d];
    if (sum) sum[r * dim + d] = v;
    if (y) y[r * dim + d] = __float2bfloat16(v * inv);
    else x_out[r * dim + d] = v * inv;
  }
}

template <typename KV>
__global__ void rope_store_kernel(bf16* gqkv, const int32_t* positions, const float* inv_freq,
                                  const int32_t* row_page, const int32_t* row_off, KvLayout kv, int slot) {
  const int64_t r = blockIdx.x;
  const int hd = kv.head_dim, half = hd / 2, A = kv.heads * hd;
  bf16* row = gqkv + r * 4 * A;
  KV* kdst = static_cast<KV*>(kv.pool) +
             ((((static_cast<int64_t>(row_page[r]) * kv.slots + slot) * 2) * kv.page_tokens + row_off[r]) * A);
  KV* vdst = kdst + static_cast<int64_t>(kv.page_tokens) * A;
  const float pos = static_cast<float>(positions[r]);
  for (int idx = threadIdx.x; idx < kv.heads * half; idx += blockDim.x) {
    const int h = idx / half, i = idx % half;
    float s, c;
    sincosf(pos * inv_freq[i], &s, &c);
    const int lo = h * hd + i, hi = lo + half;
    bf16* q = row + A;
    const float q1 = __bfloat162float(q[lo]), q2 = __bfloat162float(q[hi]);
    q[lo] = __float2bfloat16(q1 * c - q2 * s);
    q[hi] = __float2bfloat16(q2 * c + q1 * s);
    const bf16* k = row + 2 * A;
    const float k1 = __bfloat162float(k[lo]), k2 = __bfloat162float(k[hi]);
    kdst[lo] = from_float<KV>(k1 * c - k2 * s);
    kdst[hi] = from_float<KV>(k2 * c + k1 * s);
    const bf16* v = row + 3 * A;
    vdst[lo] = from_float<KV>(__bfloat162float(v[lo]));
    vdst[hi] = from_float<KV>(__bfloat162float(v[hi]));
  }
}

__global__ void silu_mul_kernel(const bf16* gu, int64_t rows, int inter, bf16* out) {
  const int64_t n = rows * inter;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / inter, c = i % inter;
    const float g = __bfloat162float(gu[r * 2 * inter + c]);
    const float u = __bfloat162float(gu[r * 2 * inter + inter + c]);
    out[i] = __float2bfloat16(g / (1.f + expf(-g)) * u);
  }
}

__global__ void gather_rows_kernel(const float* x, const int32_t* rows, int dim, bf16* out) {
  const int64_t i = blockIdx.x;
  const float* src = x + static_cast<int64_t>(rows[i]) * dim;
  for (int d = threadIdx.x; d < dim; d += blockDim.x) out[i * dim + d] = __float2bfloat16(src[d]);
}

constexpr int kSampleThreads = 1024;

// One block per row: argmax for greedy rows; otherwise the inverse CDF of softmax(x / T) in id order.
__global__ void __launch_bounds__(kSampleThreads)
    sample_kernel(const float* logits, int vocab, const float* temperature, const float* u, int32_t* out) {
  using Reduce = cub::BlockReduce<ArgMax, kSampleThreads>;
  using SumReduce = cub::BlockReduce<float, kSampleThreads>;
  using Scan = cub::BlockScan<float, kSampleThreads>;
  using CountReduce = cub::BlockReduce<int, kSampleThreads>;
  __shared__ union {
    typename Reduce::TempStorage reduce;
    typename SumReduce::TempStorage sum;
    typename Scan::TempStorage scan;
    typename CountReduce::TempStorage count;
  } tmp;
  __shared__ ArgMax best_all;
  __shared__ float total_all;
  __shared__ int32_t below;
  const int64_t r = blockIdx.x;
  const float* x = logits + r * vocab;
  block_argmax<kSampleThreads>(x, vocab, tmp.reduce, best_all);
  const float temp = temperature[r];
  if (temp < kGreedyBelow) {
    if (threadIdx.x == 0) out[r] = best_all.index;
    return;
  }
  const float mx = best_all.value, inv_t = 1.f / temp;
  float part = 0.f;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) part += expf((x[i] - mx) * inv_t);
  const float total = SumReduce(tmp.sum).Sum(part);
  if (threadIdx.x == 0) {
    total_all = total;
    below = 0;
  }
  __syncthreads();
  // The chosen id is the first whose cumulative mass exceeds the target, i.e. the number of ids
  // whose cumulative mass does not: counting leaves no gap between neighbouring intervals however
  // the fp32 sums round.
  const float target = u[r] * total_all;
  float carried = 0.f;
  for (int base = 0; base < vocab; base += blockDim.x) {
    const int i = base + threadIdx.x;
    const float p = i < vocab ? expf((x[i] - mx) * inv_t) : 0.f;
    float incl, chunk;
    Scan(tmp.scan).InclusiveSum(p, incl, chunk);
    __syncthreads();
    const int n = CountReduce(tmp.count).Sum(i < vocab && carried + incl <= target ? 1 : 0);
    if (threadIdx.x == 0) below += n;
    __syncthreads();
    carried += chunk;
    if (carried > target) break;  // uniform across the block: every thread has the same `carried`
  }
  // Rounding can leave the target unreached (u close to 1): then the mode.
  if (threadIdx.x == 0) out[r] = below < vocab ? below : best_all.index;
}

void check_launch() { HRM_CUDA_CHECK(cudaGetLastError()); }

}  // namespace

void embed(const int32_t* tokens, int rows, const float* embed_table, const float* z_L_init, int dim,
           float scale, float* zH, float* zL, cudaStream_t stream) {
  if (rows == 0) return;
  embed_kernel<<<rows, kRowThreads, 0, stream>>>(tokens, embed_table, z_L_init, dim, scale, zH, zL);
  check_launch();
}

void rms_norm(const float* x, int rows, int dim, float eps, bf16* y, cudaStream_t stream) {
  if (rows == 0) return;
  rms_norm_kernel<<<rows, kRowThreads, 0, stream>>>(x, nullptr, dim, eps, nullptr, y, nullptr);
  check_launch();
}

void add_rms_norm(const float* a, const float* b, int rows, int dim, float eps, float* sum, bf16* y,
                  cudaStream_t stream) {
  if (rows == 0) return;
  rms_norm_kernel<<<rows, kRowThreads, 0, stream>>>(a, b, dim, eps, sum, y, nullptr);
  check_launch();
}

void rms_norm_f32(const float* x, int rows, int dim, float eps, float* y, cudaStream_t stream) {
  if (rows == 0) return;
  rms_norm_kernel<<<rows, kRowThreads, 0, stream>>>(x, nullptr, dim, eps, nullptr, nullptr, y);
  check_launch();
}

void rope_and_store_kv(bf16* gqkv, int rows, const int32_t* positions, const float* inv_freq,
                       const int32_t* row_page, const int32_t* row_off, const KvLayout& kv, int slot,
                       cudaStream_t stream) {
  if (rows == 0) return;
  if (kv.dtype == KvDtype::kBf16)
    rope_store_kernel<bf16><<<rows, 128, 0, stream>>>(gqkv, positions, inv_freq, row_page, row_off, kv, slot);
  else
    rope_store_kernel<fp8><<<rows, 128, 0, stream>>>(gqkv, positions, inv_freq, row_page, row_off, kv, slot);
  check_launch();
}

void silu_mul(const bf16* gu, int rows, int inter, bf16* out, cudaStream_t stream) {
  if (rows == 0) return;
  const int64_t n = static_cast<int64_t>(rows) * inter;
  const int blocks = static_cast<int>(std::min<int64_t>((n + 255) / 256, 65535));
  silu_mul_kernel<<<blocks, 256, 0, stream>>>(gu, rows, inter, out);
  check_launch();
}

void gather_rows(const float* x, const int32_t* rows, int n, int dim, bf16* out, cudaStream_t stream) {
  if (n == 0) return;
  gather_rows_kernel<<<n, kRowThreads, 0, stream>>>(x, rows, dim, out);
  check_launch();
}

void sample_rows(const float* logits, int n, int vocab, const float* temperature, const float* u, int32_t* out,
                 cudaStream_t stream) {
  if (n == 0) return;
  sample_kernel<<<n, kSampleThreads, 0, stream>>>(logits, vocab, temperature, u, out);
  check_launch();
}

}  // namespace hrm::cuda
