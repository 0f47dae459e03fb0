// UTF-8 and Python-compatible text helpers shared by the tokenizer, the tasks and the prompt format.
// They must behave exactly like their Python counterparts where named so, because the reference
// evaluation is Python (e.g. prompts are `str.strip()`-ed before tokenization).
// Not a Unicode library: normalisation is utf8proc's (tokenizer), case rules live in tasks/pytext.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace hrm {

inline constexpr char32_t kReplacementChar = 0xFFFD;

// Decodes the code point at `pos` and advances past it; a malformed or truncated sequence decodes
// as U+FFFD and advances one byte.
char32_t next_code_point(std::string_view s, std::size_t& pos);
// Appends the UTF-8 encoding of `cp` (assumed a valid scalar value).
void append_utf8(std::string& out, char32_t cp);

// Python's str.isspace() for one code point (CPython's _PyUnicode_IsWhitespace): ASCII whitespace,
// \x1c-\x1f, U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000.
bool py_isspace(char32_t cp);
// Python's str.strip() with no argument on UTF-8 text. Invalid bytes are not whitespace.
std::string_view py_strip(std::string_view s);

}  // namespace hrm
