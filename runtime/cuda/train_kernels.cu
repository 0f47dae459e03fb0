// Elementwise, row and loss kernels of the training path (see train_kernels.h). The attention pair is
// in train_attention.cu.
#include <cub/block/block_reduce.cuh>

#include <algorithm>

#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/device_math.cuh"
#include "runtime/cuda/train_kernels.h"

namespace hrm::cuda {
namespace {

constexpr int kRowThreads = 256;

void check_launch() { HRM_CUDA_CHECK(cudaGetLastError()); }

// A grid-stride launch over n elements.
int grid_for(int64_t n) { return static_cast<int>(std::clamp<int64_t>((n + 255) / 256, 1, 65535)); }

#define HRM_GRID_STRIDE(i, n)                                                                          \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n);              \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

__device__ __forceinline__ float sigmoidf(float x) { return 1.f / (1.f + expf(-x)); }

__global__ void add_kernel(const float* a, const float* b, int64_t n, float* y) {
  HRM_GRID_STRIDE(i, n) y[i] = a[i] + b[i];
}

__global__ void to_bf16_kernel(const float* x, int64_t n, bf16* y) {
  HRM_GRID_STRIDE(i, n) y[i] = __float2bfloat16(x[i]);
}

// One block per row; every (head, pair) rotates q and k.
__global__ void rope_qk_kernel(bf16* gqkv, int heads, int head_dim, const int32_t* positions, const float* inv_freq,
                               float sign) {
  const int64_t r = blockIdx.x;
  const int half = head_dim / 2, A = heads * head_dim;
  bf16* row = gqkv + r * 4 * A;
  const float pos = sign * static_cast<float>(positions[r]);
  for (int idx = threadIdx.x; idx < heads * half; idx += blockDim.x) {
    const int h = idx / half, i = idx % half;
    float s, c;
    sincosf(pos * inv_freq[i], &s, &c);
    const int lo = h * head_dim + i, hi = lo + half;
    for (int part = 1; part <= 2; ++part) {  // q, then k
      bf16* x = row + part * A;
      const float x1 = __bfloat162float(x[lo]), x2 = __bfloat162float(x[hi]);
      x[lo] = __float2bfloat16(x1 * c - x2 * s);
      x[hi] = __float2bfloat16(x2 * c + x1 * s);
    }
  }
}

__global__ void gate_forward_kernel(const bf16* gqkv, const bf16* attn, int64_t rows, int A, bf16* gated) {
  HRM_GRID_STRIDE(i, rows * A) {
    const int64_t r = i / A, c = i % A;
    gated[i] = __float2bfloat16(__bfloat162float(attn[i]) * sigmoidf(__bfloat162float(gqkv[r * 4 * A + c])));
  }
}

// One warp per (row, head).
__global__ void gate_backward_kernel(const bf16* gqkv, const bf16* attn, const float* d, int rows, int heads,
                                     int head_dim, bf16* dgqkv, bf16* dattn, float* delta) {
  const int64_t warp = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (warp >= static_cast<int64_t>(rows) * heads) return;
  const int64_t r = warp / heads;
  const int h = static_cast<int>(warp % heads);
  const int A = heads * head_dim;
  float dot = 0.f;
  for (int c = h * head_dim + lane; c < (h + 1) * head_dim; c += 32) {
    const float s = sigmoidf(__bfloat162float(gqkv[r * 4 * A + c]));
    const float a = __bfloat162float(attn[r * A + c]);
    const float g = d[r * A + c];
    dgqkv[r * 4 * A + c] = __float2bfloat16(g * a * s * (1.f - s));
    const bf16 da = __float2bfloat16(g * s);
    dattn[r * A + c] = da;
    dot += __bfloat162float(da) * a;
  }
  dot = warp_sum(dot);
  if (lane == 0) delta[static_cast<int64_t>(h) * rows + r] = dot;
}

__global__ void silu_mul_backward_kernel(const bf16* gu, const float* dy, int64_t rows, int inter, bf16* dgu) {
  HRM_GRID_STRIDE(i, rows * inter) {
    const int64_t r = i / inter, c = i % inter;
    const float g = __bfloat162float(gu[r * 2 * inter + c]);
    const float u = __bfloat162float(gu[r * 2 * inter + inter + c]);
    const float s = sigmoidf(g);
    const float silu = g * s;
    dgu[r * 2 * inter + c] = __float2bfloat16(dy[i] * u * s * (1.f + g * (1.f - s)));
    dgu[r * 2 * inter + inter + c] = __float2bfloat16(dy[i] * silu);
  }
}

// One block per row.
__global__ void rms_norm_backward_kernel(const float* x, const float* dy, int dim, float eps, float* dx,
                                         bool accumulate) {
  const int64_t r = blockIdx.x;
  const float* xr = x + r * dim;
  const float* gr = dy + r * dim;
  float ss = 0.f, xg = 0.f;
  for (int d = threadIdx.x; d < dim; d += blockDim.x) {
    ss += xr[d] * xr[d];
    xg += xr[d] * gr[d];
  }
  const float inv = rsqrtf(block_sum(ss) / static_cast<float>(dim) + eps);
  const float mean_xg = block_sum(xg) / static_cast<float>(dim);
  const float k = inv * inv * inv * mean_xg;
  for (int d = threadIdx.x; d < dim; d += blockDim.x) {
    const float v = gr[d] * inv - xr[d] * k;
    dx[r * dim + d] = accumulate ? dx[r * dim + d] + v : v;
  }
}

constexpr int kLossThreads = 512;

// One block per row.
__global__ void __launch_bounds__(kLossThreads)
    cross_entropy_kernel(const float* logits, const int32_t* labels, int vocab, float inv_n, float* loss,
                         int32_t* correct, bf16* dlogits) {
  using Reduce = cub::BlockReduce<ArgMax, kLossThreads>;
  using SumReduce = cub::BlockReduce<float, kLossThreads>;
  __shared__ union {
    typename Reduce::TempStorage reduce;
    typename SumReduce::TempStorage sum;
  } tmp;
  __shared__ ArgMax best_all;
  __shared__ float lse_all;
  const int64_t r = blockIdx.x;
  const float* z = logits + r * vocab;
  block_argmax<kLossThreads>(z, vocab, tmp.reduce, best_all);
  const float mx = best_all.value;
  float part = 0.f;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) part += expf(z[i] - mx);
  const float total = SumReduce(tmp.sum).Sum(part);
  const int32_t label = labels[r];
  if (threadIdx.x == 0) {
    lse_all = mx + logf(total);
    loss[r] = lse_all - z[label];
    correct[r] = best_all.index == label;
  }
  __syncthreads();
  const float lse = lse_all;
  bf16* g = dlogits + r * vocab;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x)
    g[i] = __float2bfloat16(expf(z[i] - lse) * inv_n - (i == label ? inv_n : 0.f));
}

