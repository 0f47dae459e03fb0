// Training forward/backward on the CPU: gradients against central finite differences of an
// independent double-precision forward written here (naive loops), with truncated backprop
// reproduced by freezing the outputs of detached invocations at their unperturbed values; the
// training loss against the inference path (Model::forward_full); packing layout; bp schedule.
#include "runtime/train.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>

#include "common/error.h"
#include "runtime/model.h"

namespace hrm {
namespace {

ModelConfig tiny_config(int64_t H, int64_t L, int64_t blocks) {
  ModelConfig c;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_attention_heads = 2;
  c.head_dim = 8;
  c.num_layers_per_stack = blocks;
  c.H_cycles = H;
  c.L_cycles = L;
  c.vocab_size = 40;
  c.max_position_embeddings = 64;
  c.embedding_scale = 4.0;
  return c;
}

std::vector<float> randn(std::mt19937_64& rng, size_t n, double std) {
  std::normal_distribution<double> dist(0.0, std);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(dist(rng));
  return v;
}

ModelWeights random_weights(const ModelConfig& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int64_t D = c.hidden_size, A = c.attn_dim(), I = c.intermediate_size, V = c.vocab_size;
  // Wider than an init so the function is far from linear and every path matters.
  const double wide = 1.5;
  ModelWeights w;
  w.embed = randn(rng, V * D, 0.25);
  w.lm_head = randn(rng, V * D, wide / std::sqrt(D));
  w.z_L_init = randn(rng, D, 0.5);
  auto block = [&] {
    BlockWeights b;
    b.gate = randn(rng, A * D, wide / std::sqrt(D));
    b.q = randn(rng, A * D, wide / std::sqrt(D));
    b.k = randn(rng, A * D, wide / std::sqrt(D));
    b.v = randn(rng, A * D, wide / std::sqrt(D));
    b.o = randn(rng, D * A, wide / std::sqrt(A));
    b.mlp_gate = randn(rng, I * D, wide / std::sqrt(D));
    b.up = randn(rng, I * D, wide / std::sqrt(D));
    b.down = randn(rng, D * I, wide / std::sqrt(I));
    return b;
  };
  for (int64_t i = 0; i < c.num_layers_per_stack; ++i) {
    w.L.push_back(block());
    w.H.push_back(block());
  }
  return w;
}

PackedBatch sample_batch() {
  PackedBatch b;
  b.add_sample(std::vector<TokenId>{6, 12, 30, 7}, std::vector<TokenId>{21, 3, 11});
  b.add_sample(std::vector<TokenId>{6, 7}, std::vector<TokenId>{14, 14, 39, 2, 11});
  b.add_sample(std::vector<TokenId>{6, 25, 26, 27, 7}, std::vector<TokenId>{11});
  return b;
}

// ---- The independent double-precision forward. Weights are read through `val` so one entry can
// be perturbed without touching the float model.
struct Perturb {
  const float* at = nullptr;
  double delta = 0;
};

struct RefModel {
  const ModelConfig& c;
  const ModelWeights& w;
  Perturb p;

