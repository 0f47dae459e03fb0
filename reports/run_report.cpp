// Evaluation report rendering (see run_report.h).
#include "reports/run_report.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <map>

#include "reports/html.h"

namespace hrm::reports {
namespace {

constexpr int kFailuresPerSuite = 3;
constexpr size_t kExcerpt = 600;  // characters of prompt/generation shown per failure

std::string pct(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", 100 * v);
  return buf;
}
std::string pct_pm(double v, double se) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.1f ± %.1f", 100 * v, 100 * se);
  return buf;
}

const MetricView* find_metric(const SuiteView& s, const std::string& name) {
  for (const auto& m : s.metrics)
    if (m.name == name) return &m;
  return nullptr;
}

const SuiteView* find_suite(const RunView* run, const std::string& name) {
  if (!run) return nullptr;
  for (const auto& s : run->suites)
    if (s.name == name) return &s;
  return nullptr;
}

std::string tail(const std::string& s, size_t n) { return s.size() <= n ? s : "…" + s.substr(s.size() - n); }
std::string head(const std::string& s, size_t n) { return s.size() <= n ? s : s.substr(0, n) + "…"; }

std::string when(double date) {
  const std::time_t t = static_cast<std::time_t>(date);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
  return buf;
}

struct HeadlineRow {
  std::string suite, metric, ours, other, delta, pub1b, pub06b;
};

std::vector<HeadlineRow> headline(const RunView& run, const RunView* other) {
  std::vector<HeadlineRow> rows;
  for (const auto& s : run.suites) {
    const std::string metric = headline_metric(s.name);
    const MetricView* m = find_metric(s, metric);
    if (!m) continue;
    HeadlineRow r{s.name, metric + (s.groups.empty() ? "" : " (macro)"), pct_pm(m->value, m->stderr_), "", "", "-", "-"};
    if (const SuiteView* o = find_suite(other, s.name)) {
      if (const MetricView* om = find_metric(*o, metric)) {
        r.other = pct_pm(om->value, om->stderr_);
        char buf[32];
        std::snprintf(buf, sizeof buf, "%+.1f", 100 * (om->value - m->value));
        r.delta = buf;
      }
    }
    if (auto p = published_scores(s.name)) {
      char a[16], b[16];
      std::snprintf(a, sizeof a, "%.1f", p->first);
      std::snprintf(b, sizeof b, "%.1f", p->second);
      r.pub1b = a;
      r.pub06b = b;
    }
    rows.push_back(r);
  }
  return rows;
}

BarOptions percent_bars(std::string color = "#3b6ea8", std::vector<double> reference = {}) {
  BarOptions o;
  o.max = 1;
  o.percent = true;
  o.color = std::move(color);
  o.reference = std::move(reference);
  return o;
}

std::vector<const SampleView*> failures(const SuiteView& s) {
  std::vector<const SampleView*> out;
  for (const auto& x : s.samples) {
    if (x.score >= 1.0) continue;
    out.push_back(&x);
    if (static_cast<int>(out.size()) == kFailuresPerSuite) break;
  }
  return out;
}

}  // namespace

std::string headline_metric(const std::string& suite) { return suite == "drop" ? "f1" : "acc"; }

std::optional<std::pair<double, double>> published_scores(const std::string& suite) {
  // HRM-Text paper, main results table (DESIGN §4): 1B and 0.6B.
  static const std::map<std::string, std::pair<double, double>> kPublished = {
      {"mmlu", {60.7, 56.9}}, {"arc", {81.9, 74.3}}, {"drop", {82.2, 78.1}},
      {"gsm8k", {84.5, 78.4}}, {"math", {56.2, 50.3}}};
  const auto it = kPublished.find(suite);
  if (it == kPublished.end()) return std::nullopt;
  return it->second;
}

std::string render_markdown(const RunView& run, const RunView* other) {
  std::string md = "# hrmbench evaluation report\n\n";
  md += "- run: `" + run.dir + "`\n- model: `" + run.model + "` (hash " + run.model_hash + ", " + run.dtype +
        ", backend " + run.backend + ")\n- date: " + when(run.date) + ", git " + run.git_hash.substr(0, 12) + "\n";
  if (!run.limit.empty()) md += "- **limit " + run.limit + " items per suite: not comparable to published numbers**\n";
  if (other) md += "- compared with: `" + other->dir + "` (model hash " + other->model_hash + ")\n";
  md += "\n| suite | metric | this run (%) |";
  if (other) md += " other run (%) | delta (pp) |";
  md += " HRM-Text 1B | HRM-Text 0.6B |\n|---|---|---:|";
  if (other) md += "---:|---:|";
  md += "---:|---:|\n";
  for (const auto& r : headline(run, other)) {
    md += "| " + r.suite + " | " + r.metric + " | " + r.ours + " |";
    if (other) md += " " + r.other + " | " + r.delta + " |";
    md += " " + r.pub1b + " | " + r.pub06b + " |\n";
  }
  md += "\n| suite | items | invalid answers (%) | prompts over the context |\n|---|---:|---:|---:|\n";
  for (const auto& s : run.suites) {
    const MetricView* inv = find_metric(s, "invalid");
    md += "| " + s.name + " | " + std::to_string(s.n) + " | " + (inv ? pct(inv->value) : "-") + " | " +
          std::to_string(s.over_context) + " |\n";
  }
  return md;
}

