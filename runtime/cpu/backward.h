// Gradients of the CPU reference ops (ops.h), in fp32, for the training path (runtime/train.h).
//
// Each function is the plain adjoint of one forward op; results are accumulated in a fixed order
// and parallelised with oneTBB over independent outputs, so they do not depend on the thread count
// (checkpoint resume is bit-exact because of that). The attention pair works on packed batches:
// several sequences concatenated, each with its own bidirectional prefix, no attention across them.
// Not for: inference (ops.h is faster there and keeps a KV cache), or anything that knows about
// stacks and cycles (train.cpp composes these).
#pragma once

#include <cstdint>
#include <span>

namespace hrm::cpu {

// dx[r, i] = sum_o dy[r, o] * w[o, i]   (dy: [rows, out], w: [out, in]) — the input gradient of
// matmul_nt. Overwrites dx unless `accumulate`.
void matmul_nn(const float* dy, int64_t rows, int64_t out, const float* w, int64_t in, float* dx,
               bool accumulate = false);

// dw[o, i] += sum_r dy[r, o] * x[r, i]   — the weight gradient of matmul_nt, accumulated.
void matmul_tn_acc(const float* dy, int64_t rows, int64_t out, const float* x, int64_t in, float* dw);

// Parameterless RMSNorm backward: given x and dy of y = rms_norm(x), dx (+)= dy*r - x*r^3*mean(dy*x)
// with r = rsqrt(mean(x^2) + eps). Accumulates into dx when `accumulate`.
void rms_norm_backward(const float* x, const float* dy, int64_t rows, int64_t dim, float eps, float* dx,
                       bool accumulate);

// silu_mul backward: y = silu(g) * u  →  dg = dy * u * silu'(g), du = dy * silu(g).
void silu_mul_backward(const float* g, const float* u, const float* dy, int64_t n, float* dg, float* du);

// One sequence of a packed batch: rows [start, start+len), the first `prefix` bidirectional.
struct SeqSpan {
  int64_t start = 0;
  int64_t len = 0;
  int64_t prefix = 0;
};

// Attention of a packed batch WITHOUT the output gate: out = softmax(q k^T / sqrt(head_dim) + mask) v
// per sequence and head, with the PrefixLM mask of gated_attention (query i sees key j iff
// j < prefix or j <= i, within its own sequence). q, k, v, out: [rows, heads*head_dim].
void prefix_attention(const float* q, const float* k, const float* v, std::span<const SeqSpan> seqs,
                      int64_t heads, int64_t head_dim, float* out);

// Backward of prefix_attention given its output `out` and dout: writes dq, dk, dv (overwritten).
// Probabilities are recomputed from q and k rather than stored.
void prefix_attention_backward(const float* q, const float* k, const float* v, const float* out,
                               const float* dout, std::span<const SeqSpan> seqs, int64_t heads,
                               int64_t head_dim, float* dq, float* dk, float* dv);

}  // namespace hrm::cpu
