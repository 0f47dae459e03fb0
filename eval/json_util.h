// Small RapidJSON helpers for the harness's own files (run.json, results.json, samples).
// Internal to eval/.
#pragma once

#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <filesystem>
#include <string>
#include <string_view>

namespace hrm::eval {

using Json = rapidjson::Document;
using JsonValue = rapidjson::Value;

// Parses a whole file; throws hrm::Error "<path>: <what> at offset N" on failure.
Json read_json_file(const std::filesystem::path& path);
// Writes via a temporary file and rename, so readers never see a half-written file.
void write_file_atomic(const std::filesystem::path& path, std::string_view content);
std::string to_json(const JsonValue& v, bool pretty);

inline JsonValue str(std::string_view s, rapidjson::Document::AllocatorType& a) {
  return JsonValue(s.data(), static_cast<rapidjson::SizeType>(s.size()), a);
}

}  // namespace hrm::eval
