// Loss and gradients of a packed batch on the CPU reference backend (see train.h).
//
// The forward computes the same function as Model::step (model.cpp), reorganised so the
// activations each backward needs are kept: per block its input, the mid-block residual, the
// attention projections after RoPE, the ungated attention output and the MLP pre-activations;
// normalised inputs and elementwise products are recomputed in the backward (cheap) instead.
#include "runtime/train.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/error.h"
#include "runtime/cpu/ops.h"

namespace hrm {
namespace {

struct BlockActs {
  std::vector<float> x_in, x_mid;     // [T, D]: block input, residual after attention
  std::vector<float> gate, q, k, v;   // [T, A]; q and k after RoPE
  std::vector<float> attn;            // [T, A]: attention output before the sigmoid gate
  std::vector<float> mlp_gate, up;    // [T, I]
};

struct StackActs {
  std::vector<BlockActs> blocks;
  std::vector<float> exit_in;         // [T, D]: input of the stack's exit norm
};

// Shapes and per-batch constants shared by every stack invocation.
struct Ctx {
  int64_t T, D, A, I, heads, head_dim;
  float eps;
  std::span<const int64_t> positions;
  std::vector<int64_t> neg_positions;  // RoPE backward = rotation by the negated angle
  std::span<const cpu::SeqSpan> seqs;
  std::vector<float> inv_freq;
};

inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

void add_into(std::vector<float>& dst, const std::vector<float>& src) {
  for (size_t i = 0; i < dst.size(); ++i) dst[i] += src[i];
}

// One stack invocation in place on x ([T, D]); records activations when `save` is non-null.
void stack_forward(const std::vector<BlockWeights>& blocks, const Ctx& c, std::vector<float>& x,
                   StackActs* save) {
  const int64_t T = c.T, D = c.D, A = c.A, I = c.I;
  std::vector<float> normed(T * D), gate(T * A), q(T * A), k(T * A), v(T * A), attn(T * A), proj(T * D),
      mg(T * I), up(T * I), h(T * I);
  if (save) save->blocks.resize(blocks.size());
  for (size_t b = 0; b < blocks.size(); ++b) {
    const BlockWeights& w = blocks[b];
    if (save) save->blocks[b].x_in = x;
    cpu::rms_norm(x.data(), T, D, c.eps, normed.data());
    cpu::matmul_nt(normed.data(), T, D, w.gate.data(), A, gate.data());
    cpu::matmul_nt(normed.data(), T, D, w.q.data(), A, q.data());
    cpu::matmul_nt(normed.data(), T, D, w.k.data(), A, k.data());
    cpu::matmul_nt(normed.data(), T, D, w.v.data(), A, v.data());
    cpu::rope_rotate_half(q.data(), T, c.heads, c.head_dim, c.positions, c.inv_freq);
    cpu::rope_rotate_half(k.data(), T, c.heads, c.head_dim, c.positions, c.inv_freq);
    cpu::prefix_attention(q.data(), k.data(), v.data(), c.seqs, c.heads, c.head_dim, attn.data());
    if (save) {
      BlockActs& s = save->blocks[b];
      s.gate = gate;
      s.q = q;
      s.k = k;
      s.v = v;
      s.attn = attn;
    }
    for (int64_t i = 0; i < T * A; ++i) attn[i] *= sigmoid(gate[i]);
    cpu::matmul_nt(attn.data(), T, A, w.o.data(), D, proj.data());
    add_into(x, proj);
    if (save) save->blocks[b].x_mid = x;
    cpu::rms_norm(x.data(), T, D, c.eps, normed.data());
    cpu::matmul_nt(normed.data(), T, D, w.mlp_gate.data(), I, mg.data());
    cpu::matmul_nt(normed.data(), T, D, w.up.data(), I, up.data());
    if (save) {
      save->blocks[b].mlp_gate = mg;
      save->blocks[b].up = up;
    }
    cpu::silu_mul(mg.data(), up.data(), T * I, h.data());
    cpu::matmul_nt(h.data(), T, I, w.down.data(), D, proj.data());
    add_into(x, proj);
  }
  if (save) save->exit_in = x;
  cpu::rms_norm(x.data(), T, D, c.eps, x.data());
}

// Backward of one stack invocation: `d` holds the gradient of its output on entry and of its input
// on return; weight gradients are added into `grads`.
void stack_backward(const std::vector<BlockWeights>& blocks, const StackActs& acts, const Ctx& c,
                    std::vector<BlockWeights>& grads, std::vector<float>& d) {
  const int64_t T = c.T, D = c.D, A = c.A, I = c.I;
  std::vector<float> dx(T * D), normed(T * D), h(T * I), dh(T * I), dmg(T * I), dup(T * I), dn(T * D),
      gated(T * A), datt(T * A), dgate(T * A), dq(T * A), dk(T * A), dv(T * A);
  cpu::rms_norm_backward(acts.exit_in.data(), d.data(), T, D, c.eps, dx.data(), /*accumulate=*/false);
  for (size_t bi = blocks.size(); bi-- > 0;) {
    const BlockWeights& w = blocks[bi];
    BlockWeights& g = grads[bi];
    const BlockActs& a = acts.blocks[bi];
    // MLP: x_out = x_mid + down(silu(gate(n2)) * up(n2)), n2 = rms(x_mid).
    cpu::rms_norm(a.x_mid.data(), T, D, c.eps, normed.data());
    cpu::silu_mul(a.mlp_gate.data(), a.up.data(), T * I, h.data());
    cpu::matmul_tn_acc(dx.data(), T, D, h.data(), I, g.down.data());
    cpu::matmul_nn(dx.data(), T, D, w.down.data(), I, dh.data());
    cpu::silu_mul_backward(a.mlp_gate.data(), a.up.data(), dh.data(), T * I, dmg.data(), dup.data());
    cpu::matmul_tn_acc(dmg.data(), T, I, normed.data(), D, g.mlp_gate.data());
    cpu::matmul_tn_acc(dup.data(), T, I, normed.data(), D, g.up.data());
    cpu::matmul_nn(dmg.data(), T, I, w.mlp_gate.data(), D, dn.data());
    cpu::matmul_nn(dup.data(), T, I, w.up.data(), D, dn.data(), /*accumulate=*/true);
    cpu::rms_norm_backward(a.x_mid.data(), dn.data(), T, D, c.eps, dx.data(), /*accumulate=*/true);
    // Attention: x_mid = x_in + o(sigmoid(gate) * attn(rope(q), rope(k), v)), all of n1 = rms(x_in).
    cpu::rms_norm(a.x_in.data(), T, D, c.eps, normed.data());
    for (int64_t i = 0; i < T * A; ++i) gated[i] = a.attn[i] * sigmoid(a.gate[i]);
    cpu::matmul_tn_acc(dx.data(), T, D, gated.data(), A, g.o.data());
    cpu::matmul_nn(dx.data(), T, D, w.o.data(), A, datt.data());
    for (int64_t i = 0; i < T * A; ++i) {
      const float s = sigmoid(a.gate[i]);
      dgate[i] = datt[i] * a.attn[i] * s * (1.0f - s);
      datt[i] *= s;
    }
    cpu::prefix_attention_backward(a.q.data(), a.k.data(), a.v.data(), a.attn.data(), datt.data(), c.seqs,
                                   c.heads, c.head_dim, dq.data(), dk.data(), dv.data());
    // RoPE is a rotation: its transpose is the rotation by the opposite angle.
    cpu::rope_rotate_half(dq.data(), T, c.heads, c.head_dim, c.neg_positions, c.inv_freq);
    cpu::rope_rotate_half(dk.data(), T, c.heads, c.head_dim, c.neg_positions, c.inv_freq);
    cpu::matmul_tn_acc(dgate.data(), T, A, normed.data(), D, g.gate.data());
    cpu::matmul_tn_acc(dq.data(), T, A, normed.data(), D, g.q.data());
    cpu::matmul_tn_acc(dk.data(), T, A, normed.data(), D, g.k.data());
    cpu::matmul_tn_acc(dv.data(), T, A, normed.data(), D, g.v.data());
    cpu::matmul_nn(dgate.data(), T, A, w.gate.data(), D, dn.data());
    cpu::matmul_nn(dq.data(), T, A, w.q.data(), D, dn.data(), true);
    cpu::matmul_nn(dk.data(), T, A, w.k.data(), D, dn.data(), true);
    cpu::matmul_nn(dv.data(), T, A, w.v.data(), D, dn.data(), true);
    cpu::rms_norm_backward(a.x_in.data(), dn.data(), T, D, c.eps, dx.data(), /*accumulate=*/true);
  }
  d.swap(dx);
}

BlockWeights zeros_block(const BlockWeights& b) {
  BlockWeights z;
  z.gate.assign(b.gate.size(), 0.f);
  z.q.assign(b.q.size(), 0.f);
  z.k.assign(b.k.size(), 0.f);
  z.v.assign(b.v.size(), 0.f);
  z.o.assign(b.o.size(), 0.f);
  z.mlp_gate.assign(b.mlp_gate.size(), 0.f);
  z.up.assign(b.up.size(), 0.f);
  z.down.assign(b.down.size(), 0.f);
  return z;
}

}  // namespace

void PackedBatch::add_sample(std::span<const TokenId> inst, std::span<const TokenId> resp) {
  if (inst.empty() || resp.empty())
    throw Error(cat("training sample with ", inst.size(), " instruction and ", resp.size(),
                    " response tokens: both must be non-empty"));
  const int64_t start = size();
  const int64_t n = packed_length(static_cast<int64_t>(inst.size()), static_cast<int64_t>(resp.size()));
  tokens.insert(tokens.end(), inst.begin(), inst.end());
  tokens.insert(tokens.end(), resp.begin(), resp.end() - 1);
  labels.insert(labels.end(), inst.size() - 1, kIgnoreLabel);
  for (TokenId t : resp) labels.push_back(static_cast<int32_t>(t));
  for (int64_t p = 0; p < n; ++p) positions.push_back(p);
  seqs.push_back({start, n, static_cast<int64_t>(inst.size())});
}

std::vector<char> LossResult::active(const ModelWeights& w) const {
  const size_t per_block = 8;  // gate, q, k, v, o, mlp gate, up, down (trainable_tensors order)
  const size_t h = w.H.size() * per_block, l = w.L.size() * per_block;
  std::vector<char> out(1 + h + l + 1);
  out[0] = embed_reached;
  for (size_t i = 0; i < h; ++i) out[1 + i] = H_reached;
  for (size_t i = 0; i < l; ++i) out[1 + h + i] = L_reached;
  out[1 + h + l] = lm_head_reached;
  return out;
}

int64_t PackedBatch::loss_tokens() const {
  return std::count_if(labels.begin(), labels.end(), [](int32_t l) { return l != kIgnoreLabel; });
}

int64_t BpSchedule::at(int64_t step, int64_t total_steps) const {
  const double span = static_cast<double>(total_steps) * warmup_ratio;
  const double progress = span > 0 ? std::min(1.0, static_cast<double>(step) / span) : 1.0;
  if (shape == BpWarmup::kStep) return min_steps + static_cast<int64_t>(progress) * (max_steps - min_steps);
  return min_steps + static_cast<int64_t>(std::floor(progress * static_cast<double>(max_steps - min_steps)));
}

BackpropPlan::BackpropPlan(const ModelConfig& cfg, int64_t bp_steps) {
  HRM_CHECK(bp_steps >= 1, "bp_steps must be at least 1, got ", bp_steps);
  // The H stack gets priority and at least one step goes to the L stack (hrm_nocarry_bp_warmup.py).
  H_bp = std::min(cfg.H_cycles, bp_steps - 1);
  L_bp = bp_steps - H_bp;
}

ModelWeights zeros_like(const ModelWeights& w) {
  ModelWeights z;
  z.embed.assign(w.embed.size(), 0.f);
  z.lm_head.assign(w.lm_head.size(), 0.f);
  z.z_L_init.assign(w.z_L_init.size(), 0.f);
  for (const auto& b : w.L) z.L.push_back(zeros_block(b));
  for (const auto& b : w.H) z.H.push_back(zeros_block(b));
  return z;
}

void set_zero(ModelWeights& w) {
  for (NamedTensor& t : trainable_tensors(w)) std::fill(t.data->begin(), t.data->end(), 0.f);
  std::fill(w.z_L_init.begin(), w.z_L_init.end(), 0.f);
}

std::vector<NamedTensor> trainable_tensors(ModelWeights& w) {
  const int64_t D = static_cast<int64_t>(w.z_L_init.size());
  const int64_t V = D > 0 ? static_cast<int64_t>(w.embed.size()) / D : 0;
  std::vector<NamedTensor> out;
  out.push_back({"model.embed_tokens.weight", {V, D}, &w.embed});
  auto add_stack = [&](std::vector<BlockWeights>& blocks, const std::string& stack) {
    for (size_t i = 0; i < blocks.size(); ++i) {
      BlockWeights& b = blocks[i];
      const std::string p = cat("model.", stack, ".layers.", i, ".");
      const int64_t A = static_cast<int64_t>(b.q.size()) / D;
      const int64_t I = static_cast<int64_t>(b.up.size()) / D;
      out.push_back({p + "self_attn.gate_proj.weight", {A, D}, &b.gate});
      out.push_back({p + "self_attn.q_proj.weight", {A, D}, &b.q});
      out.push_back({p + "self_attn.k_proj.weight", {A, D}, &b.k});
      out.push_back({p + "self_attn.v_proj.weight", {A, D}, &b.v});
      out.push_back({p + "self_attn.o_proj.weight", {D, A}, &b.o});
      out.push_back({p + "mlp.gate_proj.weight", {I, D}, &b.mlp_gate});
      out.push_back({p + "mlp.up_proj.weight", {I, D}, &b.up});
      out.push_back({p + "mlp.down_proj.weight", {D, I}, &b.down});
    }
  };
  add_stack(w.H, "H_module");
  add_stack(w.L, "L_module");
  out.push_back({"lm_head.weight", {V, D}, &w.lm_head});
  return out;
}

std::vector<int64_t> checked_loss_rows(const ModelConfig& cfg, const PackedBatch& batch, int64_t grad_tokens) {
  const int64_t T = batch.size(), V = cfg.vocab_size;
  HRM_CHECK(T > 0, "empty training batch");
  HRM_CHECK(static_cast<int64_t>(batch.labels.size()) == T && static_cast<int64_t>(batch.positions.size()) == T,
            "packed batch arrays disagree in length");
  std::vector<int64_t> rows;
  for (int64_t r = 0; r < T; ++r) {
    if (batch.positions[r] >= cfg.max_position_embeddings)
      throw Error(cat("training sample position ", batch.positions[r], " exceeds max_position_embeddings = ",
                      cfg.max_position_embeddings));
    if (batch.tokens[r] < 0 || batch.tokens[r] >= V)
      throw Error(cat("training token id ", batch.tokens[r], " out of range [0, ", V, ")"));
    const int32_t label = batch.labels[r];
    if (label == kIgnoreLabel) continue;
    if (label < 0 || label >= V) throw Error(cat("training label ", label, " out of range [0, ", V, ")"));
    rows.push_back(r);
  }
  const int64_t N = static_cast<int64_t>(rows.size());
  HRM_CHECK(grad_tokens == 0 || grad_tokens >= N, "gradient normaliser ", grad_tokens, " below the batch's ", N,
            " loss tokens");
  return rows;
}

LossResult cpu_forward_backward(const ModelConfig& cfg, const ModelWeights& w, const PackedBatch& batch,
                                int64_t bp_steps, ModelWeights* grads, int64_t grad_tokens) {
  const std::vector<int64_t> rows = checked_loss_rows(cfg, batch, grad_tokens);
  const int64_t T = batch.size(), D = cfg.hidden_size, V = cfg.vocab_size;
  Ctx c{T, D, cfg.attn_dim(), cfg.intermediate_size, cfg.num_attention_heads, cfg.head_dim,
        static_cast<float>(cfg.rms_norm_eps), batch.positions, {}, batch.seqs, {}};
  for (int64_t p : batch.positions) c.neg_positions.push_back(-p);
  // inv_freq[i] = 1 / theta^(2i/d) in fp32, exactly as Model's constructor computes it.
  const float theta = static_cast<float>(cfg.rope_theta);
  for (int64_t i = 0; i < cfg.head_dim / 2; ++i)
    c.inv_freq.push_back(1.0f / std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(cfg.head_dim)));

