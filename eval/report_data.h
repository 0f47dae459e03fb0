// Reads a RUN_DIR (results.json, samples/*.jsonl) into the report's view structures.
#pragma once

#include <filesystem>

#include "reports/run_report.h"

namespace hrm::eval {

// Throws hrm::Error naming the file when RUN_DIR is not a finished run.
reports::RunView load_run_view(const std::filesystem::path& run_dir);

}  // namespace hrm::eval
