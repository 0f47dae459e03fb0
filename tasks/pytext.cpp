// Python string semantics on UTF-8; see pytext.h.
#include "tasks/pytext.h"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdlib>

namespace hrm::tasks::py {
namespace {

constexpr char32_t kReplacement = 0xFFFD;

// Python switches repr() to exponent notation outside 1e-4 <= |x| < 1e16
// (CPython Python/pystrtod.c, float_repr_style 'short': decpt in (-4, 16]).
constexpr int kReprMinExp = -4;
constexpr int kReprMaxExp = 16;

bool is_alpha_or_digit_non_ascii(char32_t cp) {
  // Latin-1 punctuation and symbols are not word characters; the letters and the few numeric
  // signs (ª ² ³ µ ¹ º ¼ ½ ¾) are.
  if (cp < 0xC0) {
    switch (cp) {
      case 0xAA: case 0xB2: case 0xB3: case 0xB5: case 0xB9: case 0xBA: case 0xBC: case 0xBD: case 0xBE:
        return true;
      default:
        return false;
    }
  }
  if (cp == 0xD7 || cp == 0xF7) return false;  // × ÷
  if (cp >= 0x2000 && cp <= 0x2BFF) {
    // General punctuation, super/subscripts (digits are numeric), currency, letterlike,
    // number forms, arrows, math operators, technical, box drawing, shapes, dingbats.
    if (cp == 0x2070 || (cp >= 0x2074 && cp <= 0x2079) || (cp >= 0x2080 && cp <= 0x2089)) return true;
    if (cp >= 0x2150 && cp <= 0x2189) return true;  // vulgar fractions, roman numerals
    return false;
  }
  if (cp >= 0x3000 && cp <= 0x303F) return false;  // CJK punctuation
  if (cp >= 0xFE30 && cp <= 0xFE4F) return false;
  if (cp >= 0xFF00 && cp <= 0xFF0F) return false;  // fullwidth punctuation
  if (cp == kReplacement) return false;
  return !is_space(cp);
}

}  // namespace




bool is_word_char(char32_t cp) {
  if (cp < 0x80) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
  return is_alpha_or_digit_non_ascii(cp);
}


std::vector<std::string_view> split(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t pos = 0;
  std::size_t word_start = std::string_view::npos;
  while (pos < s.size()) {
    std::size_t here = pos;
    char32_t cp = next_code_point(s, pos);
    if (is_space(cp)) {
      if (word_start != std::string_view::npos) out.push_back(s.substr(word_start, here - word_start));
      word_start = std::string_view::npos;
    } else if (word_start == std::string_view::npos) {
      word_start = here;
    }
  }
  if (word_start != std::string_view::npos) out.push_back(s.substr(word_start));
  return out;
}

std::string lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t pos = 0;
  while (pos < s.size()) {
    std::size_t here = pos;
    char32_t cp = next_code_point(s, pos);
    if (cp < 0x80) {
      out += static_cast<char>(cp >= 'A' && cp <= 'Z' ? cp + ('a' - 'A') : cp);
      continue;
    }
    char32_t lo = cp;
    if ((cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) || (cp >= 0x391 && cp <= 0x3AB && cp != 0x3A2) ||
        (cp >= 0x410 && cp <= 0x42F)) {
      lo = cp + 0x20;
    } else if (cp >= 0x400 && cp <= 0x40F) {
      lo = cp + 0x50;
    } else if (cp >= 0x100 && cp <= 0x17F && cp != 0x130 && cp != 0x131 && cp != 0x138 && cp != 0x149 &&
               cp != 0x17F) {
      // Latin Extended-A alternates upper/lower, with the parity flipping in 0x139–0x148 and 0x179–0x17E.
      bool odd_upper = (cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E);
      if ((cp % 2 == 1) == odd_upper) lo = cp + 1;
    } else if (cp == 0x130) {
      out += "i\xCC\x87";  // 'İ'.lower() == 'i̇' (two code points) in Python
      continue;
    }
    if (lo == cp) {
      out.append(s.substr(here, pos - here));
    } else {
      append_utf8(out, lo);
    }
  }
  return out;
}