  const BackpropPlan plan(cfg, bp_steps);
  const bool want_grad = grads != nullptr;
  const float scale = static_cast<float>(cfg.embedding_scale);
  std::vector<float> zH(T * D), zL(T * D), x(T * D);
  for (int64_t r = 0; r < T; ++r) {
    const TokenId tok = batch.tokens[r];
    for (int64_t d = 0; d < D; ++d) zH[r * D + d] = w.embed[tok * D + d] * scale;
    std::copy(w.z_L_init.begin(), w.z_L_init.end(), zL.begin() + r * D);
  }

  // Invocations in time order; activations kept only for those that get gradients.
  struct Invocation {
    bool is_H;
    bool grad;
    StackActs acts;
  };
  std::vector<Invocation> invs;
  for (int64_t h = 0; h < cfg.H_cycles; ++h) {
    for (int64_t l = 0; l < cfg.L_cycles; ++l) {
      const bool g = want_grad && plan.L_grad(cfg, h * cfg.L_cycles + l);
      invs.push_back({false, g, {}});
      for (int64_t i = 0; i < T * D; ++i) x[i] = zL[i] + zH[i];
      stack_forward(w.L, c, x, g ? &invs.back().acts : nullptr);
      zL.swap(x);
    }
    const bool g = want_grad && plan.H_grad(cfg, h);
    invs.push_back({true, g, {}});
    for (int64_t i = 0; i < T * D; ++i) x[i] = zH[i] + zL[i];
    stack_forward(w.H, c, x, g ? &invs.back().acts : nullptr);
    zH.swap(x);
  }

