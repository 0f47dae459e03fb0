// Where the tasks tests find the shared benchmark data, their fixtures and the built CLI.
//
// tests/CMakeLists.txt sets HRM_SHARED, HRM_FIXTURES and HRM_BINARY; when only HRM_SOURCE_DIR
// reaches the test (a list-valued ENVIRONMENT property loses its later entries), fall back to the
// same paths derived from it. Not for anything but test path lookup.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace hrm::tasks::testing {

inline std::filesystem::path env_path(const char* name, const std::filesystem::path& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::filesystem::path(v) : fallback;
}

inline std::filesystem::path source_dir() { return env_path("HRM_SOURCE_DIR", std::filesystem::current_path()); }
inline std::filesystem::path data_dir() { return env_path("HRM_SHARED", source_dir() / "../shared") / "data/benchmarks"; }
inline std::filesystem::path fixtures_dir() { return env_path("HRM_FIXTURES", source_dir() / "tests/fixtures"); }
// ctest runs the tests in <build>/tests; the CLI is <build>/hrmbench.
inline std::filesystem::path binary() { return env_path("HRM_BINARY", std::filesystem::current_path() / "../hrmbench"); }

}  // namespace hrm::tasks::testing
