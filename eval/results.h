// RUN_DIR/results.json: re-scoring every generation and writing the lm-evaluation-harness-shaped
// results (DESIGN §8). Internal to eval/ (run and merge share it).
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "eval/json_util.h"
#include "tasks/task.h"

namespace hrm::eval {

struct SuiteTiming {
  double seconds = 0;
  int64_t prompt_tokens = 0, generated_tokens = 0;
};
using Timings = std::map<std::string, SuiteTiming>;

// RUN_DIR/timings.json, accumulated over resumptions.
Timings read_timings(const std::filesystem::path& run_dir);
void write_timings(const std::filesystem::path& run_dir, const Timings& t);

// Re-scores RUN_DIR/samples/<suite>.jsonl (which must cover exactly `items`), rewrites it sorted by
// doc_id with the scores, and writes RUN_DIR/results.json.
void finalize_run(const std::filesystem::path& run_dir, const JsonValue& fingerprint,
                  const std::map<std::string, const tasks::Suite*>& suites,
                  const std::map<std::string, std::vector<int64_t>>& items, const Timings& timings);

}  // namespace hrm::eval
