// Streaming JSONL reading with errors that name the file, line and field (internal to tasks/).
//
// Each line is parsed on its own with RapidJSON; a row is handed to a callback and dropped, so a
// file is never held in memory as one document. Field accessors throw hrm::Error with
// "<file>:<line>: field '<name>': expected <type>" so a broken export is easy to locate.
// Not for writing JSON (see json_out.h) and not a general JSON library.
//
// Example:
//   for_each_row(path, [](const Row& row) { std::string q = row.string("question"); });
#pragma once

#include <cstddef>
#include <functional>
#include <istream>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

namespace hrm::tasks {

// One parsed JSONL line plus where it came from, with typed field access.
class Row {
 public:
  Row(const rapidjson::Value& value, std::string_view source, std::size_t line)
      : value_(value), source_(source), line_(line) {}

  const rapidjson::Value& value() const { return value_; }
  std::size_t line() const { return line_; }
  bool has(const char* field) const;
  std::string string(const char* field) const;
  std::int64_t integer(const char* field) const;
  std::vector<std::string> strings(const char* field) const;
  // A nested object, wrapped so its fields report the same file and line.
  Row object(const char* field) const;
  // "<file>:<line>: field '<field>': <what>" for errors the caller detects itself.
  std::string where(std::string_view field) const;

 private:
  const rapidjson::Value& member(const char* field) const;
  const rapidjson::Value& value_;
  std::string_view source_;
  std::size_t line_;
};

// Calls `fn` for each non-empty line of `in`, numbered from 1; `source` names the input in
// errors. Stops after `max_rows` rows when given. Returns the number of rows read.
std::size_t for_each_row(std::istream& in, std::string_view source,
                         const std::function<void(const Row&)>& fn,
                         std::size_t max_rows = static_cast<std::size_t>(-1));
std::size_t for_each_row(const std::string& path, const std::function<void(const Row&)>& fn,
                         std::size_t max_rows = static_cast<std::size_t>(-1));

// Helpers for ad-hoc values (validated_answers lists etc.).
std::string json_type_name(const rapidjson::Value& v);

}  // namespace hrm::tasks