__global__ void scatter_rows_kernel(const float* src, const int32_t* rows, int dim, float* dst) {
  const int64_t i = blockIdx.x;
  float* d = dst + static_cast<int64_t>(rows[i]) * dim;
  for (int c = threadIdx.x; c < dim; c += blockDim.x) d[c] = src[i * dim + c];
}

// One block per distinct token.
__global__ void embed_backward_kernel(const float* dz, const int32_t* token, const int32_t* begin,
                                      const int32_t* order, int dim, float scale, float* grad) {
  const int t = blockIdx.x;
  float* g = grad + static_cast<int64_t>(token[t]) * dim;
  for (int c = threadIdx.x; c < dim; c += blockDim.x) {
    float acc = 0.f;
    for (int i = begin[t]; i < begin[t + 1]; ++i) acc += dz[static_cast<int64_t>(order[i]) * dim + c];
    g[c] += acc * scale;
  }
}

__global__ void adam_atan2_kernel(float* p, const float* g, float* m, float* v, float* e, int64_t n, AdamScalars s) {
  HRM_GRID_STRIDE(i, n) {
    float pi = p[i] * s.decay;
    const float mi = m[i] + s.b1c * (g[i] - m[i]);
    const float vi = v[i] * s.b2 + s.b2c * g[i] * g[i];
    pi -= s.step_size * atan2f(mi, sqrtf(vi) * s.inv_sqrt_bc2);
    p[i] = pi, m[i] = mi, v[i] = vi;
    if (e) e[i] += s.ema_w * (pi - e[i]);
  }
}

}  // namespace

