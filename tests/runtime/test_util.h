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

// Runs the built binary ($HRM_BINARY) with `args`; stdout captured, stderr too when asked.
inline CmdResult hrmbench(const std::string& args, bool with_stderr = false) {
  const char* bin = std::getenv("HRM_BINARY");
  EXPECT_NE(bin, nullptr) << "HRM_BINARY not set";
  const std::string cmd =
      std::string(bin ? bin : "hrmbench") + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null");
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

inline rapidjson::Document read_json(const std::filesystem::path& p) {
  rapidjson::Document doc;
  const std::string text = read_text(p);
  doc.Parse(text.c_str(), text.size());
  EXPECT_FALSE(doc.HasParseError()) << "bad JSON in " << p;
  return doc;
}

}  // namespace hrm::test
