// The CUDA kernels of the training path (train_kernels.cu, train_attention.cu): the forward ops the
// inference kernels do not cover in training's layout, and the adjoint of every op.
//
// Each launcher mirrors one CPU reference op of runtime/cpu/ops.h or runtime/cpu/backward.h and is
// compared with it in tests/cuda/train_test.cpp. Conventions as in kernels.h: the residual stream and
// its gradient are fp32; GEMM inputs are bf16; the fused attention projection of a row is
// [gate | q | k | v] (its gradient [dgate | dq | dk | dv] has the same layout, so one GEMM gives the
// fused weight's gradient). A packed training batch is rows of several sequences, each with its own
// bidirectional prefix (TrainSeq); positions restart per sequence. Launchers only enqueue work on
// `stream`; they never synchronize.
// Not for: composing the model (cuda_train.cpp), inference (kernels.h).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <span>
#include <vector>

namespace hrm::cuda {

using bf16 = __nv_bfloat16;

// Rows [start, start + len) of a packed batch; the first `prefix` rows are bidirectional.
struct TrainSeq {
  int32_t start = 0, len = 0, prefix = 0;
};
// One 64-row tile of one sequence: the unit of work of the attention kernels. Rows `row0` ..
// min(row0 + 64, end) - 1 of sequence `seq`.
struct TrainTile {
  int32_t seq = 0, row0 = 0;
};
inline constexpr int kTrainTileRows = 64;
// The tiles of `seqs`, in order (host side).
std::vector<TrainTile> train_tiles(std::span<const TrainSeq> seqs);

// y = a + b (fp32, n values). y may alias a or b.
void add(const float* a, const float* b, int64_t n, float* y, cudaStream_t stream);
// y += a (fp32, n values).
void add_into(float* y, const float* a, int64_t n, cudaStream_t stream);
// y = bf16(x), n values.
void to_bf16(const float* x, int64_t n, bf16* y, cudaStream_t stream);

// Rotate-half RoPE, in place, on the q and k parts of rows of [gate | q | k | v] (row stride 4*A, A =
// heads*head_dim). Angles are `sign` * positions[r] * inv_freq[i] in fp32: sign = -1 rotates back, the
// adjoint (as cpu::rope_rotate_half with negated positions).
void rope_qk(bf16* gqkv, int rows, int heads, int head_dim, const int32_t* positions, const float* inv_freq,
             float sign, cudaStream_t stream);

// gated[r, c] = bf16(attn[r, c] * sigmoid(gqkv[r, c])) — the output gate (gate = the first A columns).
void gate_forward(const bf16* gqkv, const bf16* attn, int rows, int attn_dim, bf16* gated, cudaStream_t stream);
// Its adjoint, given d = d(gated) in fp32: dgqkv[r, c] = bf16(d * attn * s * (1 - s)) for the gate
// columns; dattn = bf16(d * s), the attention output's gradient; and per (head, row) the attention
// backward's row term delta[h * rows + r] = sum over the head's columns of dattn * attn (both as stored).
void gate_backward(const bf16* gqkv, const bf16* attn, const float* d, int rows, int heads, int head_dim,
                   bf16* dgqkv, bf16* dattn, float* delta, cudaStream_t stream);

// For rows of [gate | up] (width 2*inter) and dy = d(silu(gate) * up) in fp32:
// dgu = bf16([dy * up * silu'(gate) | dy * silu(gate)]).
void silu_mul_backward(const bf16* gu, const float* dy, int rows, int inter, bf16* dgu, cudaStream_t stream);

// Parameterless RMSNorm adjoint (cpu::rms_norm_backward): dx (+)= dy*r - x*r^3*mean(dy*x).
void rms_norm_backward(const float* x, const float* dy, int rows, int dim, float eps, float* dx, bool accumulate,
                       cudaStream_t stream);

// Cross-entropy of rows of fp32 logits [n, vocab] against labels (all in [0, vocab)): loss[i] = lse -
// logit[label], correct[i] = (first argmax == label), and dlogits = bf16((softmax - onehot) * inv_n).
void cross_entropy(const float* logits, const int32_t* labels, int n, int vocab, float inv_n, float* loss,
                   int32_t* correct, bf16* dlogits, cudaStream_t stream);

// dst[rows[i]] = src[i] for n rows of width dim (fp32); the other rows of dst are untouched.
void scatter_rows(const float* src, const int32_t* rows, int n, int dim, float* dst, cudaStream_t stream);

// Embedding adjoint without atomics: for each of `n_tokens` distinct tokens, grad[token[t]] +=
// scale * sum over rows order[begin[t] .. begin[t+1]) of dz[row], summed in that order.
void embed_backward(const float* dz, const int32_t* token, const int32_t* begin, const int32_t* order, int n_tokens,
                    int dim, float scale, float* grad, cudaStream_t stream);

// One Adam-atan2 step on n fp32 elements of one tensor, as adam_atan2_update (optimizer.h) does on the
// host: p *= decay; m += b1c (g - m); v = b2 v + b2c g^2; p -= step_size atan2(m, sqrt(v) inv_sqrt_bc2);
// then, when `ema` is not null, ema += ema_w (p - ema).
struct AdamScalars {
  float decay, b1c, b2, b2c, step_size, inv_sqrt_bc2, ema_w;
};
void adam_atan2(float* p, const float* g, float* m, float* v, float* ema, int64_t n, AdamScalars s,
                cudaStream_t stream);

// PrefixLM attention of a packed batch WITHOUT the output gate (cpu::prefix_attention), flash-style on
// tensor cores: q, k, v are the q/k/v parts of rows of [gate | q | k | v] (after RoPE); query i of a
// sequence sees key j iff j < prefix or j <= i. Only the rows of `tiles` are written: out [rows, A]
// (bf16) and, per (head, row), lse[h * rows + r] = log2(sum_j exp2(s2_j)) over the keys the row sees,
// with s2_j = q.k_j * log2(e) / sqrt(head_dim) (the natural log-sum-exp of the scores, times log2(e)).
void train_attention_forward(const bf16* gqkv, int rows, const TrainSeq* seqs, const TrainTile* tiles, int num_tiles,
                             int heads, int head_dim, bf16* out, float* lse, cudaStream_t stream);
// Its adjoint (cpu::prefix_attention_backward) from dout (bf16 [rows, A]), the forward's lse and
// delta of gate_backward, which it uses as given (P = exp2(s2 - lse), dS = P * (dout.v - delta)):
// writes dq = dS k / sqrt(head_dim), dk = dS^T q / sqrt(head_dim), dv = P^T dout (bf16) into the
// q/k/v parts of the rows of `tiles` in dgqkv; the gate columns are left as they are. Two passes, no
// atomics: one over key tiles (dk, dv), one over query tiles (dq); deterministic.
void train_attention_backward(const bf16* gqkv, const bf16* dout, const float* lse, const float* delta, int rows,
                              const TrainSeq* seqs, const TrainTile* tiles, int num_tiles, int heads, int head_dim,
                              bf16* dgqkv, cudaStream_t stream);
// Head dims the training attention kernels are compiled for.
bool train_attention_supports_head_dim(int head_dim);

}  // namespace hrm::cuda
