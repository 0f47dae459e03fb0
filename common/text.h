// Small text helpers that must behave exactly like their Python counterparts, because the
// reference evaluation is Python (e.g. prompts are `str.strip()`-ed before tokenization).
#pragma once

#include <string>
#include <string_view>

namespace hrm {

// Python's str.strip() with no argument on UTF-8 text: removes leading and trailing code points for
// which str.isspace() is true (ASCII whitespace, \x1c-\x1f, U+0085, U+00A0, U+1680, U+2000-U+200A,
// U+2028, U+2029, U+202F, U+205F, U+3000). Invalid UTF-8 is left untouched.
std::string_view py_strip(std::string_view s);

}  // namespace hrm