std::string render_html(const RunView& run, const RunView* other) {
  std::string body = "<p class=\"meta\">Run <code>" + escape(run.dir) + "</code> · model <code>" + escape(run.model) +
                     "</code> (hash " + escape(run.model_hash) + ", " + escape(run.dtype) + ", backend " +
                     escape(run.backend) + ") · " + escape(when(run.date)) + " · git " +
                     escape(run.git_hash.substr(0, 12)) + "</p>\n";
  if (!run.limit.empty())
    body += "<p class=\"bad\">Limited to " + escape(run.limit) +
            " items per suite: not comparable to the published numbers.</p>\n";
  if (other) body += "<p class=\"meta\">Compared with <code>" + escape(other->dir) + "</code></p>\n";

  body += h2("Headline results (percent, ± one standard error)");
  std::vector<std::string> header = {"suite", "metric", "this run"};
  if (other) header.insert(header.end(), {"other run", "delta (pp)"});
  header.insert(header.end(), {"HRM-Text 1B (paper)", "HRM-Text 0.6B (paper)"});
  std::vector<std::vector<std::string>> rows;
  std::vector<std::pair<std::string, double>> bars;
  std::vector<double> refs;
  for (const auto& r : headline(run, other)) {
    std::vector<std::string> row = {r.suite, r.metric, r.ours};
    if (other) row.insert(row.end(), {r.other, r.delta});
    row.insert(row.end(), {r.pub1b, r.pub06b});
    rows.push_back(row);
  }
  body += table(header, rows);
  for (const auto& s : run.suites)
    if (const MetricView* m = find_metric(s, headline_metric(s.name))) {
      bars.emplace_back(s.name, m->value);
      const auto p = published_scores(s.name);
      refs.push_back(p ? p->first / 100 : -1);
    }
  body += "<p class=\"meta\">Bars: this run; red ticks: HRM-Text 1B as published.</p>\n";
  body += bar_chart(bars, percent_bars("#3b6ea8", refs));

  body += h2("Invalid answers");
  std::vector<std::pair<std::string, double>> inv;
  for (const auto& s : run.suites)
    if (const MetricView* m = find_metric(s, "invalid")) inv.emplace_back(s.name, m->value);
  body += inv.empty() ? "<p>No suite reports invalid answers.</p>\n"
                      : bar_chart(inv, percent_bars("#b3261e"));

  for (const auto& s : run.suites) {
    if (s.groups.empty()) continue;
    body += h2(s.name + ": accuracy per subject");
    std::vector<std::pair<std::string, double>> g;
    for (const auto& x : s.groups) g.emplace_back(x.name + " (" + std::to_string(x.n) + ")", x.acc);
    body += bar_chart(g, percent_bars());
  }

  body += h2("Generation lengths (tokens)");
  for (const auto& s : run.suites) {
    std::vector<double> lens;
    double hi = 1;
    for (const auto& x : s.samples) {
      lens.push_back(static_cast<double>(x.generated_tokens));
      hi = std::max(hi, static_cast<double>(x.generated_tokens));
    }
    body += "<h3>" + escape(s.name) + "</h3>\n" + histogram(lens, 0, hi, 30, "generated tokens");
  }

  body += h2("Example failures");
  for (const auto& s : run.suites) {
    const auto f = failures(s);
    if (f.empty()) continue;
    body += "<h3>" + escape(s.name) + "</h3>\n";
    for (const SampleView* x : f) {
      body += "<p class=\"meta\">doc_id " + std::to_string(x->doc_id) + " · target <b>" + escape(x->target) +
              "</b> · extracted <b>" + escape(x->extracted.value_or("(invalid)")) + "</b> · " +
              std::to_string(x->generated_tokens) + " tokens, finish " + escape(x->finish) + "</p>\n";
      body += "<pre>" + escape(tail(x->prompt, kExcerpt)) + "</pre><pre>" + escape(head(x->generation, kExcerpt)) +
              "</pre>\n";
    }
  }
  return page("hrmbench evaluation report", body);
}

}  // namespace hrm::reports
