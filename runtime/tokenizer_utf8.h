// UTF-8 helpers of the tokenizer: validation, the lossy conversion `tokenizers` applies after
// decoding, and the GPT-2 byte<->unicode alphabet of the ByteLevel pre-tokenizer and decoder.
//
// Not for: general text processing (NFC lives in tokenizer.cpp, on top of utf8proc).
//
// Example:
//   if (auto bad = hrm::tok::first_invalid_utf8(text)) ... // *bad is the byte offset
//   std::string shown = hrm::tok::utf8_lossy(bytes);       // invalid parts become U+FFFD
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/text.h"

namespace hrm::tok {

// Offset of the first byte that does not start a valid UTF-8 sequence, or nullopt if all is valid.
std::optional<size_t> first_invalid_utf8(std::string_view s);

// Length of the valid UTF-8 sequence starting at s[i], or 0 if none starts there.
size_t utf8_sequence_length(std::string_view s, size_t i);

// Rust's String::from_utf8_lossy: each maximal invalid subpart becomes one U+FFFD (the Unicode
// "substitution of maximal subparts" practice), which is what `tokenizers` returns from decode().
std::string utf8_lossy(std::string_view bytes);

// Appends the UTF-8 encoding of a code point (common/text.h).
using ::hrm::append_utf8;

// The GPT-2 byte-level alphabet: every byte is shown as one printable code point. Printable
// Latin-1 bytes map to themselves; the other 68 bytes map, in byte order, to U+0100 onwards.
struct ByteAlphabet {
  std::array<uint32_t, 256> byte_to_cp{};
  // Indexed by code point; -1 where the code point is not part of the alphabet.
  std::array<int16_t, 512> cp_to_byte{};
};
const ByteAlphabet& byte_alphabet();

}  // namespace hrm::tok
