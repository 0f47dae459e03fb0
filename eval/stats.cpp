// Paired statistics (see stats.h).
#include "eval/stats.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "common/error.h"

namespace hrm::eval {

double mcnemar_exact_p(int64_t b, int64_t c) {
  const int64_t n = b + c;
  if (n == 0) return 1.0;
  const int64_t k = std::min(b, c);
  // Sum of C(n, i) / 2^n for i <= k, in log space to stay finite for large n.
  double total = 0;
  for (int64_t i = 0; i <= k; ++i) {
    const double log_term = std::lgamma(n + 1.0) - std::lgamma(i + 1.0) - std::lgamma(n - i + 1.0) -
                            n * std::log(2.0);
    total += std::exp(log_term);
  }
  return std::min(1.0, 2.0 * total);
}

double mean_of(std::span<const double> values, std::span<const int64_t> indices) {
  if (indices.empty()) return 0;
  double s = 0;
  for (int64_t i : indices) s += values[i];
  return s / static_cast<double>(indices.size());
}

std::pair<double, double> paired_bootstrap_ci(
    std::span<const double> a, std::span<const double> b,
    const std::function<double(std::span<const double>, std::span<const int64_t>)>& statistic,
    int resamples, uint64_t seed, double level) {
  HRM_CHECK(a.size() == b.size(), "paired samples of different sizes");
  HRM_CHECK(resamples > 0, "resamples must be positive");
  const int64_t n = static_cast<int64_t>(a.size());
  if (n == 0) return {0, 0};
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> pick(0, n - 1);
  std::vector<int64_t> idx(n);
  std::vector<double> deltas(resamples);
  for (int r = 0; r < resamples; ++r) {
    for (auto& i : idx) i = pick(rng);
    deltas[r] = statistic(b, idx) - statistic(a, idx);
  }
  std::sort(deltas.begin(), deltas.end());
  const double tail = (1.0 - level) / 2.0;
  auto at = [&](double q) {
    const auto k = static_cast<size_t>(std::clamp(q * (resamples - 1), 0.0, resamples - 1.0) + 0.5);
    return deltas[k];
  };
  return {at(tail), at(1.0 - tail)};
}

}  // namespace hrm::eval
