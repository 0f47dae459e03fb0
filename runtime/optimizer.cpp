// Adam-atan2, the LR schedule and the initialisation of the reference recipe (see optimizer.h).
#include "runtime/optimizer.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <cmath>
#include <numbers>

#include "common/error.h"
#include "runtime/train.h"

namespace hrm {
namespace {

// trunc_normal_init_ of models/common.py: fold at ±3 standard deviations, then this factor.
constexpr double kTruncBound = 3.0;
constexpr double kTruncVarianceFix = 1.014762601732121;
// The reference initialises the frozen z_L buffer with std 1 (hrm_nocarry_bp_warmup.py).
constexpr double kZLInitStd = 1.0;

}  // namespace

AdamAtan2::AdamAtan2(AdamAtan2Config cfg, ModelWeights& w) : cfg_(cfg) {
  if (!(cfg_.beta1 >= 0 && cfg_.beta1 < 1) || !(cfg_.beta2 >= 0 && cfg_.beta2 < 1))
    throw Error(cat("Adam-atan2 betas must lie in [0, 1), got (", cfg_.beta1, ", ", cfg_.beta2, ")"));
  if (!(cfg_.weight_decay >= 0)) throw Error(cat("weight decay must be >= 0, got ", cfg_.weight_decay));
  if (!(cfg_.ema_decay >= 0 && cfg_.ema_decay < 1))
    throw Error(cat("EMA decay must lie in [0, 1), got ", cfg_.ema_decay));
  for (NamedTensor& t : trainable_tensors(w)) {
    m_.emplace_back(t.data->size(), 0.f);
    v_.emplace_back(t.data->size(), 0.f);
    if (cfg_.ema_decay > 0) ema_.push_back(*t.data);
  }
  tensor_t_.assign(m_.size(), 0);
}

AdamStep AdamAtan2::begin_step(double lr, std::span<const char> active) {
  HRM_CHECK(active.empty() || active.size() == m_.size(), "active mask has ", active.size(), " entries, expected ",
            m_.size());
  ++t_;
  AdamStep s;
  s.decay = static_cast<float>(1.0 - lr * cfg_.weight_decay);
  s.b1c = static_cast<float>(1.0 - cfg_.beta1), s.b2 = static_cast<float>(cfg_.beta2);
  s.b2c = static_cast<float>(1.0 - cfg_.beta2);
  s.ema_w = static_cast<float>(1.0 - cfg_.ema_decay);
  s.ema = !ema_.empty();
  s.active.assign(m_.size(), 1);
  s.step_size.assign(m_.size(), 0.f);
  s.inv_sqrt_bc2.assign(m_.size(), 0.f);
  for (size_t t = 0; t < m_.size(); ++t) {
    if (!active.empty() && !active[t]) {
      s.active[t] = 0;
      continue;
    }
    const int64_t step = ++tensor_t_[t];
    const double bc1 = 1.0 - std::pow(cfg_.beta1, static_cast<double>(step));
    const double bc2 = 1.0 - std::pow(cfg_.beta2, static_cast<double>(step));
    s.step_size[t] = static_cast<float>(lr / bc1);
    s.inv_sqrt_bc2[t] = static_cast<float>(1.0 / std::sqrt(bc2));
  }
  return s;
}

void adam_atan2_update(float* p, const float* g, float* m, float* v, float* e, size_t n, const AdamStep& s,
                       size_t tensor) {
  const float step_size = s.step_size[tensor], inv_sqrt_bc2 = s.inv_sqrt_bc2[tensor];
  tbb::parallel_for(tbb::blocked_range<size_t>(0, n, 1 << 14), [&](const auto& r) {
    for (size_t i = r.begin(); i < r.end(); ++i) {
      p[i] *= s.decay;
      m[i] += s.b1c * (g[i] - m[i]);  // torch.lerp with weight 1-β1 < 0.5
      v[i] = v[i] * s.b2 + s.b2c * g[i] * g[i];
      p[i] -= step_size * std::atan2(m[i], std::sqrt(v[i]) * inv_sqrt_bc2);
      if (e) e[i] += s.ema_w * (p[i] - e[i]);
    }
  });
}

void AdamAtan2::step(ModelWeights& w, ModelWeights& grads, double lr, std::span<const char> active) {
  std::vector<NamedTensor> params = trainable_tensors(w), gs = trainable_tensors(grads);
  HRM_CHECK(params.size() == m_.size() && gs.size() == m_.size(), "optimizer state does not match the weights");
  const AdamStep s = begin_step(lr, active);
  for (size_t t = 0; t < params.size(); ++t) {
    if (!s.active[t]) continue;
    HRM_CHECK(gs[t].data->size() == params[t].data->size(), "gradient of ", params[t].name, " has the wrong size");
    adam_atan2_update(params[t].data->data(), gs[t].data->data(), m_[t].data(), v_[t].data(),
                      s.ema ? ema_[t].data() : nullptr, params[t].data->size(), s, t);
  }
}

ModelWeights AdamAtan2::ema_weights(const ModelWeights& w) const {
  ModelWeights out = w;
  if (ema_.empty()) return out;
  std::vector<NamedTensor> ts = trainable_tensors(out);
  for (size_t t = 0; t < ts.size(); ++t) *ts[t].data = ema_[t];
  return out;
}

double LrSchedule::at(int64_t step) const {
  if (step < warmup_steps) return lr * std::min(1.0, static_cast<double>(step) / static_cast<double>(warmup_steps));
  if (min_ratio >= 1.0) return lr;
  HRM_CHECK(total_steps > warmup_steps, "cosine schedule needs total_steps > warmup_steps");
  const double progress =
      static_cast<double>(step - warmup_steps) / static_cast<double>(total_steps - warmup_steps);
  return lr * (min_ratio + std::max(0.0, (1 - min_ratio) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress))));
}