  // Logits only for rows with a label; cross-entropy in fp32, summed in double.
  const int64_t N = static_cast<int64_t>(rows.size());
  LossResult res;
  res.loss_tokens = N;
  if (N == 0) return res;
  std::vector<float> h_rows(N * D), logits(N * V);
  for (int64_t n = 0; n < N; ++n) std::copy_n(zH.data() + rows[n] * D, D, h_rows.data() + n * D);
  cpu::matmul_nt(h_rows.data(), N, D, w.lm_head.data(), V, logits.data());
  std::vector<double> token_loss(N);
  std::vector<char> token_correct(N);
  const float inv_n = 1.0f / static_cast<float>(grad_tokens > 0 ? grad_tokens : N);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, N, 8), [&](const auto& range) {
    for (int64_t n = range.begin(); n < range.end(); ++n) {
      float* z = logits.data() + n * V;
      const int32_t label = batch.labels[rows[n]];
      const float mx = *std::max_element(z, z + V);
      float sum = 0.f;
      for (int64_t j = 0; j < V; ++j) sum += std::exp(z[j] - mx);
      const float lse = mx + std::log(sum);
      token_loss[n] = static_cast<double>(lse - z[label]);
      token_correct[n] = std::max_element(z, z + V) - z == label;
      // d(mean CE)/dz = (softmax - onehot) / N (N = grad_tokens under data parallelism)
      for (int64_t j = 0; j < V; ++j) z[j] = std::exp(z[j] - lse) * inv_n;
      z[label] -= inv_n;
    }
  });
  double total = 0;
  for (int64_t n = 0; n < N; ++n) {
    total += token_loss[n];
    res.correct += token_correct[n];
  }
  res.loss_sum = total;
  res.loss = total / static_cast<double>(N);
  if (!want_grad) return res;
  res.lm_head_reached = true;

  HRM_CHECK(grads->L.size() == w.L.size() && grads->H.size() == w.H.size() &&
                grads->embed.size() == w.embed.size() && grads->lm_head.size() == w.lm_head.size(),
            "gradient buffer does not match the weights (use zeros_like)");
  cpu::matmul_tn_acc(logits.data(), N, V, h_rows.data(), D, grads->lm_head.data());
  std::vector<float> dh(N * D);
  cpu::matmul_nn(logits.data(), N, V, w.lm_head.data(), D, dh.data());
  std::vector<float> dzH(T * D, 0.f), dzL(T * D, 0.f);
  for (int64_t n = 0; n < N; ++n) std::copy_n(dh.data() + n * D, D, dzH.data() + rows[n] * D);
  bool zero_H = false, zero_L = true;  // known-zero gradients skip whole invocations

  // Reverse time order. A detached invocation drops the gradient of its output; the variable it
  // overwrote (zL for L, zH for H) then has no gradient from later uses.
  for (size_t i = invs.size(); i-- > 0;) {
    Invocation& inv = invs[i];
    std::vector<float>& d_out = inv.is_H ? dzH : dzL;
    std::vector<float>& d_other = inv.is_H ? dzL : dzH;
    bool& zero_out = inv.is_H ? zero_H : zero_L;
    bool& zero_other = inv.is_H ? zero_L : zero_H;
    if (zero_out) continue;
    if (!inv.grad) {
      std::fill(d_out.begin(), d_out.end(), 0.f);
      zero_out = true;
      continue;
    }
    // Input is (own state + injected other state): both receive the input's gradient.
    (inv.is_H ? res.H_reached : res.L_reached) = true;
    stack_backward(inv.is_H ? w.H : w.L, inv.acts, c, inv.is_H ? grads->H : grads->L, d_out);
    if (zero_other) {
      d_other = d_out;
      zero_other = false;
    } else {
      add_into(d_other, d_out);
    }
    inv.acts = {};
  }
  // z_H starts as embed[token] * embedding_scale; z_L_init is frozen.
  if (!zero_H) {
    res.embed_reached = true;
    for (int64_t r = 0; r < T; ++r) {
      float* g = grads->embed.data() + batch.tokens[r] * D;
      for (int64_t d = 0; d < D; ++d) g[d] += dzH[r * D + d] * scale;
    }
  }
  return res;
}

