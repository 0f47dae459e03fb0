// MATH answer extraction and equivalence (placeholder string normalisation; see scoring.h).
#include <string>

#include "tasks/pytext.h"
#include "tasks/scoring.h"

namespace hrm::tasks {

MathExtraction math_extract(std::string_view generation) {
  auto boxed = last_boxed_only_string(generation);
  if (boxed) return {*boxed, false};
  return {std::string(generation), true};
}

bool math_equivalent(std::string_view gold, std::string_view prediction) {
  return py::strip(gold) == py::strip(prediction);
}

}  // namespace hrm::tasks
