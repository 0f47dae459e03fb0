// The evaluation harness: runs benchmark suites through the runtime, resumably, and compares runs.
//
// `run` turns each suite's items into generation requests (tasks/), formats and tokenizes them
// (runtime/prompt.h), streams them through the engine, and appends every finished generation to
// RUN_DIR/samples/<suite>.jsonl at once, so a killed run loses nothing: restarted with the same
// command it skips what is done. RUN_DIR/run.json fingerprints everything a result depends on
// (model and tokenizer hashes, data file hashes, protocol, generation settings, shard); a restart
// with anything changed is refused with the difference named. At the end every generation is
// re-scored and RUN_DIR/results.json (lm-evaluation-harness shape, DESIGN §8) is written.
// Not for: scoring rules (tasks/) or model math (runtime/).
//
// Example:
//   hrm::eval::RunOptions o{.model_dir = "ckpt", .data_dir = "../shared/data/benchmarks",
//                           .out_dir = "runs/ckpt", .suites = {"gsm8k"}, .limit = 50};
//   hrm::eval::run(o);
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "runtime/cuda_backend.h"

namespace hrm::eval {

inline constexpr int kSchemaVersion = 1;

struct RunOptions {
  std::filesystem::path model_dir;
  std::filesystem::path data_dir;
  std::filesystem::path out_dir;
  std::filesystem::path tokenizer;  // empty: model_dir/tokenizer.json
  std::vector<std::string> suites;  // empty: all five
  std::optional<std::size_t> limit; // first N items of each suite
  int shard_index = 0, shard_count = 1;  // items with doc_id % count == index
  // Only these doc_ids per suite (e.g. a clean subset from `contam scan`); empty: all.
  std::vector<std::pair<std::string, std::filesystem::path>> doc_id_filters;
  std::string backend = "cpu";
  CudaOptions cuda;               // --backend cuda only
  int64_t kv_budget_bytes = 0;    // 0: the backend's default
  int64_t max_step_tokens = 0;    // 0: the backend's default
  int64_t max_batch = 16;
  // > 0: cap every suite's generation budget (smoke tests, demos). Recorded in the protocol, so
  // such a run never compares with a protocol-exact one.
  int64_t max_new_tokens = 0;
  bool quiet = false;  // no progress on stderr
};

// Runs (or resumes) an evaluation; throws hrm::Error with a clear message on bad input.
void run(const RunOptions& options);

// Merges the RUN_DIRs of `--shard i/N` runs into `out_dir`; refuses shards of different runs,
// missing or duplicate shards. The merged results equal those of a single run.
void merge(const std::vector<std::filesystem::path>& shard_dirs, const std::filesystem::path& out_dir);

struct CompareOptions {
  double fail_on_regression_pct = -1;  // < 0: never fail
  int bootstrap_samples = 2000;
  uint64_t seed = 0;
};

// Paired comparison of run B against run A on their common items. Prints a Markdown table to
// `markdown` and returns the process exit code (1 when a metric regressed significantly by more
// than the threshold). Throws hrm::Error when the runs used different protocols or data.
int compare(const std::filesystem::path& a, const std::filesystem::path& b, const CompareOptions& options,
            std::string& markdown);

}  // namespace hrm::eval
