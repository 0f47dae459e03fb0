// Clean subsets and the contamination Z-test of DESIGN §5 (Llama 2 §A.6, reused by HRM-Text):
// for each subset of size k, Z = (X̄ - μ) / σ_k with σ_k = s / sqrt(k) — the convention that
// reproduces the published tables — and, beside it, the finite-population-corrected σ_k that a
// random size-k subset drawn without replacement actually has.
// Not for: reading score files (the CLI does that).
#include <cmath>

#include "common/error.h"
#include "ngram/contam.h"

namespace hrm::ngram {

const std::vector<SubsetInfo>& subsets() {
  static const std::vector<SubsetInfo> kSubsets = {
      {Subset::kStrictlyClean, "strictly_clean", "Strictly clean (0%)"},
      {Subset::kClean, "clean", "Clean (< 20%)"},
      {Subset::kNotClean, "not_clean", "Not clean (>= 20%)"},
      {Subset::kNotDirty, "not_dirty", "Not dirty (< 80%)"},
      {Subset::kDirty, "dirty", "Dirty (>= 80%)"},
  };
  return kSubsets;
}

bool in_subset(Subset subset, double c) {
  switch (subset) {
    case Subset::kStrictlyClean: return c == 0.0;
    case Subset::kClean: return c < kCleanBelow;
    case Subset::kNotClean: return c >= kCleanBelow;
    case Subset::kNotDirty: return c < kDirtyFrom;
    case Subset::kDirty: return c >= kDirtyFrom;
  }
  return false;
}

double sigma_k(double s, size_t k) { return k ? s / std::sqrt(static_cast<double>(k)) : 0.0; }

double sigma_k_fpc(double s, size_t k, size_t n) {
  if (k == 0 || n < 2 || k > n) return 0.0;
  return sigma_k(s, k) * std::sqrt(static_cast<double>(n - k) / static_cast<double>(n - 1));
}

ZTest contamination_ztest(std::span<const double> contamination, std::span<const double> scores) {
  if (contamination.size() != scores.size())
    throw Error(cat("contamination Z-test: ", contamination.size(), " contamination values but ", scores.size(), " scores"));
  ZTest t;
  t.n = scores.size();
  if (t.n == 0) throw Error("contamination Z-test: no samples with both a score and a contamination value");
  double sum = 0;
  for (double x : scores) sum += x;
  t.mu = sum / static_cast<double>(t.n);
  double ss = 0;
  for (double x : scores) ss += (x - t.mu) * (x - t.mu);
  t.s = std::sqrt(ss / static_cast<double>(t.n));
  for (const SubsetInfo& info : subsets()) {
    SubsetZ row;
    row.info = info;
    double c_sum = 0, x_sum = 0;
    for (size_t i = 0; i < t.n; ++i) {
      if (!in_subset(info.subset, contamination[i])) continue;
      ++row.k;
      c_sum += contamination[i];
      x_sum += scores[i];
    }
    if (row.k) {
      row.avg_contamination = c_sum / static_cast<double>(row.k);
      row.mean = x_sum / static_cast<double>(row.k);
      row.sigma = sigma_k(t.s, row.k);
      row.sigma_fpc = sigma_k_fpc(t.s, row.k, t.n);
      if (row.sigma > 0) row.z = (row.mean - t.mu) / row.sigma;
      if (row.sigma_fpc > 0) row.z_fpc = (row.mean - t.mu) / row.sigma_fpc;
    }
    if (info.subset == Subset::kStrictlyClean) {
      t.strictly_clean = row;
    } else {
      t.rows.push_back(row);
    }
  }
  t.significant = true;
  for (const SubsetZ& r : t.rows) t.significant = t.significant && r.z && std::fabs(*r.z) > kZSignificant;
  return t;
}

}  // namespace hrm::ngram