  double val(const std::vector<float>& t, int64_t i) const {
    const double v = t[i];
    return &t[i] == p.at ? v + p.delta : v;
  }
  std::vector<double> rms(const std::vector<double>& x) const {
    const int64_t D = c.hidden_size;
    std::vector<double> y(x.size());
    for (size_t r = 0; r < x.size() / D; ++r) {
      double ss = 0;
      for (int64_t d = 0; d < D; ++d) ss += x[r * D + d] * x[r * D + d];
      const double s = 1.0 / std::sqrt(ss / D + c.rms_norm_eps);
      for (int64_t d = 0; d < D; ++d) y[r * D + d] = x[r * D + d] * s;
    }
    return y;
  }
  std::vector<double> linear(const std::vector<double>& x, const std::vector<float>& W, int64_t out,
                             int64_t in) const {
    const int64_t rows = static_cast<int64_t>(x.size()) / in;
    std::vector<double> y(rows * out, 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out; ++o)
        for (int64_t i = 0; i < in; ++i) y[r * out + o] += x[r * in + i] * val(W, o * in + i);
    return y;
  }
  void rope(std::vector<double>& x, const PackedBatch& b) const {
    const int64_t hd = c.head_dim, half = hd / 2;
    for (int64_t r = 0; r < b.size(); ++r)
      for (int64_t h = 0; h < c.num_attention_heads; ++h)
        for (int64_t f = 0; f < half; ++f) {
          const double inv = 1.0 / std::pow(c.rope_theta, 2.0 * f / hd);
          const double a = b.positions[r] * inv;
          double* v = x.data() + r * c.attn_dim() + h * hd;
          const double x1 = v[f], x2 = v[f + half];
          v[f] = x1 * std::cos(a) - x2 * std::sin(a);
          v[f + half] = x2 * std::cos(a) + x1 * std::sin(a);
        }
  }
  std::vector<double> stack(std::vector<double> x, const std::vector<BlockWeights>& blocks,
                            const PackedBatch& b) const {
    const int64_t D = c.hidden_size, A = c.attn_dim(), I = c.intermediate_size, hd = c.head_dim;
    for (const BlockWeights& bw : blocks) {
      std::vector<double> n = rms(x);
      std::vector<double> g = linear(n, bw.gate, A, D), q = linear(n, bw.q, A, D), k = linear(n, bw.k, A, D),
                          v = linear(n, bw.v, A, D), att(b.size() * A, 0.0);
      rope(q, b);
      rope(k, b);
      for (const cpu::SeqSpan& s : b.seqs)
        for (int64_t h = 0; h < c.num_attention_heads; ++h)
          for (int64_t i = 0; i < s.len; ++i) {
            std::vector<double> sc;
            double mx = -1e300;
            for (int64_t j = 0; j < s.len; ++j) {
              if (!(j < s.prefix || j <= i)) break;
              double d = 0;
              for (int64_t e = 0; e < hd; ++e)
                d += q[(s.start + i) * A + h * hd + e] * k[(s.start + j) * A + h * hd + e];
              sc.push_back(d / std::sqrt(static_cast<double>(hd)));
              mx = std::max(mx, sc.back());
            }
            double den = 0;
            for (double& e : sc) den += (e = std::exp(e - mx));
            for (int64_t e = 0; e < hd; ++e) {
              double o = 0;
              for (size_t j = 0; j < sc.size(); ++j) o += sc[j] / den * v[(s.start + j) * A + h * hd + e];
              const double gv = g[(s.start + i) * A + h * hd + e];
              att[(s.start + i) * A + h * hd + e] = o / (1.0 + std::exp(-gv));
            }
          }
      std::vector<double> proj = linear(att, bw.o, D, A);
      for (size_t i = 0; i < x.size(); ++i) x[i] += proj[i];
      n = rms(x);
      std::vector<double> mg = linear(n, bw.mlp_gate, I, D), up = linear(n, bw.up, I, D);
      for (size_t i = 0; i < mg.size(); ++i) mg[i] = mg[i] / (1.0 + std::exp(-mg[i])) * up[i];
      proj = linear(mg, bw.down, D, I);
      for (size_t i = 0; i < x.size(); ++i) x[i] += proj[i];
    }
    return rms(x);
  }
  // Mean response-token cross-entropy. Invocation outputs are recorded into `record`; where
  // `frozen` is given, detached invocations return their frozen output instead (torch.no_grad).
  double loss(const PackedBatch& b, const BackpropPlan& plan, std::vector<std::vector<double>>* record,
              const std::vector<std::vector<double>>* frozen) const {
    const int64_t D = c.hidden_size, V = c.vocab_size, T = b.size();
    std::vector<double> zH(T * D), zL(T * D);
    for (int64_t r = 0; r < T; ++r)
      for (int64_t d = 0; d < D; ++d) {
        zH[r * D + d] = val(w.embed, b.tokens[r] * D + d) * c.embedding_scale;
        zL[r * D + d] = w.z_L_init[d];
      }
    size_t idx = 0;
    auto invoke = [&](std::vector<double>& state, const std::vector<double>& other, bool grad,
                      const std::vector<BlockWeights>& blocks) {
      if (frozen && !grad) {
        state = (*frozen)[idx];
      } else {
        std::vector<double> in(T * D);
        for (int64_t i = 0; i < T * D; ++i) in[i] = state[i] + other[i];
        state = stack(in, blocks, b);
      }
      if (record) record->push_back(state);
      ++idx;
    };
    for (int64_t h = 0; h < c.H_cycles; ++h) {
      for (int64_t l = 0; l < c.L_cycles; ++l) invoke(zL, zH, plan.L_grad(c, h * c.L_cycles + l), w.L);
      invoke(zH, zL, plan.H_grad(c, h), w.H);
    }
    double total = 0;
    int64_t n = 0;
    for (int64_t r = 0; r < T; ++r) {
      if (b.labels[r] == kIgnoreLabel) continue;
      std::vector<double> row(zH.begin() + r * D, zH.begin() + (r + 1) * D);
      std::vector<double> z = linear(row, w.lm_head, V, D);
      double mx = -1e300, s = 0;
      for (double e : z) mx = std::max(mx, e);
      for (double e : z) s += std::exp(e - mx);
      total += mx + std::log(s) - z[b.labels[r]];
      ++n;
    }
    return total / n;
  }
};

struct GradCheck {
  double worst_rel = 0;  // max over entries of |analytic - fd| / (|fd| + floor)
  std::string worst_at;
};

// Compares selected entries of every trainable tensor with central differences.
GradCheck check_gradients(const ModelConfig& c, ModelWeights& w, const PackedBatch& b, int64_t bp_steps,
                          int entries_per_tensor) {
  ModelWeights grads = zeros_like(w);
  const LossResult r = cpu_forward_backward(c, w, b, bp_steps, &grads);
  const BackpropPlan plan(c, bp_steps);
  RefModel ref{c, w, {}};
  std::vector<std::vector<double>> frozen;
  const double ref_loss = ref.loss(b, plan, &frozen, nullptr);
  EXPECT_NEAR(r.loss, ref_loss, 1e-5 * ref_loss) << "training forward vs double reference";

  std::vector<NamedTensor> params = trainable_tensors(w), gparams = trainable_tensors(grads);
  // Step of the central difference: double-precision loss, so truncation error (∝ eps²) dominates.
  const double eps = 1e-4;
  std::mt19937_64 rng(7);
  GradCheck out;
  std::vector<std::pair<double, double>> pairs;  // (analytic, fd)
  std::vector<std::string> where;
  for (size_t t = 0; t < params.size(); ++t) {
    std::vector<int64_t> picks;
    if (params[t].name == "model.embed_tokens.weight" || params[t].name == "lm_head.weight") {
      // Rows of tokens that occur (others have zero gradient in the embedding).
      for (int e = 0; e < entries_per_tensor; ++e)
        picks.push_back(b.tokens[rng() % b.tokens.size()] * c.hidden_size + rng() % c.hidden_size);
      picks.push_back(b.labels.back() * c.hidden_size + rng() % c.hidden_size);
    } else {
      for (int e = 0; e < entries_per_tensor; ++e) picks.push_back(rng() % params[t].data->size());
    }
    for (int64_t i : picks) {
      const float* at = params[t].data->data() + i;
      ref.p = {at, eps};
      const double up = ref.loss(b, plan, nullptr, &frozen);
      ref.p = {at, -eps};
      const double down = ref.loss(b, plan, nullptr, &frozen);
      ref.p = {};
      pairs.emplace_back((*gparams[t].data)[i], (up - down) / (2 * eps));
      where.push_back(cat(params[t].name, "[", i, "]"));
    }
  }
  double scale = 0;
  for (auto& [a, f] : pairs) scale = std::max(scale, std::abs(f));
  // fp32 analytic gradients: relative accuracy ~1e-5 on large entries; tiny entries are judged
  // against a floor of 1e-4 of the largest gradient checked.
  const double floor = 1e-4 * scale;
  for (size_t i = 0; i < pairs.size(); ++i) {
    const double rel = std::abs(pairs[i].first - pairs[i].second) / (std::abs(pairs[i].second) + floor);
    if (rel > out.worst_rel) {
      out.worst_rel = rel;
      out.worst_at = cat(where[i], " analytic ", pairs[i].first, " fd ", pairs[i].second);
    }
  }
  return out;
}

TEST(TrainBackward, GradientsMatchFiniteDifferencesFullBackprop) {
  const ModelConfig c = tiny_config(2, 2, 2);
  ModelWeights w = random_weights(c, 1);
  const GradCheck g = check_gradients(c, w, sample_batch(), BackpropPlan::full(c), 6);
  std::printf("full backprop: worst relative gradient error %.3g at %s\n", g.worst_rel, g.worst_at.c_str());
  EXPECT_LT(g.worst_rel, 2e-3) << g.worst_at;
}

TEST(TrainBackward, GradientsMatchFiniteDifferencesTruncated) {
  // H=2, L=3 as the released models; every bp_steps from the reference's range and beyond.
  const ModelConfig c = tiny_config(2, 3, 1);
  ModelWeights w = random_weights(c, 2);
  for (int64_t bp : {1, 2, 3, 4, 5, 7}) {
    const GradCheck g = check_gradients(c, w, sample_batch(), bp, 4);
    std::printf("bp_steps %lld: worst relative gradient error %.3g at %s\n", static_cast<long long>(bp),
                g.worst_rel, g.worst_at.c_str());
    EXPECT_LT(g.worst_rel, 2e-3) << "bp_steps " << bp << ": " << g.worst_at;
  }
}

TEST(TrainBackward, TruncationDetachesEarlyInvocations) {
  // With bp_steps 2 only L invocation 5 and H invocation 1 get gradients: H invocation 0 is detached,
  // so nothing reaches the embedding (as in the reference under torch.no_grad); with 5 it does.
  const ModelConfig c = tiny_config(2, 3, 1);
  ModelWeights w = random_weights(c, 3);
  ModelWeights g1 = zeros_like(w), g2 = zeros_like(w), g5 = zeros_like(w);
  const LossResult r1 = cpu_forward_backward(c, w, sample_batch(), 1, &g1);
  const LossResult r2 = cpu_forward_backward(c, w, sample_batch(), 2, &g2);
  const LossResult r5 = cpu_forward_backward(c, w, sample_batch(), 5, &g5);
  // What PyTorch would leave with grad = None: bp 1 reaches only lm_head (H invocation 1 is detached,
  // so L invocation 5 feeds nothing with a gradient); bp 2 everything but the embedding.
  EXPECT_TRUE(r1.lm_head_reached && !r1.H_reached && !r1.L_reached && !r1.embed_reached);
  EXPECT_TRUE(r2.lm_head_reached && r2.H_reached && r2.L_reached && !r2.embed_reached);
  EXPECT_TRUE(r5.embed_reached);
  const std::vector<char> act = r2.active(w);
  ASSERT_EQ(act.size(), trainable_tensors(w).size());
  EXPECT_EQ(act.front(), 0);  // model.embed_tokens.weight
  EXPECT_EQ(act.back(), 1);   // lm_head.weight
  auto norm = [](const std::vector<float>& v) {
    double s = 0;
    for (float x : v) s += double(x) * x;
    return std::sqrt(s);
  };
  EXPECT_EQ(norm(g2.embed), 0.0);
  EXPECT_GT(norm(g5.embed), 0.0);
  EXPECT_GT(norm(g2.L[0].q), 0.0);
  EXPECT_EQ(norm(g2.z_L_init), 0.0);
  EXPECT_NE(norm(g2.H[0].down), norm(g5.H[0].down));
}

TEST(TrainForward, LossEqualsInferenceLogits) {
  // The training forward over a packed batch computes the same function as inference over each
  // sample alone: mean CE of the response tokens from Model::forward_full's logits.
  const ModelConfig c = tiny_config(2, 3, 2);
  ModelWeights w = random_weights(c, 4);
  const PackedBatch b = sample_batch();
  const LossResult r = cpu_forward_backward(c, w, b, 2, nullptr);
  Model model(c, w);
  double total = 0;
  int64_t n = 0;
  for (const cpu::SeqSpan& s : b.seqs) {
    std::span<const TokenId> toks(b.tokens.data() + s.start, s.len);
    const std::vector<float> logits = model.forward_full(toks, s.prefix);
    for (int64_t i = 0; i < s.len; ++i) {
      const int32_t label = b.labels[s.start + i];
      if (label == kIgnoreLabel) continue;
      const float* z = logits.data() + i * c.vocab_size;
      double mx = -1e300, sum = 0;
      for (int64_t j = 0; j < c.vocab_size; ++j) mx = std::max(mx, double(z[j]));
      for (int64_t j = 0; j < c.vocab_size; ++j) sum += std::exp(z[j] - mx);
      total += mx + std::log(sum) - z[label];
      ++n;
    }
  }
  EXPECT_EQ(n, r.loss_tokens);
  EXPECT_NEAR(r.loss, total / n, 1e-5 * r.loss);
}

TEST(TrainBatch, PackingFollowsReferenceLayout) {
  PackedBatch b;
  b.add_sample(std::vector<TokenId>{1, 2, 3}, std::vector<TokenId>{4, 5});
  b.add_sample(std::vector<TokenId>{6}, std::vector<TokenId>{7, 8, 9});
  EXPECT_EQ(b.tokens, (std::vector<TokenId>{1, 2, 3, 4, 6, 7, 8}));
  EXPECT_EQ(b.labels, (std::vector<int32_t>{kIgnoreLabel, kIgnoreLabel, 4, 5, 7, 8, 9}));
  EXPECT_EQ(b.positions, (std::vector<int64_t>{0, 1, 2, 3, 0, 1, 2}));
  ASSERT_EQ(b.seqs.size(), 2u);
  EXPECT_EQ(b.seqs[1].start, 4);
  EXPECT_EQ(b.seqs[1].len, 3);
  EXPECT_EQ(b.seqs[1].prefix, 1);
  EXPECT_EQ(b.loss_tokens(), 5);
  EXPECT_THROW(b.add_sample(std::vector<TokenId>{}, std::vector<TokenId>{1}), Error);
}

TEST(TrainSchedule, BpStepsStepOrLinear) {
  BpSchedule s;  // reference: 2 until 20% of training, then 5
  EXPECT_EQ(s.at(0, 1000), 2);
  EXPECT_EQ(s.at(199, 1000), 2);
  EXPECT_EQ(s.at(200, 1000), 5);
  EXPECT_EQ(s.at(999, 1000), 5);
  s.shape = BpWarmup::kLinear;
  EXPECT_EQ(s.at(0, 1000), 2);
  EXPECT_EQ(s.at(67, 1000), 3);   // 2 + floor(0.335 * 3)
  EXPECT_EQ(s.at(134, 1000), 4);
  EXPECT_EQ(s.at(200, 1000), 5);
  const ModelConfig c = tiny_config(2, 3, 1);
  const BackpropPlan p2(c, 2), p5(c, 5);
  EXPECT_EQ(p2.H_bp, 1);
  EXPECT_EQ(p2.L_bp, 1);
  EXPECT_EQ(p5.H_bp, 2);
  EXPECT_EQ(p5.L_bp, 3);
  EXPECT_FALSE(p5.L_grad(c, 2));
  EXPECT_TRUE(p5.L_grad(c, 3));
}

// train_flops against a count op by op: every invocation's blocks, the mask's visible keys counted
// key by key, and the invocations with gradients picked by BackpropPlan's own predicates.
TEST(TrainFlops, CountsEveryOpOfTheStep) {
  ModelConfig cfg;
  cfg.hidden_size = 12, cfg.num_attention_heads = 2, cfg.head_dim = 4, cfg.intermediate_size = 20;
  cfg.num_layers_per_stack = 3, cfg.H_cycles = 2, cfg.L_cycles = 3, cfg.vocab_size = 50;
  PackedBatch b;
  const std::vector<TokenId> i1{1, 2, 3}, r1{4, 5}, i2{6}, r2{7, 8, 9, 10};
  b.add_sample(i1, r1);  // 4 rows, prefix 3
  b.add_sample(i2, r2);  // 4 rows, prefix 1
  const double D = 12, A = 8, I = 20, V = 50, T = 8, N = static_cast<double>(b.loss_tokens());
  double keys = 0;
  for (const auto& s : b.seqs)
    for (int64_t i = 0; i < s.len; ++i)
      for (int64_t j = 0; j < s.len; ++j) keys += (j < s.prefix || j <= i) ? 1 : 0;
  const double per_block = 2 * T * D * (4 * A) + 2 * T * A * D + 2 * T * D * (2 * I) + 2 * T * I * D + 4 * A * keys;
  for (int64_t bp : {1, 2, 5, 8}) {
    const BackpropPlan plan(cfg, bp);
    double fwd = 0, grad_blocks = 0;
    for (int64_t h = 0; h < cfg.H_cycles; ++h) {
      for (int64_t l = 0; l < cfg.L_cycles; ++l) {
        fwd += 3 * per_block;
        if (plan.L_grad(cfg, h * cfg.L_cycles + l)) grad_blocks += 3;
      }
      fwd += 3 * per_block;
      if (plan.H_grad(cfg, h)) grad_blocks += 3;
    }
    fwd += 2 * N * D * V;
    const TrainFlops f = train_flops(cfg, b, bp);
    EXPECT_DOUBLE_EQ(f.forward, fwd) << "bp " << bp;
    EXPECT_DOUBLE_EQ(f.backward, 2 * (grad_blocks * per_block + 2 * N * D * V)) << "bp " << bp;
  }
  EXPECT_EQ(keys, (3 + 3 + 3 + 4) + (1 + 2 + 3 + 4)) << "the hand count of visible keys";
}

// The batch checks every training backend makes (checked_loss_rows): each bad value named.
TEST(TrainBatchChecks, NameWhatIsWrongAndReturnTheLossRows) {
  ModelConfig cfg;
  cfg.vocab_size = 50, cfg.max_position_embeddings = 8;
  PackedBatch b;
  const std::vector<TokenId> inst{1, 2, 3}, resp{4, 5};
  b.add_sample(inst, resp);
  EXPECT_EQ(checked_loss_rows(cfg, b, 0), (std::vector<int64_t>{2, 3}));
  const auto expect_error = [&](PackedBatch bad, int64_t grad_tokens, const std::string& needle) {
    try {
      checked_loss_rows(cfg, bad, grad_tokens);
      ADD_FAILURE() << "accepted; expected an error containing " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(PackedBatch{}, 0, "empty training batch");
  PackedBatch t = b;
  t.tokens[1] = 50;
  expect_error(t, 0, "token id 50 out of range");
  PackedBatch l = b;
  l.labels[3] = 77;
  expect_error(l, 0, "label 77 out of range");
  PackedBatch p = b;
  p.positions[0] = 8;
  expect_error(p, 0, "position 8 exceeds max_position_embeddings = 8");
  PackedBatch n = b;
  n.labels.pop_back();
  expect_error(n, 0, "disagree in length");
  expect_error(b, 1, "gradient normaliser 1 below the batch's 2 loss tokens");
}

}  // namespace
}  // namespace hrm
