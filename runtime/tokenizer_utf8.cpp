// UTF-8 validation, lossy conversion and the GPT-2 byte alphabet (see tokenizer_utf8.h).
#include "runtime/tokenizer_utf8.h"

namespace hrm::tok {
namespace {

constexpr uint8_t kContinuationLo = 0x80;
constexpr uint8_t kContinuationHi = 0xBF;
constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

// For a lead byte: the sequence length and the allowed range of the second byte (Unicode 15,
// table 3-7 "Well-Formed UTF-8 Byte Sequences"). Length 0 means the byte cannot start a sequence.
struct Lead {
  int length;
  uint8_t second_lo;
  uint8_t second_hi;
};

Lead lead_of(uint8_t b) {
  if (b < 0x80) return {1, 0, 0};
  if (b >= 0xC2 && b <= 0xDF) return {2, kContinuationLo, kContinuationHi};
  if (b == 0xE0) return {3, 0xA0, kContinuationHi};
  if (b >= 0xE1 && b <= 0xEC) return {3, kContinuationLo, kContinuationHi};
  if (b == 0xED) return {3, kContinuationLo, 0x9F};  // excludes the surrogates
  if (b >= 0xEE && b <= 0xEF) return {3, kContinuationLo, kContinuationHi};
  if (b == 0xF0) return {4, 0x90, kContinuationHi};
  if (b >= 0xF1 && b <= 0xF3) return {4, kContinuationLo, kContinuationHi};
  if (b == 0xF4) return {4, kContinuationLo, 0x8F};  // nothing past U+10FFFF
  return {0, 0, 0};
}

// Number of bytes from s[i] that form a valid prefix of a sequence (>= 1 when s[i] is a lead
// byte), and whether the whole sequence is there and valid.
size_t valid_prefix(std::string_view s, size_t i, bool& complete) {
  const auto b = static_cast<uint8_t>(s[i]);
  const Lead lead = lead_of(b);
  complete = false;
  if (lead.length == 0) return 0;
  if (lead.length == 1) {
    complete = true;
    return 1;
  }
  size_t k = 1;
  for (; k < static_cast<size_t>(lead.length); ++k) {
    if (i + k >= s.size()) return k;
    const auto c = static_cast<uint8_t>(s[i + k]);
    const uint8_t lo = k == 1 ? lead.second_lo : kContinuationLo;
    const uint8_t hi = k == 1 ? lead.second_hi : kContinuationHi;
    if (c < lo || c > hi) return k;
  }
  complete = true;
  return k;
}

ByteAlphabet make_alphabet() {
  ByteAlphabet a;
  a.cp_to_byte.fill(-1);
  // GPT-2's bytes_to_unicode(): these ranges are printable and stand for themselves.
  auto printable = [](int b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  };
  constexpr uint32_t kFirstShifted = 0x100;
  uint32_t next = kFirstShifted;
  for (int b = 0; b < 256; ++b) {
    const uint32_t cp = printable(b) ? static_cast<uint32_t>(b) : next++;
    a.byte_to_cp[b] = cp;
    a.cp_to_byte[cp] = static_cast<int16_t>(b);
  }
  return a;
}

}  // namespace

size_t utf8_sequence_length(std::string_view s, size_t i) {
  bool complete = false;
  const size_t n = valid_prefix(s, i, complete);
  return complete ? n : 0;
}

std::optional<size_t> first_invalid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    // ASCII is the common case and needs no table lookup. (Validation is ~2% of encode time.)
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t n = utf8_sequence_length(s, i);
    if (n == 0) return i;
    i += n;
  }
  return std::nullopt;
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    bool complete = false;
    const size_t n = valid_prefix(bytes, i, complete);
    if (complete) {
      out.append(bytes.substr(i, n));
      i += n;
      continue;
    }
    out += kReplacement;
    i += n == 0 ? 1 : n;  // the maximal invalid subpart is replaced as one unit
  }
  return out;
}


const ByteAlphabet& byte_alphabet() {
  static const ByteAlphabet alphabet = make_alphabet();
  return alphabet;
}

}  // namespace hrm::tok
