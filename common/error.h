// The one error type of hrmbench, and the checks that raise it.
//
// Throw hrm::Error where outside input enters (loaders, parsers, the CLI) with a message that names
// the file, field or tensor and what was expected. Inside hot loops, use HRM_CHECK for invariants.
// Not for: recoverable "not found" results (return std::optional for those).
//
// Example:
//   if (shape.size() != 2)
//     throw hrm::Error(hrm::cat(path, ": tensor '", name, "' has rank ", shape.size(), ", expected 2"));
//   HRM_CHECK(slot < num_slots, "KV slot out of range");
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace hrm {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Concatenates anything streamable into one string (g++ 12 has no <format>).
template <class... Args>
std::string cat(Args&&... args) {
  std::ostringstream out;
  (out << ... << std::forward<Args>(args));
  return out.str();
}

}  // namespace hrm

#define HRM_CHECK(cond, ...)                                                                       \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      throw ::hrm::Error(::hrm::cat(__FILE__, ":", __LINE__, ": check failed: " #cond ": ",        \
                                    __VA_ARGS__));                                                 \
  } while (0)
