// Helpers shared by the runtime tests: locating fixtures and reading small JSON files.
#pragma once

#include <rapidjson/document.h>

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

inline rapidjson::Document read_json(const std::filesystem::path& p) {
  rapidjson::Document doc;
  const std::string text = read_text(p);
  doc.Parse(text.c_str(), text.size());
  EXPECT_FALSE(doc.HasParseError()) << "bad JSON in " << p;
  return doc;
}

}  // namespace hrm::test