TrainFlops train_flops(const ModelConfig& cfg, const PackedBatch& batch, int64_t bp_steps) {
  const double T = static_cast<double>(batch.size()), D = static_cast<double>(cfg.hidden_size);
  const double A = static_cast<double>(cfg.attn_dim()), I = static_cast<double>(cfg.intermediate_size);
  double visible = 0;  // sum over rows of the keys each row attends to
  for (const cpu::SeqSpan& s : batch.seqs)
    for (int64_t i = 0; i < s.len; ++i) visible += static_cast<double>(std::min(s.len, std::max(s.prefix, i + 1)));
  const double block = 2 * T * (4 * A * D + A * D + 2 * I * D + I * D) + 2 * 2 * A * visible;  // GEMMs, QK^T and PV
  const double stack = block * static_cast<double>(cfg.num_layers_per_stack);
  const double head = 2 * static_cast<double>(batch.loss_tokens()) * D * static_cast<double>(cfg.vocab_size);
  const BackpropPlan plan(cfg, bp_steps);
  const double invocations = static_cast<double>(cfg.H_cycles * (cfg.L_cycles + 1));
  const double with_grad = static_cast<double>(std::min(plan.H_bp, cfg.H_cycles) +
                                               std::min(plan.L_bp, cfg.H_cycles * cfg.L_cycles));
  return {invocations * stack + head, 2 * (with_grad * stack + head)};
}

