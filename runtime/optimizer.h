// The reference optimizer, learning-rate schedule, weight EMA and initialisation (DESIGN §6).
//
// AdamAtan2 is sapientinc/HRM-Text models/adam_atan2.py: decoupled weight decay p *= 1 - lr*wd,
// m = lerp(m, g, 1-β1), v = β2 v + (1-β2) g², p -= lr/(1-β1^t) · atan2(m, sqrt(v)/sqrt(1-β2^t)), no
// epsilon and no gradient clipping; the EMA of the weights is updated after each step
// (ema = lerp(ema, p, 1-decay)). The schedule is pretrain.py's update_lr: the step counter starts at
// 1, warm-up lr·min(1, step/warmup), then cosine down to lr·min_ratio (min_ratio = 1 gives the
// constant LR of DESIGN §6). Initialisation is the reference's truncated LeCun normal
// (models/common.py trunc_normal_init_: a normal sample folded into (-3, 3) by fmod, rescaled to
// keep the variance) with a seed. Not for: the training loop (trainer.h) or gradients (train.h).
//
// Example:
//   hrm::ModelWeights w = hrm::init_weights(cfg, /*seed=*/0);
//   hrm::AdamAtan2 opt({}, w);                  // paper defaults
//   opt.step(w, grads, schedule.at(step));
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "runtime/config.h"
#include "runtime/model.h"

namespace hrm {

// Paper / reference defaults (DESIGN §6; config/cfg_sft.yaml of the reference).
inline constexpr double kDefaultLr = 2.2e-4;
inline constexpr double kDefaultBeta1 = 0.9;
inline constexpr double kDefaultBeta2 = 0.95;
inline constexpr double kDefaultWeightDecay = 0.1;
inline constexpr double kDefaultEmaDecay = 0.9999;
inline constexpr int64_t kDefaultWarmupSteps = 2000;

struct AdamAtan2Config {
  double beta1 = kDefaultBeta1;
  double beta2 = kDefaultBeta2;
  double weight_decay = kDefaultWeightDecay;
  double ema_decay = kDefaultEmaDecay;  // 0 disables the EMA
};

// The scalars of one Adam-atan2 step (AdamAtan2::begin_step), per trainable tensor where they
// depend on it; adam_atan2_update applies them to one tensor's elements. A backend that keeps the
// optimizer state itself (the CUDA one) applies the same scalars to its own copy.
struct AdamStep {
  float decay = 1;            // 1 - lr * weight_decay (decoupled weight decay)
  float b1c = 0, b2 = 0, b2c = 0;  // 1 - beta1, beta2, 1 - beta2
  float ema_w = 0;            // 1 - ema_decay
  bool ema = false;           // whether an EMA is kept
  std::vector<char> active;   // per trainable tensor: updated in this step
  std::vector<float> step_size, inv_sqrt_bc2;  // per trainable tensor: lr / (1 - beta1^t), 1 / sqrt(1 - beta2^t)
};

// The update of `n` elements of trainable tensor `tensor` (p: weights, g: gradient, m/v: moments,
// ema: may be null): decay, moments, p -= step_size * atan2(m, sqrt(v) * inv_sqrt_bc2), EMA.
void adam_atan2_update(float* p, const float* g, float* m, float* v, float* ema, size_t n, const AdamStep& s,
                       size_t tensor);

class AdamAtan2 {
 public:
  // State (m, v, EMA = copy of the weights) for every trainable tensor of `w` (train.h).
  AdamAtan2(AdamAtan2Config cfg, ModelWeights& w);

  // One update with learning rate `lr`; then the EMA. `active[i]` says whether trainable tensor i
  // (trainable_tensors order) took part in the backward pass (empty: all did). Like the reference,
  // where PyTorch leaves `grad = None` for a parameter outside the loss's graph and AdamATan2 skips
  // it, an inactive tensor is left alone entirely: no decay, no moment or EMA update, and its own
  // step count (which drives its bias correction) does not advance.
  void step(ModelWeights& w, ModelWeights& grads, double lr, std::span<const char> active = {});
  // The bookkeeping half of step(): advances the step counters (of the active tensors, and t) and
  // returns what the update applies; step() is this plus adam_atan2_update on every active tensor.
  AdamStep begin_step(double lr, std::span<const char> active = {});

  const AdamAtan2Config& config() const { return cfg_; }
  int64_t steps() const { return t_; }  // optimizer steps taken (the trainer's step)
  // Per trainable tensor: the steps in which it was updated (the reference's per-parameter state["step"]).
  std::vector<int64_t>& tensor_steps() { return tensor_t_; }
  // Per trainable tensor (trainable_tensors order): first and second moments and the EMA.
  std::vector<std::vector<float>>& m() { return m_; }
  std::vector<std::vector<float>>& v() { return v_; }
  std::vector<std::vector<float>>& ema() { return ema_; }
  const std::vector<std::vector<float>>& m() const { return m_; }
  const std::vector<std::vector<float>>& v() const { return v_; }
  const std::vector<std::vector<float>>& ema() const { return ema_; }
  void set_steps(int64_t t) { t_ = t; }
  // The weights with every trainable tensor replaced by its EMA (z_L_init kept).
  ModelWeights ema_weights(const ModelWeights& w) const;

 private:
  AdamAtan2Config cfg_;
  int64_t t_ = 0;
  std::vector<int64_t> tensor_t_;
  std::vector<std::vector<float>> m_, v_, ema_;
};

struct LrSchedule {
  double lr = kDefaultLr;
  int64_t warmup_steps = kDefaultWarmupSteps;
  double min_ratio = 1.0;      // 1: constant after warm-up (DESIGN §6); < 1: cosine down to lr·min_ratio
  int64_t total_steps = 0;     // needed for the cosine
  // `step` counts from 1 (the reference increments before computing the LR).
  double at(int64_t step) const;
};

// The reference's truncated normal: x ~ N(0,1), fmod(x, 3) · 1.0147626 · std (the factor restores
// unit variance after folding; models/common.py). Deterministic for a seed on every platform.
class TruncNormal {
 public:
  explicit TruncNormal(uint64_t seed) : state_(seed) {}
  float next(double std);

 private:
  uint64_t next_u64();
  double next_normal();
  uint64_t state_;
  bool have_spare_ = false;
  double spare_ = 0;
};

// Fresh weights per DESIGN §6: every projection truncated LeCun normal (std 1/sqrt(fan_in), so the
// down-projection uses 1/sqrt(intermediate)); lm_head the same with fan_in = hidden; the embedding
// std = 1/embedding_scale (the scale undoes it at use; cfg.embedding_scale must be > 0); z_L_init
// the reference's truncated normal with std 1, frozen.
ModelWeights init_weights(const ModelConfig& cfg, uint64_t seed);

}  // namespace hrm
