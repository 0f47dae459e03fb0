// A strict parser for .npy headers (format versions 1.0, 2.0 and 3.0), enough for the data
// pipeline's 1-D arrays: magic, version, header length, then a Python dict literal with exactly
// the keys 'descr', 'fortran_order' and 'shape'. Reads no array data.
// Not for: pickled object arrays, structured dtypes or .npz archives.
#include <cstring>

#include "common/error.h"
#include "common/npy.h"

namespace hrm {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
constexpr size_t kVersionLen = 2;
constexpr size_t kV1LenBytes = 2;  // format 1.0: uint16 little-endian header length
constexpr size_t kV2LenBytes = 4;  // formats 2.0 and 3.0: uint32
constexpr int kByteBits = 8;

class DictParser {
 public:
  DictParser(std::string_view text, std::string_view origin) : s_(text), origin_(origin) {}

  NpyHeader parse() {
    NpyHeader h;
    bool have_descr = false, have_fortran = false, have_shape = false;
    skip_ws();
    expect('{');
    for (;;) {
      skip_ws();
      if (peek() == '}') {
        ++i_;
        break;
      }
      const std::string key = string_literal();
      skip_ws();
      expect(':');
      skip_ws();
      if (key == "descr") {
        if (have_descr) fail("duplicate key 'descr'");
        h.descr = string_literal();
        have_descr = true;
      } else if (key == "fortran_order") {
        if (have_fortran) fail("duplicate key 'fortran_order'");
        h.fortran_order = boolean();
        have_fortran = true;
      } else if (key == "shape") {
        if (have_shape) fail("duplicate key 'shape'");
        h.shape = tuple();
        have_shape = true;
      } else {
        fail(cat("unexpected key '", key, "', expected only descr, fortran_order, shape"));
      }
      skip_ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      skip_ws();
      expect('}');
      break;
    }
    skip_ws();
    if (i_ != s_.size()) fail("text after the closing '}'");
    if (!have_descr) fail("missing key 'descr'");
    if (!have_fortran) fail("missing key 'fortran_order'");
    if (!have_shape) fail("missing key 'shape'");
    return h;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(cat(origin_, ": bad .npy header: ", what, " (at header byte ", i_, ")"));
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
  }
  void expect(char c) {
    if (peek() != c) fail(cat("expected '", c, "'"));
    ++i_;
  }
  std::string string_literal() {
    const char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string");
    const size_t end = s_.find(q, i_ + 1);
    if (end == std::string_view::npos) fail("unterminated string");
    std::string out(s_.substr(i_ + 1, end - i_ - 1));
    i_ = end + 1;
    return out;
  }
  bool boolean() {
    if (s_.substr(i_).starts_with("True")) {
      i_ += 4;
      return true;
    }
    if (s_.substr(i_).starts_with("False")) {
      i_ += 5;
      return false;
    }
    fail("expected True or False for 'fortran_order'");
  }
  uint64_t integer() {
    if (peek() < '0' || peek() > '9') fail("expected a non-negative integer in 'shape'");
    uint64_t v = 0;
    constexpr uint64_t kBase = 10;
    while (peek() >= '0' && peek() <= '9') {
      const auto digit = static_cast<uint64_t>(peek() - '0');
      if (v > (UINT64_MAX - digit) / kBase) fail("dimension in 'shape' overflows 64 bits");
      v = v * kBase + digit;
      ++i_;
    }
    if (peek() == 'L') ++i_;  // Python 2 longs, as old numpy wrote them
    return v;
  }
  std::vector<uint64_t> tuple() {
    std::vector<uint64_t> dims;
    expect('(');
    for (;;) {
      skip_ws();
      if (peek() == ')') {
        ++i_;
        return dims;
      }
      dims.push_back(integer());
      skip_ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      expect(')');
      return dims;
    }
  }

  std::string_view s_;
  std::string_view origin_;
  size_t i_ = 0;
};

}  // namespace

NpyHeader parse_npy_header(std::span<const uint8_t> bytes, std::string_view origin) {
  if (bytes.size() < kMagicLen + kVersionLen + kV1LenBytes || std::memcmp(bytes.data(), kMagic, kMagicLen) != 0)
    throw Error(cat(origin, ": not a .npy file (missing the \\x93NUMPY magic)"));
  const unsigned major = bytes[kMagicLen];
  size_t len_bytes = 0;
  if (major == 1) {
    len_bytes = kV1LenBytes;
  } else if (major == 2 || major == 3) {
    len_bytes = kV2LenBytes;
  } else {
    throw Error(cat(origin, ": .npy format version ", major, ".", unsigned{bytes[kMagicLen + 1]},
                    " is not supported, expected 1.x, 2.x or 3.x"));
  }
  const size_t prefix = kMagicLen + kVersionLen + len_bytes;
  if (bytes.size() < prefix) throw Error(cat(origin, ": .npy file truncated inside the header length"));
  size_t header_len = 0;
  for (size_t b = 0; b < len_bytes; ++b) header_len |= size_t{bytes[kMagicLen + kVersionLen + b]} << (kByteBits * b);
  if (bytes.size() - prefix < header_len)
    throw Error(cat(origin, ": .npy header says ", header_len, " bytes but the file has only ", bytes.size() - prefix,
                    " after the prefix"));
  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + prefix), header_len);
  NpyHeader h = DictParser(text, origin).parse();
  h.data_offset = prefix + header_len;
  return h;
}

}  // namespace hrm
