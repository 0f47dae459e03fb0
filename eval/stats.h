// Paired statistics for comparing two runs on the same items. Pure functions; unit-tested.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <utility>
#include <vector>

namespace hrm::eval {

// Two-sided exact McNemar test: p-value of b vs c discordant pairs under H0 (each discordant pair
// goes either way with probability 1/2), i.e. min(1, 2 * P[Binom(b + c, 1/2) <= min(b, c)]).
double mcnemar_exact_p(int64_t b, int64_t c);

// 95% (or `level`) percentile interval of statistic(B) - statistic(A) over paired bootstrap
// resamples of the item indices. `statistic(values, indices)` computes the metric of one run on a
// resample. Deterministic for a seed.
std::pair<double, double> paired_bootstrap_ci(
    std::span<const double> a, std::span<const double> b,
    const std::function<double(std::span<const double>, std::span<const int64_t>)>& statistic,
    int resamples, uint64_t seed, double level = 0.95);

double mean_of(std::span<const double> values, std::span<const int64_t> indices);

}  // namespace hrm::eval
