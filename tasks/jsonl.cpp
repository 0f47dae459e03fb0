// Streaming JSONL reader for the benchmark files; see jsonl.h.
#include "tasks/jsonl.h"

#include <fstream>

#include <rapidjson/error/en.h>

#include "common/error.h"

namespace hrm::tasks {

std::string json_type_name(const rapidjson::Value& v) {
  if (v.IsNull()) return "null";
  if (v.IsBool()) return "bool";
  if (v.IsString()) return "string";
  if (v.IsNumber()) return "number";
  if (v.IsArray()) return "array";
  return "object";
}

std::string Row::where(std::string_view field) const {
  return cat(source_, ":", line_, ": field '", field, "'");
}

bool Row::has(const char* field) const { return value_.IsObject() && value_.HasMember(field); }

const rapidjson::Value& Row::member(const char* field) const {
  if (!value_.IsObject()) throw Error(cat(source_, ":", line_, ": expected a JSON object, got ", json_type_name(value_)));
  auto it = value_.FindMember(field);
  if (it == value_.MemberEnd()) throw Error(where(field) + ": missing");
  return it->value;
}

std::string Row::string(const char* field) const {
  const rapidjson::Value& v = member(field);
  if (!v.IsString()) throw Error(where(field) + ": expected a string, got " + json_type_name(v));
  return std::string(v.GetString(), v.GetStringLength());
}

std::int64_t Row::integer(const char* field) const {
  const rapidjson::Value& v = member(field);
  if (!v.IsInt64()) throw Error(where(field) + ": expected an integer, got " + json_type_name(v));
  return v.GetInt64();
}

std::vector<std::string> Row::strings(const char* field) const {
  const rapidjson::Value& v = member(field);
  if (!v.IsArray()) throw Error(where(field) + ": expected an array of strings, got " + json_type_name(v));
  std::vector<std::string> out;
  out.reserve(v.Size());
  for (const auto& e : v.GetArray()) {
    if (!e.IsString())
      throw Error(where(field) + ": expected an array of strings, found an element of type " + json_type_name(e));
    out.emplace_back(e.GetString(), e.GetStringLength());
  }
  return out;
}

Row Row::object(const char* field) const {
  const rapidjson::Value& v = member(field);
  if (!v.IsObject()) throw Error(where(field) + ": expected an object, got " + json_type_name(v));
  return Row(v, source_, line_);
}

std::size_t for_each_row(std::istream& in, std::string_view source,
                         const std::function<void(const Row&)>& fn, std::size_t max_rows) {
  std::string line;
  std::size_t line_no = 0;
  std::size_t rows = 0;
  while (rows < max_rows && std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    rapidjson::Document doc;
    // Invalid UTF-8 is rejected here rather than passed on to prompts and scores; the iterative
    // parser keeps deeply nested input from exhausting the C++ stack.
    doc.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag>(line.data(), line.size());
    if (doc.HasParseError())
      throw Error(cat(source, ":", line_no, ": invalid JSON at column ", doc.GetErrorOffset() + 1, ": ",
                      rapidjson::GetParseError_En(doc.GetParseError())));
    if (!doc.IsObject()) throw Error(cat(source, ":", line_no, ": expected a JSON object, got ", json_type_name(doc)));
    fn(Row(doc, source, line_no));
    ++rows;
  }
  return rows;
}

std::size_t for_each_row(const std::string& path, const std::function<void(const Row&)>& fn,
                         std::size_t max_rows) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(cat(path, ": cannot open for reading"));
  return for_each_row(in, path, fn, max_rows);
}

}  // namespace hrm::tasks
