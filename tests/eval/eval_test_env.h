// Where the eval tests find their inputs: environment variables set by tests/CMakeLists.txt, with
// fallbacks for running a test binary by hand from the repository root.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

namespace hrm::eval::test {

inline std::string env(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}
inline std::filesystem::path tiny_text_model() {
  return std::filesystem::path(env("HRM_FIXTURES", "tests/fixtures")) / "models" / "tiny_text";
}
inline std::filesystem::path benchmark_data() {
  return std::filesystem::path(env("HRM_SHARED", "../shared")) / "data" / "benchmarks";
}
inline std::string hrmbench_binary() { return env("HRM_BINARY", "build/hrmbench"); }
// A fresh, empty-to-be directory under the test temp dir, unique to this process.
inline std::filesystem::path fresh_dir(const std::string& name) {
  const auto d = std::filesystem::path(::testing::TempDir()) / ("hrm_eval_" + name + "_" + std::to_string(getpid()));
  std::filesystem::remove_all(d);
  return d;
}

}  // namespace hrm::eval::test
