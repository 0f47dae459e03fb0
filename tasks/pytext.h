// Python string semantics the reference scorers depend on (internal to tasks/).
//
// The reference evaluation is Python: `str.strip()`, `str.split()`, `str.lower()`, `float(s)`,
// `str(float)` and the `\b` of `re` decide prompts and scores, so we reproduce them on UTF-8
// bytes. Unicode coverage: whitespace is Python's full `str.isspace()` set; lower-casing covers
// ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic (what the benchmark texts contain);
// `float()` accepts Python's ASCII grammar (sign, digits with single underscores, `.`, exponent,
// inf/infinity/nan), not the rarely seen non-ASCII digits. Not a general Unicode library.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/text.h"

namespace hrm::tasks::py {

// UTF-8 decoding/encoding, str.isspace() and str.strip() are shared with the runtime (common/text.h).
using ::hrm::append_utf8;
using ::hrm::next_code_point;
inline bool is_space(char32_t cp) { return ::hrm::py_isspace(cp); }        // str.isspace()
inline std::string_view strip(std::string_view s) { return ::hrm::py_strip(s); }  // str.strip()

bool is_word_char(char32_t cp);   // re's \w with re.UNICODE: alphanumeric or '_'
std::vector<std::string_view> split(std::string_view s);  // str.split() (runs of whitespace)
std::string lower(std::string_view s);                    // str.lower()

// float(s): nullopt where Python raises ValueError.
std::optional<double> parse_float(std::string_view s);
// str(x) / repr(x) of a Python float: shortest round-trip digits, "1e+16", "1.5e-05", "3.0".
std::string float_repr(double x);

}  // namespace hrm::tasks::py
