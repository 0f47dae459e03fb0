// libFuzzer target for the benchmark JSONL row parser (tasks/jsonl.h) and the schema readers of
// the suites: arbitrary bytes are read as a JSONL file in each suite's layout and loaded. Every
// failure must be an hrm::Error; crashes, hangs and other exceptions are bugs. Also feeds the
// bytes to the scorers, which take model output (untrusted) as input.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

#include "common/error.h"
#include "tasks/jsonl.h"
#include "tasks/scoring.h"
#include "tasks/task.h"

namespace {

namespace fs = std::filesystem;

const fs::path& scratch() {
  static const fs::path dir = fs::temp_directory_path() / ("fuzz_jsonl_rows_" + std::to_string(getpid()));
  return dir;
}

void write(const std::string& rel, std::string_view text) {
  fs::create_directories((scratch() / rel).parent_path());
  std::ofstream(scratch() / rel, std::ios::binary | std::ios::trunc) << text;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::istringstream in{std::string(text)};
  try {
    hrm::tasks::for_each_row(in, "fuzz.jsonl", [](const hrm::tasks::Row& r) {
      if (r.has("question")) (void)r.string("question");
      if (r.has("doc_id")) (void)r.integer("doc_id");
      if (r.has("choices")) (void)r.object("choices").strings("text");
    });
  } catch (const hrm::Error&) {
  }
  // The same bytes as every suite's evaluation file (suite-specific schemas and few-shot files).
  const char* layouts[][2] = {{"gsm8k", "gsm8k/test.jsonl"}, {"math", "math/test.jsonl"},
                              {"drop", "drop/validation.jsonl"}, {"mmlu", "mmlu/test.jsonl"},
                              {"arc", "arc_challenge/test.jsonl"}};
  // One layout per input (chosen by its length) keeps the file I/O, and so the run, fast.
  const auto& l = layouts[size % (sizeof layouts / sizeof layouts[0])];
  if (std::string_view(l[0]) == "mmlu") write("mmlu/dev.jsonl", text);
  if (std::string_view(l[0]) == "arc") write("arc_challenge/validation.jsonl", text);
  {
    write(l[1], text);
    try {
      hrm::tasks::LoadOptions quiet;
      quiet.warn_on_row_count = false;
      auto suite = hrm::tasks::load_suite(l[0], scratch(), quiet);
      for (std::size_t i = 0; i < suite->size() && i < 4; ++i) {
        (void)suite->request(i);
        (void)suite->score(i, text);
      }
    } catch (const hrm::Error&) {
    }
  }
  // Scorers on raw model output.
  (void)hrm::tasks::gsm8k_extract(text);
  (void)hrm::tasks::drop_score(text, {{"3 points"}, {"Tom", "Ann"}});
  auto ex = hrm::tasks::math_extract(text);
  (void)hrm::tasks::math_equivalent("\\frac{1}{2}", ex.answer);
  (void)hrm::tasks::math_correct("\\frac{1}{2}", ex);  // free-text extraction when there is no box
  (void)hrm::tasks::math_equivalent(text, text);
  return 0;
}
