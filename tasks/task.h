// The benchmark suites of the HRM-Text evaluation protocol: MMLU, GSM8K, MATH, DROP, ARC-Challenge.
//
// This header is the whole interface of tasks/. It loads a suite's JSONL files from a data
// directory, builds each item's generation request exactly as the reference evaluation
// (sapientinc/HRM-Text evaluation/benchmarks.py) builds it, scores a generation the way the
// reference scores it, and aggregates per-sample scores into metrics with standard errors.
// It is NOT the harness: no model, tokenizer or prompt format here (the text of a Request goes
// between `<|im_start|>` + condition tokens and `<|im_end|>`; the runtime adds those).
//
// Example:
//   auto suite = hrm::tasks::load_suite("gsm8k", "../shared/data/benchmarks");
//   hrm::tasks::Request req = suite->request(0);          // prompt, {"synth","cot"}, budgets
//   hrm::tasks::SampleScore s = suite->score(0, "... so the answer is \\boxed{18}.");
//   hrm::tasks::Aggregate agg = suite->aggregate({&s, 1}, /*n_missing=*/0);
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hrm::tasks {

// {"mmlu", "gsm8k", "math", "drop", "arc"}: the canonical suite names.
std::vector<std::string> suite_names();

// Maps an accepted spelling ("arc_challenge", "ARC", "GSM8k", ...) to its canonical name;
// throws hrm::Error naming the accepted names otherwise.
std::string canonical_suite_name(std::string_view name);

// One text per row of the suite's evaluation file, in file order (index == doc_id): the question
// only (DESIGN §5): GSM8K question, MATH problem, DROP passage + "\n" + question, MMLU/ARC
// question + "\n" + each choice on its own line; no few-shot exemplars, no prompt format.
std::vector<std::string> question_texts(std::string_view suite, const std::filesystem::path& data_dir);

// What the harness must generate for one item.
struct Request {
  std::string prompt;                   // after the reference's .strip(); before the prompt format
  std::vector<std::string> conditions;  // e.g. {"synth", "cot"}; mapped to tokens by the runtime
  // Reference semantics (simple_inference_engine.py): prompt + generation never exceed
  // max_context tokens; a prompt of max_context tokens or more yields an empty generation.
  int max_new_tokens = 0;
  int max_context = 0;
};

// The score of one generation. `metrics` holds the per-sample values in a fixed order per suite:
// acc, invalid (GSM8K, MATH, MMLU, ARC) or em, f1 (DROP).
struct SampleScore {
  std::optional<std::string> extracted;  // nullopt when the generation has no valid answer
  std::string target;                    // the gold answer as the scorer sees it
  std::vector<std::pair<std::string, double>> metrics;
  std::string group;                     // MMLU subject (macro averaging); empty elsewhere
};

struct Metric {
  std::string name;   // "acc", "acc_micro", "invalid", "em", "f1", ...
  double value = 0;   // a fraction in [0, 1]
  double stderr_ = 0; // standard error of `value` (docs/SCORING.md says how)
};

struct GroupMetrics {  // MMLU per-subject breakdown
  std::string name;
  std::size_t n = 0;
  double acc = 0;
  double invalid = 0;
};

struct Aggregate {
  std::string suite;
  std::size_t n_scored = 0;
  std::size_t n_missing = 0;
  std::vector<Metric> metrics;
  std::vector<GroupMetrics> groups;
};

// Static facts about a suite (reference: evaluation/config/hrm_benchmarking.yaml).
struct SuiteInfo {
  std::string name;
  std::vector<std::string> conditions;
  int shots = 0;              // few-shot exemplars per prompt (MMLU: 5, 3 for one subject)
  int max_new_tokens = 0;
  int max_context = 0;
  std::size_t official_rows = 0;
  std::string eval_file;      // relative to the data directory
};

struct LoadOptions {
  std::optional<std::size_t> limit;  // keep only the first N evaluation rows
  bool warn_on_row_count = true;     // a differing row count prints a warning on stderr
};

// A loaded suite. Immutable after load_suite(): every method is const and safe to call from
// several threads at once (the harness scores in parallel).
class Suite {
 public:
  virtual ~Suite() = default;
  virtual const SuiteInfo& info() const = 0;
  virtual std::size_t size() const = 0;
  virtual Request request(std::size_t doc_id) const = 0;
  virtual std::string question_text(std::size_t doc_id) const = 0;
  // The gold answer, as printed by `tasks show` and written as `target`.
  virtual std::string target(std::size_t doc_id) const = 0;
  // A generation the scorer must count as fully correct (the gold answer in the form a model
  // writes it); used by the self-score check.
  virtual std::string gold_generation(std::size_t doc_id) const = 0;
  virtual SampleScore score(std::size_t doc_id, std::string_view generation) const = 0;
  // Aggregates scores of distinct items; n_missing items had no generation and are not scored.
  virtual Aggregate aggregate(std::span<const SampleScore> scores, std::size_t n_missing) const = 0;
};

// Loads a suite from `data_dir` (the layout of shared/data/benchmarks/MANIFEST.md). Throws
// hrm::Error naming the file, line and field on missing or malformed data.
std::unique_ptr<Suite> load_suite(std::string_view name, const std::filesystem::path& data_dir,
                                  const LoadOptions& options = {});

// One line of a samples file (DESIGN §8): doc_id, prompt_hash, prompt, generation, extracted
// (null when invalid), target and the per-sample metrics as numbers. No trailing newline.
std::string sample_json(const Suite& suite, std::size_t doc_id, std::string_view generation, const SampleScore& score);
// The aggregate as one JSON object: suite, n_scored, n_missing, metrics {name, name_stderr}, groups.
std::string aggregate_json(const Aggregate& aggregate);

// A doc_id list file: one non-negative integer per line; blank lines and lines starting with '#'
// are skipped (the clean-subset files of `contam scan` have this format). Throws hrm::Error naming
// file:line on anything else.
std::set<std::int64_t> read_doc_id_file(const std::filesystem::path& path);

// Identity of a prompt text for logs and caches: XXH3-64 of the UTF-8 bytes, 16 hex digits.
std::string prompt_hash(std::string_view prompt);

}  // namespace hrm::tasks
