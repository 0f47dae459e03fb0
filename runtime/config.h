// ModelConfig: the HRM-Text config.json, parsed and validated.
//
// Reads every field of DESIGN §2: the inflated `num_hidden_layers` (blocks × H × (L+1)) when
// `num_layers_per_stack` is present, `rope_parameters.rope_theta` or the older `rope_theta`,
// `embedding_scale` defaulting to 1/initializer_range. Not for: other model types.
//
// Example:
//   hrm::ModelConfig cfg = hrm::load_config("model_dir");   // reads model_dir/config.json
//   int slots = cfg.kv_slots();                              // 128 for XL
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace hrm {

struct ModelConfig {
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_attention_heads = 0;
  int64_t head_dim = 0;
  int64_t num_layers_per_stack = 0;  // blocks in each of the H and L stacks
  int64_t H_cycles = 0;
  int64_t L_cycles = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  double embedding_scale = 1.0;
  double initializer_range = 0.02; // HrmTextConfig's default when absent
  bool prefix_lm = true;
  int64_t bos_token_id = -1;       // -1 when absent
  int64_t eos_token_id = -1;       // the first of eos_token_ids
  std::vector<int64_t> eos_token_ids;  // eos_token_id may be a list in config.json
  int64_t pad_token_id = -1;
  std::string torch_dtype;         // "bfloat16", "float32", ... ("" when absent); "dtype" or "torch_dtype"
  bool tie_word_embeddings = false; // true: no lm_head.weight, the embedding is reused

  // KV-cache slots per token: one per (stack invocation, block). DESIGN §2.
  int64_t kv_slots() const { return (H_cycles * (L_cycles + 1)) * num_layers_per_stack; }
  // Width of the attention projections (q, k, v, gate outputs; o_proj input). Transformers does not
  // require it to equal hidden_size (only hidden_size % heads == 0); head_dim defaults to 128.
  int64_t attn_dim() const { return num_attention_heads * head_dim; }
  int64_t parameter_count() const;
};

// `origin` names the file in error messages. Throws hrm::Error naming the field on anything invalid.
ModelConfig parse_config(std::string_view json, std::string_view origin = "config.json");
// `model_dir`/config.json, or `model_dir` itself when it is a file (or a missing *.json path).
ModelConfig load_config(const std::filesystem::path& model_dir);

}  // namespace hrm
