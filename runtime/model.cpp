// HRM-Text forward pass on the CPU reference backend (see model.h).
#include "runtime/model.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "common/error.h"
#include "runtime/cpu/ops.h"
#include "runtime/safetensors.h"

namespace hrm {
namespace {

std::vector<float> read(const Checkpoint& ckpt, const std::string& name, std::vector<int64_t> shape) {
  return ckpt.require(name, std::move(shape)).to_f32();
}

// Splits a fused tensor [parts * rows, cols] into `parts` row blocks.
std::vector<std::vector<float>> split_rows(const std::vector<float>& fused, int64_t parts, int64_t rows,
                                           int64_t cols) {
  std::vector<std::vector<float>> out(parts);
  for (int64_t p = 0; p < parts; ++p)
    out[p].assign(fused.begin() + p * rows * cols, fused.begin() + (p + 1) * rows * cols);
  return out;
}

BlockWeights load_block(const Checkpoint& ckpt, const ModelConfig& c, const std::string& prefix) {
  const int64_t D = c.hidden_size, A = c.num_attention_heads * c.head_dim, I = c.intermediate_size;
  BlockWeights b;
  const std::string fused_attn = prefix + "attn.gqkv_proj.weight";
  if (ckpt.find(fused_attn)) {
    // Row blocks in the order gate, query, key, value (DESIGN §2; transformers' conversion_mapping).
    auto parts = split_rows(read(ckpt, fused_attn, {4 * A, D}), 4, A, D);
    b.gate = std::move(parts[0]);
    b.q = std::move(parts[1]);
    b.k = std::move(parts[2]);
    b.v = std::move(parts[3]);
    b.o = read(ckpt, prefix + "attn.o_proj.weight", {D, A});
  } else {
    b.gate = read(ckpt, prefix + "self_attn.gate_proj.weight", {A, D});
    b.q = read(ckpt, prefix + "self_attn.q_proj.weight", {A, D});
    b.k = read(ckpt, prefix + "self_attn.k_proj.weight", {A, D});
    b.v = read(ckpt, prefix + "self_attn.v_proj.weight", {A, D});
    b.o = read(ckpt, prefix + "self_attn.o_proj.weight", {D, A});
  }
  const std::string fused_mlp = prefix + "mlp.gate_up_proj.weight";
  if (ckpt.find(fused_mlp)) {
    auto parts = split_rows(read(ckpt, fused_mlp, {2 * I, D}), 2, I, D);
    b.mlp_gate = std::move(parts[0]);
    b.up = std::move(parts[1]);
  } else {
    b.mlp_gate = read(ckpt, prefix + "mlp.gate_proj.weight", {I, D});
    b.up = read(ckpt, prefix + "mlp.up_proj.weight", {I, D});
  }
  b.down = read(ckpt, prefix + "mlp.down_proj.weight", {D, I});
  return b;
}

// Scratch buffers of one batched step over T tokens.
struct Scratch {
  std::vector<float> normed, gate, q, k, v, attn, proj, mlp_gate, up;
  Scratch(int64_t T, const ModelConfig& c) {
    const int64_t D = c.hidden_size, A = c.num_attention_heads * c.head_dim, I = c.intermediate_size;
    normed.resize(T * D);
    gate.resize(T * A);
    q.resize(T * A);
    k.resize(T * A);
    v.resize(T * A);
    attn.resize(T * A);
    proj.resize(T * D);
    mlp_gate.resize(T * I);
    up.resize(T * I);
  }
};

}  // namespace

ModelWeights load_weights(const Checkpoint& ckpt, const ModelConfig& c) {
  const int64_t D = c.hidden_size, V = c.vocab_size;
  ModelWeights w;
  w.embed = read(ckpt, "model.embed_tokens.weight", {V, D});
  w.lm_head = read(ckpt, "lm_head.weight", {V, D});
  w.z_L_init = read(ckpt, "model.z_L_init", {D});
  for (int64_t i = 0; i < c.num_layers_per_stack; ++i) {
    w.L.push_back(load_block(ckpt, c, cat("model.L_module.layers.", i, ".")));
    w.H.push_back(load_block(ckpt, c, cat("model.H_module.layers.", i, ".")));
  }
  return w;
}

size_t KVCache::bytes() const {
  size_t n = 0;
  for (size_t s = 0; s < k_.size(); ++s) n += (k_[s].capacity() + v_[s].capacity()) * sizeof(float);
  return n;
}

float* KVCache::append_rows(int64_t slot, bool keys, int64_t count) {
  auto& rows = keys ? k_[slot] : v_[slot];
  rows.resize((length_ + count) * kv_dim_);
  return rows.data() + length_ * kv_dim_;
}

void KVCache::commit(int64_t count, int64_t prefix_count) {
  length_ += count;
  prefix_ += prefix_count;
}

Model Model::load(const std::filesystem::path& model_dir) {
  ModelConfig cfg = load_config(model_dir);
  Checkpoint ckpt = Checkpoint::open(model_dir);
  ModelWeights w = load_weights(ckpt, cfg);
  return Model(std::move(cfg), std::move(w));
}

Model::Model(ModelConfig cfg, ModelWeights w) : cfg_(std::move(cfg)), w_(std::move(w)) {
  HRM_CHECK(cfg_.head_dim % 2 == 0, "head_dim must be even for rotate-half RoPE, got ", cfg_.head_dim);
  // inv_freq[i] = 1 / theta^(2i/d), in fp32 like transformers' default RoPE init.
  const int64_t half = cfg_.head_dim / 2;
  inv_freq_.resize(half);
  const float theta = static_cast<float>(cfg_.rope_theta);
  for (int64_t i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(cfg_.head_dim);
    inv_freq_[i] = 1.0f / std::pow(theta, exponent);
  }
}

KVCache Model::new_cache() const {
  return KVCache(cfg_.kv_slots(), cfg_.num_attention_heads * cfg_.head_dim);
}

std::vector<std::vector<float>> Model::step(std::span<StepInput> batch, bool all_logits) const {
  const ModelConfig& c = cfg_;
  const int64_t D = c.hidden_size, A = c.num_attention_heads * c.head_dim, I = c.intermediate_size;
  const int64_t V = c.vocab_size;
  const float eps = static_cast<float>(c.rms_norm_eps);

  // Token rows of all sequences, concatenated; row offsets per sequence.
  std::vector<int64_t> offset(batch.size() + 1, 0);
  for (size_t s = 0; s < batch.size(); ++s) {
    const StepInput& in = batch[s];
    HRM_CHECK(in.cache != nullptr, "step input ", s, " has no cache");
    HRM_CHECK(!in.tokens.empty(), "step input ", s, " has no tokens");
    HRM_CHECK(in.prefix >= 0 && in.prefix <= static_cast<int64_t>(in.tokens.size()),
              "prefix count ", in.prefix, " outside [0, ", in.tokens.size(), "] (sequence ", s, ")");
    HRM_CHECK(in.prefix == 0 || in.cache->length() == in.cache->prefix_length(),
              "prefix tokens cannot follow response tokens (sequence ", s, ")");
    const int64_t end = in.cache->length() + static_cast<int64_t>(in.tokens.size());
    if (end > c.max_position_embeddings)
      throw Error(cat("sequence of ", end, " tokens exceeds max_position_embeddings = ",
                      c.max_position_embeddings));
    offset[s + 1] = offset[s] + static_cast<int64_t>(in.tokens.size());
  }
  const int64_t T = offset.back();
  std::vector<int64_t> positions(T);
  std::vector<float> zH(T * D), zL(T * D), x(T * D);
  for (size_t s = 0; s < batch.size(); ++s) {
    for (int64_t j = 0; j < offset[s + 1] - offset[s]; ++j) {
      const TokenId tok = batch[s].tokens[j];
      if (tok < 0 || tok >= V) throw Error(cat("token id ", tok, " out of range [0, ", V, ")"));
      const int64_t row = offset[s] + j;
      positions[row] = batch[s].cache->length() + j;
      const float scale = static_cast<float>(c.embedding_scale);
      for (int64_t d = 0; d < D; ++d) zH[row * D + d] = w_.embed[tok * D + d] * scale;
      std::copy(w_.z_L_init.begin(), w_.z_L_init.end(), zL.begin() + row * D);
    }
  }

  Scratch sc(T, c);
  auto attention = [&](const BlockWeights& b, int64_t slot) {
    cpu::matmul_nt(sc.normed.data(), T, D, b.gate.data(), A, sc.gate.data());
    cpu::matmul_nt(sc.normed.data(), T, D, b.q.data(), A, sc.q.data());
    cpu::matmul_nt(sc.normed.data(), T, D, b.k.data(), A, sc.k.data());
    cpu::matmul_nt(sc.normed.data(), T, D, b.v.data(), A, sc.v.data());
    cpu::rope_rotate_half(sc.q.data(), T, c.num_attention_heads, c.head_dim, positions, inv_freq_);
    cpu::rope_rotate_half(sc.k.data(), T, c.num_attention_heads, c.head_dim, positions, inv_freq_);
    for (size_t s = 0; s < batch.size(); ++s) {
      KVCache& cache = *batch[s].cache;
      const int64_t n = offset[s + 1] - offset[s], r0 = offset[s];
      std::copy_n(sc.k.data() + r0 * A, n * A, cache.append_rows(slot, true, n));
      std::copy_n(sc.v.data() + r0 * A, n * A, cache.append_rows(slot, false, n));
      const int64_t n_kv = cache.length() + n;
      const int64_t prefix_len = cache.prefix_length() + batch[s].prefix;
      cpu::gated_attention(sc.q.data() + r0 * A, sc.gate.data() + r0 * A, n, cache.length(),
                           cache.keys(slot), cache.values(slot), n_kv, prefix_len,
                           c.num_attention_heads, c.head_dim, sc.attn.data() + r0 * A);
    }
    cpu::matmul_nt(sc.attn.data(), T, A, b.o.data(), D, sc.proj.data());
  };
  auto mlp = [&](const BlockWeights& b) {
    cpu::matmul_nt(sc.normed.data(), T, D, b.mlp_gate.data(), I, sc.mlp_gate.data());
    cpu::matmul_nt(sc.normed.data(), T, D, b.up.data(), I, sc.up.data());
    cpu::silu_mul(sc.mlp_gate.data(), sc.up.data(), T * I, sc.mlp_gate.data());
    cpu::matmul_nt(sc.mlp_gate.data(), T, I, b.down.data(), D, sc.proj.data());
  };
  auto add = [&](float* dst, const float* src) {
    for (int64_t i = 0; i < T * D; ++i) dst[i] += src[i];
  };
  // One stack invocation over x (in place): pre-norm blocks, then the exit norm ("MagicNorm").
  auto run_stack = [&](const std::vector<BlockWeights>& blocks, int64_t slot_base) {
    for (size_t b = 0; b < blocks.size(); ++b) {
      cpu::rms_norm(x.data(), T, D, eps, sc.normed.data());
      attention(blocks[b], slot_base + static_cast<int64_t>(b));
      add(x.data(), sc.proj.data());
      cpu::rms_norm(x.data(), T, D, eps, sc.normed.data());
      mlp(blocks[b]);
      add(x.data(), sc.proj.data());
    }
    cpu::rms_norm(x.data(), T, D, eps, x.data());
  };

  const int64_t blocks = c.num_layers_per_stack;
  for (int64_t h = 0; h < c.H_cycles; ++h) {
    for (int64_t l = 0; l < c.L_cycles; ++l) {
      for (int64_t i = 0; i < T * D; ++i) x[i] = zL[i] + zH[i];  // input injection is a plain add
      run_stack(w_.L, (h * (c.L_cycles + 1) + l) * blocks);
      zL.swap(x);
    }
    for (int64_t i = 0; i < T * D; ++i) x[i] = zH[i] + zL[i];
    run_stack(w_.H, (h * (c.L_cycles + 1) + c.L_cycles) * blocks);
    zH.swap(x);
  }
  for (size_t s = 0; s < batch.size(); ++s)
    batch[s].cache->commit(offset[s + 1] - offset[s], batch[s].prefix);

  std::vector<std::vector<float>> logits(batch.size());
  for (size_t s = 0; s < batch.size(); ++s) {
    const int64_t first = all_logits ? offset[s] : offset[s + 1] - 1;
    const int64_t rows = offset[s + 1] - first;
    logits[s].resize(rows * V);
    cpu::matmul_nt(zH.data() + first * D, rows, D, w_.lm_head.data(), V, logits[s].data());
  }
  return logits;
}

std::vector<float> Model::forward_one(KVCache& cache, std::span<const TokenId> tokens,
                                      int64_t prefix) const {
  StepInput in{&cache, tokens, prefix};
  return std::move(step(std::span<StepInput>(&in, 1))[0]);
}

std::vector<float> Model::forward_full(std::span<const TokenId> tokens, int64_t prefix_len) const {
  HRM_CHECK(prefix_len >= 0 && prefix_len <= static_cast<int64_t>(tokens.size()),
            "prefix length ", prefix_len, " outside [0, ", tokens.size(), "]");
  KVCache cache = new_cache();
  StepInput in{&cache, tokens, prefix_len};
  return std::move(step(std::span<StepInput>(&in, 1), /*all_logits=*/true)[0]);
}

}  // namespace hrm