void add(const float* a, const float* b, int64_t n, float* y, cudaStream_t stream) {
  if (n == 0) return;
  add_kernel<<<grid_for(n), 256, 0, stream>>>(a, b, n, y);
  check_launch();
}

void add_into(float* y, const float* a, int64_t n, cudaStream_t stream) { add(y, a, n, y, stream); }

void to_bf16(const float* x, int64_t n, bf16* y, cudaStream_t stream) {
  if (n == 0) return;
  to_bf16_kernel<<<grid_for(n), 256, 0, stream>>>(x, n, y);
  check_launch();
}

void rope_qk(bf16* gqkv, int rows, int heads, int head_dim, const int32_t* positions, const float* inv_freq,
             float sign, cudaStream_t stream) {
  if (rows == 0) return;
  rope_qk_kernel<<<rows, 128, 0, stream>>>(gqkv, heads, head_dim, positions, inv_freq, sign);
  check_launch();
}

void gate_forward(const bf16* gqkv, const bf16* attn, int rows, int attn_dim, bf16* gated, cudaStream_t stream) {
  if (rows == 0) return;
  gate_forward_kernel<<<grid_for(int64_t{rows} * attn_dim), 256, 0, stream>>>(gqkv, attn, rows, attn_dim, gated);
  check_launch();
}

void gate_backward(const bf16* gqkv, const bf16* attn, const float* d, int rows, int heads, int head_dim,
                   bf16* dgqkv, bf16* dattn, float* delta, cudaStream_t stream) {
  if (rows == 0) return;
  const int64_t warps = int64_t{rows} * heads;
  const int blocks = static_cast<int>((warps * 32 + 255) / 256);
  gate_backward_kernel<<<blocks, 256, 0, stream>>>(gqkv, attn, d, rows, heads, head_dim, dgqkv, dattn, delta);
  check_launch();
}

void silu_mul_backward(const bf16* gu, const float* dy, int rows, int inter, bf16* dgu, cudaStream_t stream) {
  if (rows == 0) return;
  silu_mul_backward_kernel<<<grid_for(int64_t{rows} * inter), 256, 0, stream>>>(gu, dy, rows, inter, dgu);
  check_launch();
}

void rms_norm_backward(const float* x, const float* dy, int rows, int dim, float eps, float* dx, bool accumulate,
                       cudaStream_t stream) {
  if (rows == 0) return;
  rms_norm_backward_kernel<<<rows, kRowThreads, 0, stream>>>(x, dy, dim, eps, dx, accumulate);
  check_launch();
}

void cross_entropy(const float* logits, const int32_t* labels, int n, int vocab, float inv_n, float* loss,
                   int32_t* correct, bf16* dlogits, cudaStream_t stream) {
  if (n == 0) return;
  cross_entropy_kernel<<<n, kLossThreads, 0, stream>>>(logits, labels, vocab, inv_n, loss, correct, dlogits);
  check_launch();
}

void scatter_rows(const float* src, const int32_t* rows, int n, int dim, float* dst, cudaStream_t stream) {
  if (n == 0) return;
  scatter_rows_kernel<<<n, kRowThreads, 0, stream>>>(src, rows, dim, dst);
  check_launch();
}

void adam_atan2(float* p, const float* g, float* m, float* v, float* ema, int64_t n, AdamScalars s,
                cudaStream_t stream) {
  if (n == 0) return;
  adam_atan2_kernel<<<grid_for(n), 256, 0, stream>>>(p, g, m, v, ema, n, s);
  check_launch();
}

void embed_backward(const float* dz, const int32_t* token, const int32_t* begin, const int32_t* order, int n_tokens,
                    int dim, float scale, float* grad, cudaStream_t stream) {
  if (n_tokens == 0) return;
  embed_backward_kernel<<<n_tokens, kRowThreads, 0, stream>>>(dz, token, begin, order, dim, scale, grad);
  check_launch();
}

}  // namespace hrm::cuda
