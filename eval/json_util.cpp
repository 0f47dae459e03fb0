// RapidJSON helpers (see json_util.h).
#include "eval/json_util.h"

#include <rapidjson/error/en.h>

#include <fstream>
#include <sstream>

#include "common/error.h"

namespace hrm::eval {

Json read_json_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(cat(path.string(), ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  Json doc;
  doc.Parse(text.c_str(), text.size());
  if (doc.HasParseError())
    throw Error(cat(path.string(), ": invalid JSON (", rapidjson::GetParseError_En(doc.GetParseError()),
                    " at offset ", doc.GetErrorOffset(), ")"));
  return doc;
}

void write_file_atomic(const std::filesystem::path& path, std::string_view content) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(cat(tmp.string(), ": cannot write"));
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.flush();
    if (!out) throw Error(cat(tmp.string(), ": write failed (disk full?)"));
  }
  std::filesystem::rename(tmp, path);
}

std::string to_json(const JsonValue& v, bool pretty) {
  rapidjson::StringBuffer buf;
  if (pretty) {
    rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buf);
    w.SetIndent(' ', 2);
    v.Accept(w);
  } else {
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    v.Accept(w);
  }
  return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace hrm::eval
