// Greedy and temperature/top-p sampling (see sampling.h).
#include "runtime/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "common/error.h"

namespace hrm {

TokenId argmax(std::span<const float> logits) {
  HRM_CHECK(!logits.empty(), "argmax of empty logits");
  size_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<TokenId>(best);
}

TokenId sample_inverse_cdf(std::span<const float> logits, float temperature, float u) {
  const TokenId mode = argmax(logits);
  const double mx = logits[mode], inv_t = 1.0 / temperature;
  double total = 0;
  for (float x : logits) total += std::exp((x - mx) * inv_t);
  const double target = static_cast<double>(u) * total;
  double cum = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    cum += std::exp((logits[i] - mx) * inv_t);
    if (cum > target) return static_cast<TokenId>(i);
  }
  return mode;
}

TokenId Sampler::next(std::span<const float> logits) {
  if (p_.temperature < kGreedyBelow) return argmax(logits);
  // Softmax at temperature T (max-subtracted, in double for a stable cumulative sum).
  const float mx = *std::max_element(logits.begin(), logits.end());
  std::vector<double> prob(logits.size());
  double total = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    prob[i] = std::exp(static_cast<double>(logits[i] - mx) / p_.temperature);
    total += prob[i];
  }
  std::vector<TokenId> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  // Stable so equal probabilities keep id order: the result is a function of (logits, seed) only.
  std::stable_sort(order.begin(), order.end(), [&](TokenId a, TokenId b) { return prob[a] > prob[b]; });
  // Nucleus: the smallest prefix of the sorted distribution with mass >= top_p.
  size_t keep = 0;
  double mass = 0;
  while (keep < order.size()) {
    mass += prob[order[keep++]] / total;
    if (mass >= p_.top_p) break;
  }
  double r = std::uniform_real_distribution<double>(0.0, mass)(rng_) * total;
  for (size_t i = 0; i < keep; ++i) {
    r -= prob[order[i]];
    if (r < 0) return order[i];
  }
  return order[keep - 1];
}

}  // namespace hrm
