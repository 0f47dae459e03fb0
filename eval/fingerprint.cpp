// Hashing and fingerprint comparison (see fingerprint.h).
#include "eval/fingerprint.h"

#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>

#include "common/error.h"

namespace hrm::eval {
namespace {

constexpr size_t kChunk = 1 << 20;

std::string hex64(XXH64_hash_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

void update_with_file(XXH3_state_t* st, const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(cat(path.string(), ": cannot read (needed for the run fingerprint)"));
  std::vector<char> buf(kChunk);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (in.gcount() > 0) XXH3_64bits_update(st, buf.data(), static_cast<size_t>(in.gcount()));
  }
}

std::string value_text(const JsonValue& v) {
  std::string s = to_json(v, false);
  return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

}  // namespace

std::string hash_file(const std::filesystem::path& path) { return hash_files({path}); }

std::string hash_files(const std::vector<std::filesystem::path>& paths) {
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  try {
    for (const auto& p : paths) {
      const std::string name = p.filename().string();
      XXH3_64bits_update(st, name.data(), name.size() + 1);
      update_with_file(st, p);
    }
  } catch (...) {
    XXH3_freeState(st);
    throw;
  }
  const auto h = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  return hex64(h);
}

std::vector<std::filesystem::path> model_files(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files = {dir / "config.json"};
  if (std::filesystem::exists(dir / "model.safetensors")) {
    files.push_back(dir / "model.safetensors");
    return files;
  }
  const auto index = dir / "model.safetensors.index.json";
  if (!std::filesystem::exists(index))
    throw Error(cat(dir.string(), ": no model.safetensors or model.safetensors.index.json"));
  files.push_back(index);
  const Json doc = read_json_file(index);
  std::set<std::string> shards;
  if (doc.HasMember("weight_map") && doc["weight_map"].IsObject())
    for (const auto& m : doc["weight_map"].GetObject())
      if (m.value.IsString()) shards.insert(m.value.GetString());
  for (const auto& s : shards) files.push_back(dir / s);
  return files;
}

std::string describe_difference(const JsonValue& was, const JsonValue& now, const std::string& path,
                                const std::vector<std::string>& ignore) {
  if (was.IsObject() && now.IsObject()) {
    std::set<std::string> keys;
    for (const auto& m : was.GetObject()) keys.insert(m.name.GetString());
    for (const auto& m : now.GetObject()) keys.insert(m.name.GetString());
    for (const std::string& k : keys) {
      if (path.empty() && std::find(ignore.begin(), ignore.end(), k) != ignore.end()) continue;
      const std::string sub = path.empty() ? k : path + "." + k;
      const bool in_was = was.HasMember(k.c_str()), in_now = now.HasMember(k.c_str());
      if (!in_was) return cat(sub, ": absent before, now ", value_text(now[k.c_str()]));
      if (!in_now) return cat(sub, ": was ", value_text(was[k.c_str()]), ", now absent");
      std::string d = describe_difference(was[k.c_str()], now[k.c_str()], sub);
      if (!d.empty()) return d;
    }
    return "";
  }
  if (was == now) return "";
  return cat(path, ": was ", value_text(was), ", now ", value_text(now));
}

}  // namespace hrm::eval
