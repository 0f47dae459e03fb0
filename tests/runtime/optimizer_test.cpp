// Adam-atan2, EMA, LR schedule and initialisation against values computed by hand from the
// formulas of models/adam_atan2.py, pretrain.py update_lr and models/common.py.
#include "runtime/optimizer.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "runtime/train.h"

namespace hrm {
namespace {

// The smallest weights trainable_tensors accepts: D=1, V=1, one block with A=I=1.
ModelWeights scalar_weights(float value) {
  ModelWeights w;
  w.embed = {value};
  w.lm_head = {value};
  w.z_L_init = {0.f};
  BlockWeights b{{value}, {value}, {value}, {value}, {value}, {value}, {value}, {value}};
  w.L.push_back(b);
  w.H.push_back(b);
  return w;
}

TEST(Optimizer, AdamAtan2TwoStepsByHand) {
  ModelWeights w = scalar_weights(1.0f);
  AdamAtan2Config c;
  c.ema_decay = 0.5;
  AdamAtan2 opt(c, w);
  ModelWeights g = scalar_weights(0.5f);
  const double lr = 0.01;
  opt.step(w, g, lr);
  // t=1: p = 1*(1-0.001) = 0.999; m = 0.05; v = 0.05*0.25 = 0.0125
  // p -= 0.01/0.1 * atan2(0.05, sqrt(0.0125)/sqrt(0.05)) = 0.1*atan2(0.05, 0.5)
  double p = 0.999 - 0.1 * std::atan2(0.05, 0.5);
  double ema = 1.0 + 0.5 * (p - 1.0);
  EXPECT_NEAR(w.embed[0], p, 1e-7);
  EXPECT_NEAR(opt.ema()[0][0], ema, 1e-7);
  g = scalar_weights(-1.0f);
  opt.step(w, g, lr);
  // t=2: m = 0.05 + 0.1*(-1-0.05) = -0.055; v = 0.95*0.0125 + 0.05*1 = 0.061875
  // bc1 = 1-0.81 = 0.19, bc2 = 1-0.9025 = 0.0975
  p = p * 0.999 - (0.01 / 0.19) * std::atan2(-0.055, std::sqrt(0.061875) / std::sqrt(0.0975));
  ema = ema + 0.5 * (p - ema);
  EXPECT_NEAR(w.embed[0], p, 1e-7);
  EXPECT_NEAR(w.L[0].down[0], p, 1e-7);  // every trainable tensor gets the same update
  EXPECT_NEAR(opt.ema()[0][0], ema, 1e-7);
  EXPECT_EQ(opt.steps(), 2);
  EXPECT_EQ(w.z_L_init[0], 0.f);  // frozen
  const ModelWeights e = opt.ema_weights(w);
  EXPECT_NEAR(e.lm_head[0], ema, 1e-7);
}

TEST(Optimizer, ZeroGradientOnlyDecays) {
  ModelWeights w = scalar_weights(2.0f);
  AdamAtan2 opt({}, w);
  ModelWeights g = scalar_weights(0.f);
  opt.step(w, g, 1e-3);
  EXPECT_FLOAT_EQ(w.embed[0], static_cast<float>(2.0 * (1 - 1e-3 * kDefaultWeightDecay)));  // atan2(0, 0) = 0
}

TEST(Optimizer, InactiveTensorsAreLeftAlone) {
  // The reference skips parameters whose grad is None: no decay, no moments, no EMA, and their own
  // step count (bias correction) only starts when they first take part.
  ModelWeights w = scalar_weights(1.0f);
  AdamAtan2 opt({}, w);
  ModelWeights g = scalar_weights(0.5f);
  const size_t n = trainable_tensors(w).size();
  std::vector<char> only_head(n, 0);
  only_head.back() = 1;  // lm_head
  opt.step(w, g, 0.01, only_head);
  EXPECT_EQ(w.embed[0], 1.0f);
  EXPECT_EQ(opt.m()[0][0], 0.f);
  EXPECT_EQ(opt.ema()[0][0], 1.0f);
  EXPECT_EQ(opt.tensor_steps()[0], 0);
  EXPECT_EQ(opt.tensor_steps()[n - 1], 1);
  opt.step(w, g, 0.01);  // now everything: the embedding takes its FIRST step (bias correction t=1)
  EXPECT_NEAR(w.embed[0], 0.999 - 0.1 * std::atan2(0.05, 0.5), 1e-7);
  EXPECT_EQ(opt.tensor_steps()[0], 1);
  EXPECT_EQ(opt.tensor_steps()[n - 1], 2);
  EXPECT_EQ(opt.steps(), 2);
}

TEST(Optimizer, RejectsBadHyperparameters) {
  ModelWeights w = scalar_weights(1.f);
  AdamAtan2Config c;
  c.beta2 = 1.0;
  EXPECT_THROW(AdamAtan2(c, w), Error);
  c = {};
  c.weight_decay = -1;
  EXPECT_THROW(AdamAtan2(c, w), Error);
}

TEST(Optimizer, LrWarmupThenConstantOrCosine) {
  LrSchedule s;  // 2.2e-4, 2000 warm-up steps, constant
  EXPECT_DOUBLE_EQ(s.at(1), 2.2e-4 / 2000);
  EXPECT_DOUBLE_EQ(s.at(1000), 1.1e-4);
  EXPECT_DOUBLE_EQ(s.at(2000), 2.2e-4);
  EXPECT_DOUBLE_EQ(s.at(50000), 2.2e-4);
  s.min_ratio = 0.1;
  s.total_steps = 4000;
  EXPECT_DOUBLE_EQ(s.at(2000), 2.2e-4);                          // cos(0) = 1
  EXPECT_NEAR(s.at(3000), 2.2e-4 * (0.1 + 0.9 * 0.5), 1e-15);    // half way: cos(pi/2) = 0
  EXPECT_NEAR(s.at(4000), 2.2e-4 * 0.1, 1e-15);
}

TEST(Optimizer, TruncatedNormalMatchesReferenceMoments) {
  TruncNormal r(42);
  const int n = 200000;
  double s = 0, s2 = 0, mx = 0;
  for (int i = 0; i < n; ++i) {
    const double x = r.next(2.0);
    s += x;
    s2 += x * x;
    mx = std::max(mx, std::abs(x));
  }
  // Folded at 3 std and rescaled by 1.0147626: the std stays ~2, nothing beyond 3*2*1.0148.
  EXPECT_NEAR(s / n, 0.0, 0.02);
  EXPECT_NEAR(std::sqrt(s2 / n), 2.0, 0.02);
  EXPECT_LE(mx, 3 * 2 * 1.014762601732121);
  TruncNormal a(7), b(7);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.next(1), b.next(1));
}

TEST(Optimizer, InitUsesLecunStds) {
  ModelConfig c;
  c.hidden_size = 64;
  c.intermediate_size = 256;
  c.num_attention_heads = 4;
  c.head_dim = 16;
  c.num_layers_per_stack = 1;
  c.H_cycles = 1;
  c.L_cycles = 1;
  c.vocab_size = 512;
  c.embedding_scale = 8.0;  // 1/init std of the embedding
  const ModelWeights w = init_weights(c, 3);
  auto rms = [](const std::vector<float>& v) {
    double s = 0;
    for (float x : v) s += double(x) * x;
    return std::sqrt(s / v.size());
  };
  EXPECT_NEAR(rms(w.embed), 1.0 / 8, 0.01 / 8 * 2);
  EXPECT_NEAR(rms(w.H[0].q), 1.0 / 8, 0.01);
  EXPECT_NEAR(rms(w.H[0].down), 1.0 / 16, 0.005);
  EXPECT_NEAR(rms(w.z_L_init), 1.0, 0.3);
  EXPECT_EQ(init_weights(c, 3).L[0].up, w.L[0].up);
  EXPECT_NE(init_weights(c, 4).L[0].up, w.L[0].up);
}

}  // namespace
}  // namespace hrm
