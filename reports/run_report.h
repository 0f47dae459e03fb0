// The evaluation report: a run's headline numbers against the published HRM-Text scores, per-subject
// MMLU accuracy, invalid-answer rates, generation-length histograms and example failures, as
// Markdown (for CI logs) and as one self-contained HTML file. Optionally side by side with a second
// run. The data structures are filled from RUN_DIR files by eval/report_data.h; this file only
// renders. Not for: statistics (compare) or scoring.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace hrm::reports {

struct SampleView {
  long doc_id = 0;
  std::string prompt, generation, target;
  std::optional<std::string> extracted;
  double score = 0;  // the suite's headline per-item metric (acc, or f1 for DROP)
  long generated_tokens = 0;
  std::string finish;
};

struct MetricView {
  std::string name;  // "acc", "acc_micro", "em", "f1", "invalid", ...
  double value = 0, stderr_ = 0;
};

struct GroupView {
  std::string name;
  long n = 0;
  double acc = 0;
};

struct SuiteView {
  std::string name;
  long n = 0;
  std::vector<MetricView> metrics;
  std::vector<GroupView> groups;
  std::vector<SampleView> samples;
  long over_context = 0;
  double seconds = 0;
};

struct RunView {
  std::string dir, model, model_hash, git_hash, backend, dtype;
  std::string limit;  // "" when none
  double date = 0;
  std::vector<SuiteView> suites;
};

// The suite's headline metric name: "acc" (MMLU: the macro "acc"), DROP "f1".
std::string headline_metric(const std::string& suite);
// Published HRM-Text scores in percent (DESIGN §4): {1B, 0.6B}; nullopt for unknown suites.
std::optional<std::pair<double, double>> published_scores(const std::string& suite);

std::string render_markdown(const RunView& run, const RunView* other = nullptr);
std::string render_html(const RunView& run, const RunView* other = nullptr);

}  // namespace hrm::reports