uint64_t TruncNormal::next_u64() {
  // splitmix64: tiny, fast, and the same sequence everywhere (std distributions are not).
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double TruncNormal::next_normal() {
  if (have_spare_) {
    have_spare_ = false;
    return spare_;
  }
  // Box–Muller on two uniforms in (0, 1].
  const double u1 = (static_cast<double>(next_u64() >> 11) + 1.0) / 9007199254740992.0;
  const double u2 = static_cast<double>(next_u64() >> 11) / 9007199254740992.0;
  const double r = std::sqrt(-2.0 * std::log(u1));
  spare_ = r * std::sin(2 * std::numbers::pi * u2);
  have_spare_ = true;
  return r * std::cos(2 * std::numbers::pi * u2);
}

float TruncNormal::next(double std) {
  return static_cast<float>(std::fmod(next_normal(), kTruncBound) * kTruncVarianceFix * std);
}

ModelWeights init_weights(const ModelConfig& c, uint64_t seed) {
  if (!(c.embedding_scale > 0)) throw Error(cat("embedding_scale must be > 0 to initialise, got ", c.embedding_scale));
  const int64_t D = c.hidden_size, A = c.attn_dim(), I = c.intermediate_size, V = c.vocab_size;
  TruncNormal rng(seed);
  auto fill = [&](int64_t n, double std) {
    std::vector<float> v(n);
    for (float& x : v) x = rng.next(std);
    return v;
  };
  const double lecun_d = 1.0 / std::sqrt(static_cast<double>(D));
  ModelWeights w;
  w.embed = fill(V * D, 1.0 / c.embedding_scale);
  w.lm_head = fill(V * D, lecun_d);
  w.z_L_init = fill(D, kZLInitStd);
  auto block = [&] {
    BlockWeights b;
    b.gate = fill(A * D, lecun_d);
    b.q = fill(A * D, lecun_d);
    b.k = fill(A * D, lecun_d);
    b.v = fill(A * D, lecun_d);
    b.o = fill(D * A, 1.0 / std::sqrt(static_cast<double>(A)));
    b.mlp_gate = fill(I * D, lecun_d);
    b.up = fill(I * D, lecun_d);
    b.down = fill(D * I, 1.0 / std::sqrt(static_cast<double>(I)));
    return b;
  };
  for (int64_t i = 0; i < c.num_layers_per_stack; ++i) w.H.push_back(block());
  for (int64_t i = 0; i < c.num_layers_per_stack; ++i) w.L.push_back(block());
  return w;
}

}  // namespace hrm
