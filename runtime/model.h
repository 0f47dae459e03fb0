// The HRM-Text model on the CPU reference backend: weights in fp32, every op computed in fp32.
//
// This is the runtime's source of truth: simple, exact, tested against transformers'
// HrmTextForCausalLM (tests/runtime/model_parity_test.cpp). The CUDA backend is tested against it.
// It computes DESIGN §2: embedding scale, z_L_init, H/L cycles with input injection, pre-norm blocks
// with the stack-exit norm, gated MHA with rotate-half RoPE, SwiGLU, the untied lm_head, the
// PrefixLM mask, and a KV cache with one slot per (stack invocation, block).
// Not for: batching policy or sampling (engine.h), tokenization (tokenizer.h).
//
// Example:
//   hrm::Model model = hrm::Model::load("model_dir");
//   hrm::KVCache cache = model.new_cache();
//   std::vector<float> logits = model.forward_one(cache, prompt_ids, /*prefix=*/prompt_ids.size());  // [V] of the last token
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include "runtime/config.h"
#include "runtime/tokenizer.h"

namespace hrm {

class Checkpoint;

// One transformer block's weights, row-major [out, in] like the checkpoint.
struct BlockWeights {
  std::vector<float> gate, q, k, v;   // [heads*head_dim, D] each
  std::vector<float> o;               // [D, heads*head_dim]
  std::vector<float> mlp_gate, up;    // [I, D]
  std::vector<float> down;            // [D, I]
};

struct ModelWeights {
  std::vector<float> embed;    // [V, D]
  std::vector<float> lm_head;  // [V, D]
  std::vector<float> z_L_init; // [D]
  std::vector<BlockWeights> L, H;
};

// Reads every weight of DESIGN §2 from a checkpoint in either spelling (fused `attn.gqkv_proj` /
// `mlp.gate_up_proj`, or unfused `self_attn.*_proj` / `mlp.*_proj`), converting to fp32.
// Throws hrm::Error naming the checkpoint and the tensor on anything missing or misshapen.
ModelWeights load_weights(const Checkpoint& ckpt, const ModelConfig& cfg);

// Keys and values of one sequence: for each slot, [positions, heads*head_dim] rows.
class KVCache {
 public:
  KVCache() = default;
  KVCache(int64_t slots, int64_t kv_dim) : kv_dim_(kv_dim), k_(slots), v_(slots) {}

  int64_t length() const { return length_; }   // tokens stored
  int64_t prefix_length() const { return prefix_; }  // tokens of the bidirectional prefix
  int64_t slots() const { return static_cast<int64_t>(k_.size()); }
  int64_t kv_dim() const { return kv_dim_; }
  const float* keys(int64_t slot) const { return k_[slot].data(); }
  const float* values(int64_t slot) const { return v_[slot].data(); }
  size_t bytes() const;

  // Used by the model while it runs a step: rows for `count` new tokens are appended to every slot.
  float* append_rows(int64_t slot, bool keys, int64_t count);
  void commit(int64_t count, int64_t prefix_count);

 private:
  int64_t kv_dim_ = 0;
  int64_t length_ = 0;
  int64_t prefix_ = 0;
  std::vector<std::vector<float>> k_, v_;
};

// One sequence's share of a batched step: new tokens appended to its cache.
struct StepInput {
  KVCache* cache = nullptr;
  std::span<const TokenId> tokens;
  // How many of the leading new tokens extend the bidirectional prefix (prefill); the rest are
  // response tokens, attended causally. Prefix tokens may only follow prefix tokens.
  int64_t prefix = 0;
};

class Model {
 public:
  static Model load(const std::filesystem::path& model_dir);
  Model(ModelConfig cfg, ModelWeights w);

  const ModelConfig& config() const { return cfg_; }
  const ModelWeights& weights() const { return w_; }
  KVCache new_cache() const;

  // Runs one batched step over several sequences (ragged lengths; no attention across sequences)
  // and returns, per sequence, the logits of the requested rows: all new tokens when
  // `all_logits`, else only the last new token. Row-major [rows, V] per sequence.
  std::vector<std::vector<float>> step(std::span<StepInput> batch, bool all_logits = false) const;

  // Convenience for one sequence: logits of its last new token.
  std::vector<float> forward_one(KVCache& cache, std::span<const TokenId> tokens, int64_t prefix) const;

  // Full recomputation in one pass from an empty cache: `prefix_len` tokens bidirectional, the
  // rest causal. Returns [tokens.size(), V] logits. The definition cached decoding must reproduce.
  std::vector<float> forward_full(std::span<const TokenId> tokens, int64_t prefix_len) const;

 private:
  ModelConfig cfg_;
  ModelWeights w_;
  std::vector<float> inv_freq_;  // [head_dim/2], as transformers computes it in fp32
};

}  // namespace hrm
