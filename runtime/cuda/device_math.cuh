// Small device helpers shared by the CUDA kernels: warp/block reductions and reads/writes of KV-cache
// elements in either cache dtype (bf16, fp8 e4m3) converted to and from fp32.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <cub/block/block_reduce.cuh>

#include <cstdint>

#include "runtime/cuda/kernels.h"

namespace hrm::cuda {

using fp8 = __nv_fp8_e4m3;

__device__ __forceinline__ float warp_sum(float v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets the total.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float partial[32];
  __shared__ float total;
  v = warp_sum(v);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const int warps = blockDim.x >> 5;
    float w = lane < warps ? partial[lane] : 0.f;
    w = warp_sum(w);
    if (lane == 0) total = w;
  }
  __syncthreads();
  const float t = total;
  __syncthreads();  // `partial` and `total` may be reused by the next call
  return t;
}

// A (value, index) pair for block-wide argmax reductions (cub::BlockReduce with ArgMaxOp): the larger
// value wins, and on ties the smaller index, as torch.argmax.
struct ArgMax {
  float value;
  int32_t index;
};
struct ArgMaxOp {
  __device__ ArgMax operator()(const ArgMax& a, const ArgMax& b) const {
    if (b.value > a.value || (b.value == a.value && b.index < a.index)) return b;
    return a;
  }
};

// The first maximum of x[0, n) over a block of THREADS threads: each thread scans a strided slice in
// ascending order, cub reduces, and thread 0 publishes the result in `result` (shared memory) for all.
template <int THREADS>
__device__ __forceinline__ ArgMax block_argmax(const float* x, int n,
                                               typename cub::BlockReduce<ArgMax, THREADS>::TempStorage& tmp,
                                               ArgMax& result) {
  ArgMax best{-INFINITY, 0};
  for (int i = threadIdx.x; i < n; i += blockDim.x)
    if (x[i] > best.value) best = ArgMax{x[i], i};  // strided ascending: keeps the first maximum
  best = cub::BlockReduce<ArgMax, THREADS>(tmp).Reduce(best, ArgMaxOp());
  if (threadIdx.x == 0) result = best;
  __syncthreads();
  return result;
}

__device__ __forceinline__ float to_float(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(fp8 x) { return static_cast<float>(x); }

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ bf16 from_float<bf16>(float x) { return __float2bfloat16(x); }
template <>
__device__ __forceinline__ fp8 from_float<fp8>(float x) {
  fp8 r;
  r.__x = __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3);
  return r;
}

// Eight consecutive cache elements (16-byte aligned for bf16, 8-byte for fp8) as eight bf16 packed
// in a uint4, ready for shared memory.
__device__ __forceinline__ uint4 load8_as_bf16(const bf16* p) { return *reinterpret_cast<const uint4*>(p); }
__device__ __forceinline__ uint4 load8_as_bf16(const fp8* p) {
  const uint2 raw = *reinterpret_cast<const uint2*>(p);
  const uint8_t* b = reinterpret_cast<const uint8_t*>(&raw);
  uint4 out;
  bf16* o = reinterpret_cast<bf16*>(&out);
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    fp8 v;
    v.__x = b[i];
    o[i] = __float2bfloat16(static_cast<float>(v));
  }
  return out;
}

// N consecutive cache elements as fp32 (N a multiple of 8 uses 8-element vector loads).
template <int N, typename T>
__device__ __forceinline__ void load_floats(const T* p, float* f) {
  if constexpr (N % 8 == 0) {
#pragma unroll
    for (int c = 0; c < N; c += 8) {
      const uint4 v = load8_as_bf16(p + c);
      const bf16* b = reinterpret_cast<const bf16*>(&v);
#pragma unroll
      for (int i = 0; i < 8; ++i) f[c + i] = __bfloat162float(b[i]);
    }
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) f[i] = to_float(p[i]);
  }
}

}  // namespace hrm::cuda
