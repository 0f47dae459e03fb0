// What a run's results depend on, hashed: RUN_DIR/run.json. Internal to eval/.
//
// A resumed run must be the same run: same model bytes, tokenizer, data files, protocol settings,
// generation settings, limit and shard. `describe_difference` names the first field that differs
// so the refusal message says exactly what changed.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "eval/json_util.h"

namespace hrm::eval {

// XXH3-64 of a file's bytes (streamed), 16 hex digits; throws hrm::Error naming unreadable files.
std::string hash_file(const std::filesystem::path& path);
// XXH3-64 over several files, in the given order, each preceded by its name (not its directory).
std::string hash_files(const std::vector<std::filesystem::path>& paths);
// The files of a Hugging Face model directory that determine its outputs: config.json and the
// weight files (model.safetensors, or the index and every shard it names), sorted.
std::vector<std::filesystem::path> model_files(const std::filesystem::path& model_dir);

// "" when equal, else e.g. "protocol.gsm8k.max_new_tokens: was 256, now 512". Keys in `ignore`
// (top-level) are not compared.
std::string describe_difference(const JsonValue& was, const JsonValue& now, const std::string& path = "",
                                const std::vector<std::string>& ignore = {});

}  // namespace hrm::eval