namespace {
[[noreturn]] void no_state(const TrainBackend& b, const char* call) {
  throw Error(cat("training backend '", b.name(), "' keeps no training state (", call,
                  " called; drive it through forward_backward)"));
}
}  // namespace

void TrainBackend::load_state(const ModelConfig&, const ModelWeights&, const AdamAtan2&, Communicator&) {
  no_state(*this, "load_state");
}
void TrainBackend::begin_step() { no_state(*this, "begin_step"); }
LossResult TrainBackend::accumulate(const ModelConfig&, const PackedBatch&, int64_t, int64_t) {
  no_state(*this, "accumulate");
}
void TrainBackend::update(const AdamStep&, Communicator&) { no_state(*this, "update"); }
void TrainBackend::store_state(ModelWeights&, AdamAtan2&) { no_state(*this, "store_state"); }

namespace {
class CpuTrainBackend final : public TrainBackend {
 public:
  std::string name() const override { return "cpu"; }
  LossResult forward_backward(const ModelConfig& cfg, const ModelWeights& w, const PackedBatch& batch,
                              int64_t bp_steps, ModelWeights* grads, int64_t grad_tokens) override {
    return cpu_forward_backward(cfg, w, batch, bp_steps, grads, grad_tokens);
  }
};
}  // namespace

std::unique_ptr<TrainBackend> make_cpu_train_backend() { return std::make_unique<CpuTrainBackend>(); }

}  // namespace hrm
