// `hrmbench compare`: paired comparison of two runs (see harness.h).
#include <cmath>
#include <map>
#include <set>

#include "common/error.h"
#include "eval/fingerprint.h"
#include "eval/harness.h"
#include "eval/json_util.h"
#include "eval/samples.h"
#include "eval/stats.h"

namespace hrm::eval {
namespace {

constexpr double kSignificance = 0.05;

struct Row {
  std::string suite, metric;
  size_t n = 0;
  double a = 0, b = 0, lo = 0, hi = 0;
  double p = -1;  // McNemar p, or -1 when not a correctness metric
  std::string verdict;
};

std::string pct(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", 100 * x);
  return buf;
}
std::string signed_pct(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%+.2f", 100 * x);
  return buf;
}

double metric_of(const Sample& s, const std::string& name) {
  for (const auto& [k, v] : s.metrics)
    if (k == name) return v;
  return std::nan("");
}

}  // namespace

int compare(const std::filesystem::path& dir_a, const std::filesystem::path& dir_b, const CompareOptions& o,
            std::string& md) {
  const Json ra = read_json_file(dir_a / "results.json"), rb = read_json_file(dir_b / "results.json");
  for (const char* key : {"protocol", "data_hashes"}) {
    if (!ra.HasMember(key) || !rb.HasMember(key))
      throw Error(cat("results.json without '", key, "': not written by hrmbench run"));
    const std::string d = describe_difference(ra[key], rb[key], key);
    if (!d.empty())
      throw Error(cat("the runs are not comparable: ", d, " (", dir_a.string(), " vs ", dir_b.string(), ")"));
  }
  std::vector<Row> rows;
  for (const auto& m : ra["results"].GetObject()) {
    const std::string suite = m.name.GetString();
    if (!rb["results"].HasMember(suite.c_str())) continue;
    const auto sa = read_samples(dir_a / "samples" / (suite + ".jsonl"), false);
    const auto sb = read_samples(dir_b / "samples" / (suite + ".jsonl"), false);
    std::vector<const Sample*> pa, pb;
    for (const auto& [doc, s] : sa) {
      const auto it = sb.find(doc);
      if (it == sb.end()) continue;
      if (it->second.prompt_hash != s.prompt_hash)
        throw Error(cat("the runs are not comparable: ", suite, " doc_id ", doc, " has different prompts"));
      pa.push_back(&s);
      pb.push_back(&it->second);
    }
    if (pa.empty()) continue;
    std::vector<std::string> metrics;
    for (const auto& [k, v] : pa[0]->metrics)
      if (k != "invalid") metrics.push_back(k);
    // MMLU's headline is the macro average over subjects (DESIGN §4).
    std::vector<int64_t> group_of(pa.size());
    std::map<std::string, int64_t> group_ids;
    for (size_t i = 0; i < pa.size(); ++i)
      group_of[i] = group_ids.emplace(pa[i]->group, group_ids.size()).first->second;
    const bool macro = group_ids.size() > 1;
    for (const std::string& metric : metrics) {
      std::vector<double> va(pa.size()), vb(pb.size());
      for (size_t i = 0; i < pa.size(); ++i) {
        va[i] = metric_of(*pa[i], metric);
        vb[i] = metric_of(*pb[i], metric);
      }
      auto stat = [&](std::span<const double> v, std::span<const int64_t> idx) {
        if (!macro) return mean_of(v, idx);
        std::vector<double> sum(group_ids.size(), 0);
        std::vector<int64_t> cnt(group_ids.size(), 0);
        for (int64_t i : idx) {
          sum[group_of[i]] += v[i];
          ++cnt[group_of[i]];
        }
        double total = 0;
        int groups = 0;
        for (size_t g = 0; g < sum.size(); ++g)
          if (cnt[g]) {
            total += sum[g] / cnt[g];
            ++groups;
          }
        return groups ? total / groups : 0.0;
      };
      std::vector<int64_t> all(pa.size());
      for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
      Row r;
      r.suite = suite;
      r.metric = macro ? metric + " (macro)" : metric;
      r.n = pa.size();
      r.a = stat(va, all);
      r.b = stat(vb, all);
      std::tie(r.lo, r.hi) = paired_bootstrap_ci(va, vb, stat, o.bootstrap_samples, o.seed);
      if (metric == "acc" || metric == "em") {
        int64_t only_a = 0, only_b = 0;
        for (size_t i = 0; i < va.size(); ++i) {
          const bool ca = va[i] == 1.0, cb = vb[i] == 1.0;
          only_a += ca && !cb;
          only_b += cb && !ca;
        }
        r.p = mcnemar_exact_p(only_a, only_b);
      }
      const bool significant = r.p >= 0 ? r.p < kSignificance && (r.hi < 0 || r.lo > 0) : (r.hi < 0 || r.lo > 0);
      const double delta = r.b - r.a;
      if (significant && delta < 0 && o.fail_on_regression_pct >= 0 && -delta * 100 > o.fail_on_regression_pct)
        r.verdict = "REGRESSION";
      else if (significant)
        r.verdict = delta < 0 ? "worse" : "better";
      else
        r.verdict = "no significant change";
      rows.push_back(r);
    }
  }
  if (rows.empty()) throw Error("the runs have no suite and item in common");
  md = cat("Comparing B = ", dir_b.string(), " against A = ", dir_a.string(), "\n\n",
           "| suite | metric | n | A | B | delta (pp) | 95% CI (pp) | McNemar p | verdict |\n",
           "|---|---|---:|---:|---:|---:|---:|---:|---|\n");
  int code = 0;
  for (const Row& r : rows) {
    char p[32] = "-";
    if (r.p >= 0) std::snprintf(p, sizeof p, "%.3g", r.p);
    md += cat("| ", r.suite, " | ", r.metric, " | ", r.n, " | ", pct(r.a), " | ", pct(r.b), " | ",
              signed_pct(r.b - r.a), " | [", signed_pct(r.lo), ", ", signed_pct(r.hi), "] | ", p, " | ",
              r.verdict, " |\n");
    if (r.verdict == "REGRESSION") code = 1;
  }
  md += cat("\nPaired over common items; CI by paired bootstrap (", o.bootstrap_samples,
            " resamples, seed ", o.seed, "); McNemar exact test on per-item correctness.\n");
  if (o.fail_on_regression_pct >= 0)
    md += cat(code ? "FAIL" : "PASS", ": threshold ", o.fail_on_regression_pct,
              " pp, significance p < ", kSignificance, "\n");
  return code;
}

}  // namespace hrm::eval
