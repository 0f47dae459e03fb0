// The CPU reference ops of HRM-Text, in fp32: each is the plain definition, parallelised with oneTBB
// over independent outputs so results do not depend on the thread count.
//
// The CUDA backend mirrors these op by op (runtime/cuda/); the op-table test compares them.
// Not for: anything that knows about layers, caches or batches (model.cpp composes these).
#pragma once

#include <cstdint>
#include <span>

namespace hrm::cpu {

// Lanes of the fixed-order dot product: wide enough for the compiler to vectorise (AVX2 = 8
// floats), and a fixed summation tree so results do not depend on threads or tiling.
inline constexpr int kLanes = 8;

inline float reduce_lanes(const float* acc) {
  float s = 0.f;
  for (int l = 0; l < kLanes; ++l) s += acc[l];
  return s;
}

// Fixed-order dot product of n floats: kLanes partial sums, reduced, then the tail in order. Every
// op that sums products uses it, so the forward and backward ops round alike.
inline float dot(const float* a, const float* b, int64_t n) {
  float acc[kLanes] = {};
  const int64_t main = n - n % kLanes;
  for (int64_t j = 0; j < main; j += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += a[j + l] * b[j + l];
  float s = reduce_lanes(acc);
  for (int64_t j = main; j < n; ++j) s += a[j] * b[j];
  return s;
}

// y[r, o] = sum_i x[r, i] * w[o, i]   (x: [rows, in], w: [out, in] as stored in checkpoints).
// Each output is a fixed-order sum, so the result is identical for any thread count.
void matmul_nt(const float* x, int64_t rows, int64_t in, const float* w, int64_t out, float* y);

// Parameterless RMSNorm, row by row: y = x * rsqrt(mean(x^2) + eps). `y` may equal `x`.
void rms_norm(const float* x, int64_t rows, int64_t dim, float eps, float* y);

// Rotate-half RoPE in place on rows of [heads * head_dim]; row r has position positions[r].
// inv_freq has head_dim/2 entries; cos/sin are duplicated over both halves as in transformers.
void rope_rotate_half(float* x, int64_t rows, int64_t heads, int64_t head_dim,
                      std::span<const int64_t> positions, std::span<const float> inv_freq);

// y = silu(gate) * up, elementwise over n values. `y` may alias `gate`.
void silu_mul(const float* gate, const float* up, int64_t n, float* y);

// Gated attention of one sequence. q: [n_q, heads*head_dim] for absolute positions
// q_start .. q_start+n_q-1; k, v: [n_kv, heads*head_dim] (positions 0..n_kv-1); gate: same shape as q.
// Query i sees key j iff j < prefix_len (the bidirectional prefix) or j <= i (causal), and j < n_kv.
// out = sigmoid(gate) * softmax(q k^T / sqrt(head_dim) + mask) v.
void gated_attention(const float* q, const float* gate, int64_t n_q, int64_t q_start,
                     const float* k, const float* v, int64_t n_kv, int64_t prefix_len,
                     int64_t heads, int64_t head_dim, float* out);

}  // namespace hrm::cpu
