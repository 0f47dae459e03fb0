// Helpers shared by the runtime tests: locating fixtures and reading small JSON files.
#pragma once

#include <rapidjson/document.h>

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace hrm::test {

inline std::filesystem::path fixtures() {
  const char* dir = std::getenv("HRM_FIXTURES");
  return dir ? std::filesystem::path(dir) : std::filesystem::path("tests/fixtures");
}

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << p;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct CmdResult {
  int status;
  std::string out;
};

// Runs a shell command; returns its exit status and its stdout.
inline CmdResult shell(const std::string& cmd) {
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// Runs the built binary ($HRM_BINARY) with `args`; stdout captured, stderr too when asked.
inline CmdResult hrmbench(const std::string& args, bool with_stderr = false) {
  const char* bin = std::getenv("HRM_BINARY");
  EXPECT_NE(bin, nullptr) << "HRM_BINARY not set";
  return shell(std::string(bin ? bin : "hrmbench") + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null"));
}

// The lines of a text file.
inline std::vector<std::string> lines(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

inline rapidjson::Document read_json(const std::filesystem::path& p) {
  rapidjson::Document doc;
  const std::string text = read_text(p);
  doc.Parse(text.c_str(), text.size());
  EXPECT_FALSE(doc.HasParseError()) << "bad JSON in " << p;
  return doc;
}

// One case of a model fixture's expected.json (scripts/make_model_fixtures.py): a prompt (the
// bidirectional prefix), response tokens after it, transformers' greedy continuation of the prompt,
// and transformers' logits at some positions of prompt + response.
struct ModelCase {
  std::vector<int32_t> prompt, response, greedy;
  std::vector<int64_t> positions;
  std::vector<std::vector<float>> logits;
};

inline std::vector<ModelCase> load_model_cases(const std::filesystem::path& dir) {
  auto doc = read_json(dir / "expected.json");
  std::vector<ModelCase> cases;
  for (const auto& c : doc["cases"].GetArray()) {
    ModelCase k;
    for (const auto& v : c["prompt"].GetArray()) k.prompt.push_back(v.GetInt());
    for (const auto& v : c["response"].GetArray()) k.response.push_back(v.GetInt());
    for (const auto& v : c["greedy"].GetArray()) k.greedy.push_back(v.GetInt());
    for (const auto& v : c["positions"].GetArray()) k.positions.push_back(v.GetInt64());
    for (const auto& row : c["logits"].GetArray()) {
      k.logits.emplace_back();
      for (const auto& v : row.GetArray()) k.logits.back().push_back(v.GetFloat());
    }
    cases.push_back(std::move(k));
  }
  return cases;
}

}  // namespace hrm::test
