// Samples JSONL reading and appending (see samples.h).
#include "eval/samples.h"

#include <rapidjson/document.h>

#include <sstream>

#include "common/error.h"
#include "eval/json_util.h"

namespace hrm::eval {

std::string sample_to_json_line(const Sample& s) {
  Json d(rapidjson::kObjectType);
  auto& a = d.GetAllocator();
  d.AddMember("doc_id", s.doc_id, a);
  d.AddMember("prompt_hash", str(s.prompt_hash, a), a);
  d.AddMember("prompt", str(s.prompt, a), a);
  d.AddMember("generation", str(s.generation, a), a);
  d.AddMember("generated_tokens", s.generated_tokens, a);
  d.AddMember("finish", str(s.finish, a), a);
  if (s.extracted) d.AddMember("extracted", str(*s.extracted, a), a);
  else d.AddMember("extracted", JsonValue(rapidjson::kNullType), a);
  d.AddMember("target", str(s.target, a), a);
  for (const auto& [name, value] : s.metrics) d.AddMember(str(name, a), JsonValue(value), a);
  if (!s.group.empty()) d.AddMember("subject", str(s.group, a), a);
  return to_json(d, false) + "\n";
}

std::map<int64_t, Sample> read_samples(const std::filesystem::path& path, bool repair_tail) {
  std::map<int64_t, Sample> out;
  std::ifstream in(path, std::ios::binary);
  if (!in) return out;
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  in.close();
  size_t pos = 0, line_no = 0, good_end = 0;
  while (pos < text.size()) {
    ++line_no;
    const size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) {
      // An interrupted append: the line never got its newline. Drop it (it is regenerated).
      if (repair_tail) std::filesystem::resize_file(path, good_end);
      break;
    }
    const std::string_view line(text.data() + pos, nl - pos);
    pos = nl + 1;
    if (line.empty()) {
      good_end = pos;
      continue;
    }
    Json d;
    d.Parse(line.data(), line.size());
    auto where = [&](std::string_view what) { return cat(path.string(), ":", line_no, ": ", what); };
    if (d.HasParseError() || !d.IsObject()) throw Error(where("not a JSON object"));
    auto need_str = [&](const char* k) -> std::string {
      if (!d.HasMember(k) || !d[k].IsString()) throw Error(where(cat("field '", k, "': expected a string")));
      return d[k].GetString();
    };
    if (!d.HasMember("doc_id") || !d["doc_id"].IsInt64())
      throw Error(where("field 'doc_id': expected an integer"));
    Sample s;
    s.doc_id = d["doc_id"].GetInt64();
    s.prompt_hash = need_str("prompt_hash");
    s.prompt = need_str("prompt");
    s.generation = need_str("generation");
    s.finish = need_str("finish");
    if (d.HasMember("generated_tokens") && d["generated_tokens"].IsInt64())
      s.generated_tokens = d["generated_tokens"].GetInt64();
    if (d.HasMember("target") && d["target"].IsString()) s.target = d["target"].GetString();
    if (d.HasMember("extracted") && d["extracted"].IsString()) s.extracted = d["extracted"].GetString();
    if (d.HasMember("subject") && d["subject"].IsString()) s.group = d["subject"].GetString();
    for (const char* m : {"acc", "invalid", "em", "f1"})
      if (d.HasMember(m) && d[m].IsNumber()) s.metrics.emplace_back(m, d[m].GetDouble());
    if (!out.emplace(s.doc_id, std::move(s)).second)
      throw Error(where(cat("doc_id ", d["doc_id"].GetInt64(), " appears twice")));
    good_end = pos;
  }
  return out;
}

SampleWriter::SampleWriter(const std::filesystem::path& path)
    : path_(path), out_(path, std::ios::binary | std::ios::app) {
  if (!out_) throw Error(cat(path.string(), ": cannot open for appending"));
}

void SampleWriter::append(const Sample& s) {
  out_ << sample_to_json_line(s);
  out_.flush();
  if (!out_) throw Error(cat(path_.string(), ": write failed (disk full?)"));
}

}  // namespace hrm::eval
