// The contamination Z-test: the paper's DROP row (DESIGN §5) re-derived, σ_k against a
// random-subset simulation, and the subset rules.
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "ngram/contam.h"

namespace hrm::ngram {
namespace {

// HRM-Text 1B, DROP, n = 13 (DESIGN §5): subset size, mean score, published Z; full-set mean 82.3.
struct PublishedRow {
  size_t k;
  double mean;
  double z;
};
constexpr size_t kDropN = 9536;
constexpr double kDropMu = 82.3;
constexpr PublishedRow kDropRows[] = {{5904, 81.1, -2.53}, {3632, 84.2, 3.23}, {6576, 80.8, -3.25}, {2960, 85.5, 4.85}};
// Published values are rounded to 0.1 (scores) and 0.01 (Z).
constexpr double kScoreRounding = 0.05, kZRounding = 0.005;

// The interval of s compatible with one published row, given the rounding of every number in it.
std::pair<double, double> s_interval(const PublishedRow& r, bool fpc) {
  double lo = INFINITY, hi = -INFINITY;
  for (double dx : {-kScoreRounding, kScoreRounding})
    for (double dm : {-kScoreRounding, kScoreRounding})
      for (double dz : {-kZRounding, kZRounding}) {
        // Z = (X̄ - μ) / σ_k and σ_k = s·f/√k  =>  s = (X̄ - μ)·√k / (Z·f)
        const double f = fpc ? sigma_k_fpc(1.0, r.k, kDropN) / sigma_k(1.0, r.k) : 1.0;
        const double s = (r.mean + dx - (kDropMu + dm)) * std::sqrt(static_cast<double>(r.k)) / ((r.z + dz) * f);
        lo = std::min(lo, s);
        hi = std::max(hi, s);
      }
  return {lo, hi};
}

TEST(ZTest, ReproducesThePublishedDropRowWithoutFiniteCorrection) {
  // The subsets partition the set twice, and μ is their weighted mean.
  EXPECT_EQ(kDropRows[0].k + kDropRows[1].k, kDropN);
  EXPECT_EQ(kDropRows[2].k + kDropRows[3].k, kDropN);
  for (int pair : {0, 2}) {
    const auto& a = kDropRows[pair];
    const auto& b = kDropRows[pair + 1];
    const double mu = (static_cast<double>(a.k) * a.mean + static_cast<double>(b.k) * b.mean) / kDropN;
    EXPECT_NEAR(mu, kDropMu, kScoreRounding + kScoreRounding);
  }
  // One s (the full-set standard deviation) must explain all four Z's.
  double lo = -INFINITY, hi = INFINITY;
  for (const auto& r : kDropRows) {
    const auto [l, h] = s_interval(r, false);
    lo = std::max(lo, l);
    hi = std::min(hi, h);
  }
  ASSERT_LT(lo, hi) << "no single s reproduces the published Z's with sigma_k = s/sqrt(k)";
  const double s = (lo + hi) / 2;
  std::printf("derived s = %.2f (consistent range %.2f..%.2f)\n", s, lo, hi);
  // With that s, every published Z is recomputed to within what the rounding of X̄ and μ allows,
  // and every subset is flagged |Z| > 2: the verdict is "contaminated".
  for (const auto& r : kDropRows) {
    const double z = (r.mean - kDropMu) / sigma_k(s, r.k);
    const double slack = (kScoreRounding + kScoreRounding) / sigma_k(s, r.k);
    EXPECT_NEAR(z, r.z, slack) << "k = " << r.k;
    EXPECT_GT(std::fabs(z), kZSignificant);
  }
  // The finite-population-corrected convention cannot reproduce them: no common s exists.
  double flo = -INFINITY, fhi = INFINITY;
  for (const auto& r : kDropRows) {
    const auto [l, h] = s_interval(r, true);
    flo = std::max(flo, l);
    fhi = std::min(fhi, h);
  }
  EXPECT_GT(flo, fhi) << "the corrected convention also fits; DESIGN §5 says it should not";
}

TEST(ZTest, SigmaKMatchesRandomSubsetSimulation) {
  std::mt19937_64 rng(20240601);
  const size_t n = 600;
  std::vector<double> pop(n);
  std::bernoulli_distribution correct(0.7);
  for (auto& x : pop) x = correct(rng) ? 1.0 : 0.0;
  double mu = 0;
  for (double x : pop) mu += x;
  mu /= n;
  double ss = 0;
  for (double x : pop) ss += (x - mu) * (x - mu);
  const double s = std::sqrt(ss / n);
  for (size_t k : {50u, 200u, 450u}) {
    const int trials = 20000;
    double m1 = 0, m2 = 0;
    std::vector<double> v = pop;
    for (int t = 0; t < trials; ++t) {
      // Partial Fisher-Yates: the first k entries are a uniform random subset.
      for (size_t i = 0; i < k; ++i) std::swap(v[i], v[i + std::uniform_int_distribution<size_t>(0, n - 1 - i)(rng)]);
      double m = 0;
      for (size_t i = 0; i < k; ++i) m += v[i];
      m /= static_cast<double>(k);
      m1 += m;
      m2 += m * m;
    }
    const double sd = std::sqrt(m2 / trials - (m1 / trials) * (m1 / trials));
    std::printf("k=%zu simulated %.5f  fpc %.5f  s/sqrt(k) %.5f\n", k, sd, sigma_k_fpc(s, k, n), sigma_k(s, k));
    EXPECT_NEAR(sd / sigma_k_fpc(s, k, n), 1.0, 0.03) << "k = " << k;
    // Without the correction σ_k overstates the spread, by 1/sqrt((N-k)/(N-1)) (5% already at k=50).
    EXPECT_GT(sigma_k(s, k) / sd, 1.03) << "k = " << k;
  }
}

TEST(ZTest, SubsetsRowsAndVerdict) {
  // Four samples: contamination 0, 10, 50, 90; scores 0, 1, 1, 1.
  const std::vector<double> c = {0, 10, 50, 90}, x = {0, 1, 1, 1};
  const ZTest t = contamination_ztest(c, x);
  EXPECT_DOUBLE_EQ(t.mu, 0.75);
  EXPECT_DOUBLE_EQ(t.s, std::sqrt(0.1875));
  ASSERT_EQ(t.rows.size(), 4u);
  EXPECT_EQ(t.rows[0].k, 2u);  // clean: 0, 10
  EXPECT_DOUBLE_EQ(t.rows[0].mean, 0.5);
  EXPECT_DOUBLE_EQ(t.rows[0].avg_contamination, 5.0);
  EXPECT_DOUBLE_EQ(*t.rows[0].z, (0.5 - 0.75) / (std::sqrt(0.1875) / std::sqrt(2.0)));
  EXPECT_DOUBLE_EQ(*t.rows[0].z_fpc, *t.rows[0].z / std::sqrt(2.0 / 3.0));
  EXPECT_EQ(t.rows[1].k, 2u);  // not clean: 50, 90
  EXPECT_EQ(t.rows[2].k, 3u);  // not dirty
  EXPECT_EQ(t.rows[3].k, 1u);  // dirty
  EXPECT_EQ(t.strictly_clean.k, 1u);
  EXPECT_DOUBLE_EQ(t.strictly_clean.mean, 0.0);
  EXPECT_FALSE(t.significant);  // |Z| of the clean row is about 0.8
  // Boundaries: 20% is not clean, 80% is dirty.
  EXPECT_FALSE(in_subset(Subset::kClean, 20.0));
  EXPECT_TRUE(in_subset(Subset::kDirty, 80.0));
  EXPECT_TRUE(in_subset(Subset::kNotDirty, 79.99));
  // An empty subset has no Z, so no significance.
  const ZTest e = contamination_ztest(std::vector<double>{0, 0}, std::vector<double>{1, 0});
  EXPECT_FALSE(e.rows[1].z.has_value());
  EXPECT_FALSE(e.significant);
}

}  // namespace
}  // namespace hrm::ngram
