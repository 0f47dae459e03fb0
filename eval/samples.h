// The per-sample log RUN_DIR/samples/<suite>.jsonl (DESIGN §8): one JSON object per line, appended
// as generations finish, so an interrupted run keeps everything it finished. Internal to eval/.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace hrm::eval {

struct Sample {
  int64_t doc_id = 0;
  std::string prompt_hash;
  std::string prompt;
  std::string generation;
  int64_t generated_tokens = 0;
  std::string finish;  // stop | length | context
  // Filled by scoring:
  std::optional<std::string> extracted;
  std::string target;
  std::vector<std::pair<std::string, double>> metrics;
  std::string group;  // MMLU subject
};

std::string sample_to_json_line(const Sample& s);

// Reads a samples file. A last line without its newline (a write cut off by a kill) is dropped and
// the file truncated to the last complete line; any other malformed line is an error naming
// file:line. Later duplicates of a doc_id are an error too.
std::map<int64_t, Sample> read_samples(const std::filesystem::path& path, bool repair_tail);

// Appends lines and flushes each one.
class SampleWriter {
 public:
  explicit SampleWriter(const std::filesystem::path& path);
  void append(const Sample& s);

 private:
  std::filesystem::path path_;
  std::ofstream out_;
};

}  // namespace hrm::eval
