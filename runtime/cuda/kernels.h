// The CUDA kernels of HRM-Text, behind host-side launchers (kernels.cu, attention.cu).
//
// Each launcher mirrors one CPU reference op of runtime/cpu/ops.h and is compared with it in
// tests/cuda/ops_test.cpp. Conventions: the residual stream (hidden states) is fp32; GEMM inputs and
// outputs are bf16 (cuBLAS, fp32 accumulation); the KV cache is bf16 or fp8 (e4m3) in pages.
// Launchers only enqueue work on `stream` and check the launch; they never synchronize.
// Not for: layer composition or memory ownership (cuda_model.cpp).
//
// The fused attention projection of one token row is [gate | q | k | v], each heads*head_dim wide
// (the checkpoint's gqkv_proj row order), so one GEMM computes all four.
//
// Paged KV cache: page p holds `page_tokens` consecutive tokens of one sequence for every slot;
// element (page, slot, k-or-v, t, column) lives at
//   pool + (((page * slots + slot) * 2 + kv) * page_tokens + t) * attn_dim + column.
// A sequence's block table lists its pages in order: token j is in page table[j / page_tokens].
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "runtime/cuda/step_plan.h"  // AttnSeq, AttnTile

namespace hrm::cuda {

using bf16 = __nv_bfloat16;

enum class KvDtype { kBf16, kFp8E4M3 };
inline int kv_dtype_bytes(KvDtype d) { return d == KvDtype::kBf16 ? 2 : 1; }

struct KvLayout {
  void* pool = nullptr;
  KvDtype dtype = KvDtype::kBf16;
  int32_t slots = 0;        // KV slots per token (ModelConfig::kv_slots)
  int32_t page_tokens = 0;  // tokens per page
  int32_t heads = 0, head_dim = 0;
  int64_t page_elems() const { return int64_t{slots} * 2 * page_tokens * heads * head_dim; }
};

// zH[r] = embed[tokens[r]] * scale and zL[r] = z_L_init, fp32 rows of width `dim`.
void embed(const int32_t* tokens, int rows, const float* embed_table, const float* z_L_init, int dim,
           float scale, float* zH, float* zL, cudaStream_t stream);

// y = bf16(x * rsqrt(mean(x^2) + eps)), row by row.
void rms_norm(const float* x, int rows, int dim, float eps, bf16* y, cudaStream_t stream);
// sum = a + b, then y = bf16(rms_norm(sum)): the input injection fused with the first pre-norm.
void add_rms_norm(const float* a, const float* b, int rows, int dim, float eps, float* sum, bf16* y,
                  cudaStream_t stream);
// y = rms_norm(x) in fp32 (the stack-exit norm); y may equal x.
void rms_norm_f32(const float* x, int rows, int dim, float eps, float* y, cudaStream_t stream);

// On rows of [gate | q | k | v] (row stride 4*heads*head_dim): rotate-half RoPE of q in place, and
// the rotated k and the v of row r written to the cache of `slot` at page row_page[r], token row_off[r].
// Angles are positions[r] * inv_freq[i] in fp32, as transformers computes them.
void rope_and_store_kv(bf16* gqkv, int rows, const int32_t* positions, const float* inv_freq,
                       const int32_t* row_page, const int32_t* row_off, const KvLayout& kv, int slot,
                       cudaStream_t stream);

// out[r, i] = bf16(silu(gu[r, i]) * gu[r, inter + i]) for rows of [gate | up] (width 2*inter).
void silu_mul(const bf16* gu, int rows, int inter, bf16* out, cudaStream_t stream);

// out[i] = bf16(x[rows[i]]), rows of width `dim`.
void gather_rows(const float* x, const int32_t* rows, int n, int dim, bf16* out, cudaStream_t stream);

// Gated PrefixLM attention for sequences with several new tokens (prefill), flash-style: 64-query
// tiles against 64-key tiles of the paged cache with an online softmax; no score matrix in memory.
// q and gate come from gqkv (after RoPE), keys and values from the cache (already holding this
// step's tokens). Query i of a sequence sees key j iff j < prefix_len or j <= i.
// out[row, h*head_dim + d] = bf16(sigmoid(gate) * softmax(q k^T / sqrt(head_dim)) v).
void prefill_attention(const bf16* gqkv, const AttnSeq* seqs, const AttnTile* tiles, int num_tiles,
                       const int32_t* tables, const KvLayout& kv, int slot, bf16* out, cudaStream_t stream);

// The same for sequences with exactly one new token, their last (a query at the end sees every
// cached key): the keys are split into `splits` chunks processed in parallel (flash-decoding), then
// merged. `partial` holds num_seqs*heads*splits*(head_dim+2) floats (unused when splits == 1).
void decode_attention(const bf16* gqkv, const AttnSeq* seqs, int num_seqs, const int32_t* tables,
                      const KvLayout& kv, int slot, int splits, float* partial, bf16* out,
                      cudaStream_t stream);
// Head dims the attention kernels are compiled for.
bool attention_supports_head_dim(int head_dim);

// Per row of logits [n, vocab]: greedy rows (temperature[i] < 1e-5) take the argmax (first index on
// ties); the others sample from softmax(logits / temperature) with the uniform draw u[i] in [0, 1)
// (inverse CDF in id order). Writes the token ids to out.
void sample_rows(const float* logits, int n, int vocab, const float* temperature, const float* u,
                 int32_t* out, cudaStream_t stream);

}  // namespace hrm::cuda
