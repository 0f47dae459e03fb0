// Sampling policy: greedy ties, determinism per seed, top-p truncation, temperature.
#include <cmath>
#include <map>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/sampling.h"

namespace hrm {
namespace {

TEST(Sampling, GreedyTakesFirstMaximumLikeTorchArgmax) {
  const std::vector<float> logits = {0.f, 3.f, 1.f, 3.f};
  EXPECT_EQ(argmax(logits), 1);
  Sampler s({.temperature = 0.f});
  EXPECT_EQ(s.next(logits), 1);
}

TEST(Sampling, SameSeedSameTokens) {
  const std::vector<float> logits = {0.5f, 0.4f, 0.3f, 0.2f, 0.1f};
  Sampler a({.temperature = 1.f, .top_p = 1.f, .seed = 7}), b({.temperature = 1.f, .top_p = 1.f, .seed = 7});
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.next(logits), b.next(logits));
}

TEST(Sampling, TopPKeepsOnlyTheNucleus) {
  // Probabilities 0.5, 0.3, 0.2 (log-space): top_p 0.7 keeps the first two only.
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  Sampler s({.temperature = 1.f, .top_p = 0.7f, .seed = 1});
  std::map<TokenId, int> counts;
  for (int i = 0; i < 4000; ++i) ++counts[s.next(logits)];
  EXPECT_EQ(counts.count(2), 0u);
  // Renormalised 0.5/0.8 = 0.625; 4000 draws give a standard error of about 0.0077.
  EXPECT_NEAR(counts[0] / 4000.0, 0.625, 0.04);
}

TEST(Sampling, FrequenciesFollowTheTemperedDistribution) {
  const std::vector<float> logits = {0.f, std::log(3.f)};  // p = 1/4, 3/4 at T = 1
  Sampler hot({.temperature = 1.f, .top_p = 1.f, .seed = 3});
  int ones = 0;
  for (int i = 0; i < 4000; ++i) ones += hot.next(logits);
  EXPECT_NEAR(ones / 4000.0, 0.75, 0.03);
  // At T = 0.5 the odds square: p(1) = 9/10.
  Sampler cool({.temperature = 0.5f, .top_p = 1.f, .seed = 3});
  ones = 0;
  for (int i = 0; i < 4000; ++i) ones += cool.next(logits);
  EXPECT_NEAR(ones / 4000.0, 0.9, 0.02);
}

}  // namespace
}  // namespace hrm

namespace hrm {
namespace {

TEST(Sampling, InverseCdfWalksIdsInOrder) {
  // p = 0.25, 0.5, 0.25 at T = 1: draws in [0, .25) give 0, [.25, .75) give 1, [.75, 1) give 2.
  const std::vector<float> logits = {0.f, std::log(2.f), 0.f};
  EXPECT_EQ(sample_inverse_cdf(logits, 1.f, 0.0f), 0);
  EXPECT_EQ(sample_inverse_cdf(logits, 1.f, 0.24f), 0);
  EXPECT_EQ(sample_inverse_cdf(logits, 1.f, 0.26f), 1);
  EXPECT_EQ(sample_inverse_cdf(logits, 1.f, 0.74f), 1);
  EXPECT_EQ(sample_inverse_cdf(logits, 1.f, 0.76f), 2);
  // A draw of 1 (never produced by the generator, but reachable by rounding) falls back to the mode.
  EXPECT_EQ(sample_inverse_cdf(logits, 1.f, 1.0f), 1);
  // A low temperature concentrates the mass on the mode: p(1) = 4/6 at T = 0.5.
  EXPECT_EQ(sample_inverse_cdf(logits, 0.5f, 0.2f), 1);
}

}  // namespace
}  // namespace hrm