std::optional<double> parse_float(std::string_view text) {
  std::string_view s = strip(text);
  if (s.empty()) return std::nullopt;
  std::size_t i = 0;
  bool negative = false;
  if (s[i] == '+' || s[i] == '-') {
    negative = s[i] == '-';
    ++i;
  }
  std::string rest;
  for (std::size_t k = i; k < s.size(); ++k) rest += static_cast<char>(s[k] >= 'A' && s[k] <= 'Z' ? s[k] + 32 : s[k]);
  if (rest == "inf" || rest == "infinity") return negative ? -HUGE_VAL : HUGE_VAL;
  if (rest == "nan") return negative ? -std::nan("") : std::nan("");
  // Grammar (Python's float(), ASCII part): digitpart ["." [digitpart]] | "." digitpart, then
  // optional exponent; digitpart = digit (["_"] digit)*.
  std::string clean = negative ? "-" : "";
  auto digitpart = [&](std::size_t& k) {
    std::size_t start = k;
    while (k < s.size()) {
      if (s[k] >= '0' && s[k] <= '9') {
        clean += s[k++];
      } else if (s[k] == '_' && k > start && k + 1 < s.size() && s[k + 1] >= '0' && s[k + 1] <= '9' &&
                 s[k - 1] >= '0' && s[k - 1] <= '9') {
        ++k;
      } else {
        break;
      }
    }
    return k > start;
  };
  bool int_digits = digitpart(i);
  bool frac_digits = false;
  if (i < s.size() && s[i] == '.') {
    clean += '.';
    ++i;
    frac_digits = digitpart(i);
  }
  if (!int_digits && !frac_digits) return std::nullopt;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    clean += 'e';
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) clean += s[i++];
    if (!digitpart(i)) return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  // strtod is correctly rounded in glibc and saturates to ±inf / 0 like Python.
  return std::strtod(clean.c_str(), nullptr);
}

std::string float_repr(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x < 0 ? "-inf" : "inf";
  std::array<char, 64> buf{};
  auto res = std::to_chars(buf.data(), buf.data() + buf.size(), x, std::chars_format::scientific);
  std::string sci(buf.data(), res.ptr);
  // sci = [-]d[.ddd]e±XX: shortest round-trip digits and the decimal exponent.
  bool negative = sci[0] == '-';
  std::size_t epos = sci.find('e');
  std::string mantissa = sci.substr(negative ? 1 : 0, epos - (negative ? 1 : 0));
  int exp10 = std::stoi(sci.substr(epos + 1));
  std::string digits;
  for (char c : mantissa)
    if (c != '.') digits += c;
  std::string out;
  if (negative) out.push_back('-');
  int decpt = exp10 + 1;  // position of the decimal point relative to the digit string
  if (decpt > kReprMinExp && decpt <= kReprMaxExp) {
    if (decpt <= 0) {
      out.append("0.");
      out.append(static_cast<std::size_t>(-decpt), '0');
      out.append(digits);
    } else if (static_cast<std::size_t>(decpt) >= digits.size()) {
      out.append(digits);
      out.append(static_cast<std::size_t>(decpt) - digits.size(), '0');
      out.append(".0");
    } else {
      out.append(digits, 0, static_cast<std::size_t>(decpt));
      out.push_back('.');
      out.append(digits, static_cast<std::size_t>(decpt));
    }
    return out;
  }
  out.push_back(digits[0]);
  if (digits.size() > 1) {
    out.push_back('.');
    out.append(digits, 1);
  }
  out.append(exp10 < 0 ? "e-" : "e+");
  int a = std::abs(exp10);
  if (a < 10) out.push_back('0');
  out += std::to_string(a);
  return out;
}

}  // namespace hrm::tasks::py
