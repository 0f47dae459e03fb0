// MATH: the answer math_verify extracts from a reply that has no closed \boxed{} (internal to
// tasks/; the contract is math_free_text_answer in scoring.h).
//
// Why: benchmarks.py scores such a reply with math_verify.parse(whole_text), and parse() finds an
// answer in free text ("The answer is 2", "... is $\frac{1}{2}$.", "\[x=3\]", an unclosed
// "\boxed{5", a trailing number). It does that with its default extraction configs,
// LatexExtractionConfig() and ExprExtractionConfig() (math_verify/parser.py, version 0.9.0):
//
//   * regexes in five priority groups, tried group by group: 0 "final answer is X. I hope",
//     50 "final answer ... is X", an environment holding a "\boxed{...}" and "\boxed{" up to the
//     text's last '}', 100 "answer: X", 200 "answer ... X", 300 any LaTeX environment or
//     number anywhere;
//   * within a group, every match of every regex (finditer: left to right, not overlapping) is
//     sorted by end position, last first (ties: the leftmost start first, then LaTeX before
//     expression matches); the first match whose text parses is the answer, later groups are not
//     tried;
//   * a LaTeX match is one to six environments ($..$, $$..$$, \(..\), \[..\], " [..] ", or a
//     numeric \frac{a}{b}) joined by "and"/"or"/","; several become one set;
//   * an expression match is a number (thousands separators, "3,5" read as 3.5, a percent sign
//     or word) or a plain expression such as "3/4" after a space, '=' or the start;
//   * the text of the first match tried is kept as a fallback, which verify() compares as a
//     string with the gold's.
//
// Each matcher below is one of those regexes written out by hand as a backtracking matcher in
// continuation-passing style, so that greedy and lazy repetitions, alternations and lookarounds
// pick the same match Python's `re` picks (the continuation `k(end)` is "the rest of the
// pattern"). Hand-written rather than std::regex because the reply is long, untrusted model
// output and std::regex recurses per character; the loops here are iterative.
//
// Approximated (docs/SCORING.md lists what this misses): whether latex2sympy parses an extracted
// environment (latex_parses: the failures seen in MATH-style text, not its grammar); the value
// is then judged by math_equivalent, not sympy. Not reproduced: non-ASCII digits and
// case-folding; math_verify's 5-second timeouts.
#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tasks/pytext.h"
#include "tasks/scoring.h"

namespace hrm::tasks {
namespace {

// parser.py lazy_latex_regex / lazy_expr_regex.
constexpr std::size_t kAnswerWindow = 50;        // "answer.{0,50}?"
constexpr std::size_t kEqualsWindow = 100;       // "answer(?:.{0,100}=\s*|.{0,50}?)"
constexpr std::size_t kFinalAnswerWindow = 100;  // "final answer.{0,100}?"
constexpr int kEnvSlots = 6;                     // first_ plus next1_ .. next5_ environments
constexpr int kPriorities[] = {0, 50, 100, 200, 300};

// One LaTeX environment captured by a match: its content [b, e) and a percent suffix.
struct EnvSlot {
  bool set = false;
  std::size_t b = 0, e = 0;
  bool percent = false;
};

// What a successful match captured.
struct Captures {
  EnvSlot env[kEnvSlots];
  bool number = false;  // expression match: a number (else a plain expression)
  std::size_t expr_b = 0, expr_e = 0;
  std::size_t int_b = 0, int_e = 0, dec_b = 0, dec_e = 0;
  bool percent = false;
};

struct Match {
  std::size_t start = 0, end = 0;
  bool latex = true;
  bool boxed = false;      // the "\boxed{.+}" regex
  bool boxed_env = false;  // an environment holding a \boxed{...} (priority 50)
  Captures cap;
};

class Scanner {
 public:
  explicit Scanner(std::string_view text) : t_(text), n_(text.size()) {}

  // All matches of priority group `prio`, in the order parser.py tries them.
  std::vector<Match> group(int prio) {
    std::vector<Match> out;
    switch (prio) {
      case 0:
        find_all(out, true, [&](std::size_t s, auto&& k) { return final_answer_hope(s, true, k); });
        find_all(out, false, [&](std::size_t s, auto&& k) { return final_answer_hope(s, false, k); });
        break;
      case 50:
        find_all(out, true, [&](std::size_t s, auto&& k) { return final_answer_is(s, true, k); });
        {
          std::size_t first = out.size();
          boxed_context_ = true;
          find_all(out, true, [&](std::size_t s, auto&& k) { return latex_envs(s, k); });
          boxed_context_ = false;
          for (std::size_t i = first; i < out.size(); ++i) out[i].boxed_env = true;
        }
        boxed_any(out);
        find_all(out, false, [&](std::size_t s, auto&& k) { return final_answer_is(s, false, k); });
        break;
      case 100:
      case 200: {
        bool colon = prio == 100;
        find_all(out, true, [&](std::size_t s, auto&& k) { return answer_latex(s, colon, k); });
        find_all(out, false, [&](std::size_t s, auto&& k) { return answer_expr(s, colon, k); });
        break;
      }
      default:
        find_all(out, true, [&](std::size_t s, auto&& k) { return latex_envs(s, k); });
        find_all(out, false, [&](std::size_t s, auto&& k) {
          return expr_prefix(s, [&](std::size_t q) { return expr_with_suffix(q, k); });
        });
        find_all(out, false, [&](std::size_t s, auto&& k) { return number_with_anchors(s, k); });
        break;
    }
    // Rightmost end first; for equal ends the leftmost start; otherwise pattern order (Python's
    // sort(reverse=True) is stable).
    std::stable_sort(out.begin(), out.end(), [](const Match& a, const Match& b) {
      if (a.end != b.end) return a.end > b.end;
      return a.start < b.start;
    });
    return out;
  }

  std::string_view text(std::size_t b, std::size_t e) const { return t_.substr(b, e - b); }

 private:
  // ------------------------------------------------------------------ characters and loops

  bool at(std::size_t p, char c) const { return p < n_ && t_[p] == c; }
  bool starts(std::size_t p, std::string_view lit) const { return p <= n_ && t_.substr(p).starts_with(lit); }
  bool starts_ci(std::size_t p, std::string_view lower_lit) const {  // (?i:...) on ASCII text
    if (p + lower_lit.size() > n_) return false;
    for (std::size_t i = 0; i < lower_lit.size(); ++i) {
      char c = t_[p + i];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      if (c != lower_lit[i]) return false;
    }
    return true;
  }
  bool digit(std::size_t p) const { return p < n_ && t_[p] >= '0' && t_[p] <= '9'; }
  std::size_t next(std::size_t p) const {
    std::size_t q = p;
    py::next_code_point(t_, q);
    return q;
  }
  // re's \s (str patterns: Unicode whitespace); `len` gets the character's byte length.
  bool space(std::size_t p, std::size_t& len) const {
    if (p >= n_) return false;
    std::size_t q = p;
    char32_t cp = py::next_code_point(t_, q);
    len = q - p;
    return py::is_space(cp);
  }
  // End positions of \s* from p, longest first (greedy order); `min` 1 gives \s+.
  std::vector<std::size_t> spaces(std::size_t p, std::size_t min = 0) const {
    std::vector<std::size_t> ends{p};
    std::size_t len = 0;
    for (std::size_t q = p; space(q, len); q += len) ends.push_back(q + len);
    if (min > 0) ends.erase(ends.begin());
    std::reverse(ends.begin(), ends.end());
    return ends;
  }
  // `.{0,max}?` (lazy): k at each end, shortest first. `dotall`: '.' also matches a newline.
  template <class K>
  bool lazy_any(std::size_t p, std::size_t max, bool dotall, K&& k) const {
    for (std::size_t count = 0;; ++count) {
      if (k(p)) return true;
      if (count == max || p >= n_ || (!dotall && t_[p] == '\n')) return false;
      p = next(p);
    }
  }
  // `.{0,max}` (greedy, no newline): k at each end, longest first.
  template <class K>
  bool greedy_any(std::size_t p, std::size_t max, K&& k) const {
    std::vector<std::size_t> ends{p};
    for (std::size_t q = p; ends.size() <= max && q < n_ && t_[q] != '\n';) {
      q = next(q);
      ends.push_back(q);
    }
    for (std::size_t i = ends.size(); i-- > 0;)
      if (k(ends[i])) return true;
    return false;
  }
  // `\:?` (greedy).
  template <class K>
  bool opt_colon(std::size_t p, K&& k) const {
    return (at(p, ':') && k(p + 1)) || k(p);
  }

  // finditer over the whole text: left to right, each search resuming where the last match ended.
  template <class M>
  void find_all(std::vector<Match>& out, bool latex, M&& matcher) {
    for (std::size_t s = 0; s <= n_;) {
      cap_ = Captures{};
      std::size_t end = 0;
      if (matcher(s, [&](std::size_t e) {
            end = e;
            return true;
          })) {
        out.push_back({s, end, latex, false, false, cap_});
        s = end > s ? end : next(s);
      } else {
        if (s == n_) break;
        s = next(s);
      }
    }
  }

  // ------------------------------------------------------------- expressions (ExprExtractionConfig)

  // Operators of expr_re: + - * × / ^ ( ) ÷.
  bool op_char(std::size_t p, std::size_t& len) const {
    if (p >= n_) return false;
    len = 1;
    if (std::string_view("+-*/^()").find(t_[p]) != std::string_view::npos) return true;
    len = 2;
    return starts(p, "\u00d7") || starts(p, "\u00f7");
  }
  // all_expr_chars: digits, '.', whitespace and the operators.
  bool expr_char(std::size_t p, std::size_t& len) const {
    if (p >= n_) return false;
    len = 1;
    if (digit(p) || t_[p] == '.') return true;
    return op_char(p, len) || space(p, len);
  }

  // expr_prefix_re: (?:^|\s|=)(?:\*\*)?
  template <class K>
  bool expr_prefix(std::size_t p, K&& k) const {
    auto stars = [&](std::size_t q) { return (starts(q, "**") && k(q + 2)) || k(q); };
    std::size_t len = 0;
    if (p == 0 && stars(0)) return true;
    if (space(p, len) && stars(p + len)) return true;
    return at(p, '=') && stars(p + 1);
  }
  // expr_suffix_re: (?:\*\*)?(?:\.|,|:|\s|\)|\$|$)
  template <class K>
  bool expr_suffix(std::size_t p, K&& k) const {
    auto one = [&](std::size_t q) {
      if (q >= n_) return k(q);
      char c = t_[q];
      if (c == '.' || c == ',' || c == ':' || c == ')' || c == '$') return k(q + 1);
      std::size_t len = 0;
      return space(q, len) && k(q + len);
    };
    return (starts(p, "**") && one(p + 2)) || one(p);
  }
  // A maximal run of all_expr_chars as character boundaries, and for each boundary the index of
  // the first operator at or after it. Cached: finditer starts again inside the same run at every
  // space, which would otherwise rescan it ("1 2 3 ..." is quadratic).
  struct Run {
    std::vector<std::size_t> bounds;
    std::vector<std::size_t> next_op;
  };
  const Run& run_from(std::size_t q) {
    if (!run_.bounds.empty() && q >= run_.bounds.front() && q <= run_.bounds.back() &&
        std::binary_search(run_.bounds.begin(), run_.bounds.end(), q))
      return run_;
    run_.bounds.assign(1, q);
    std::size_t len = 0;
    for (std::size_t x = q; expr_char(x, len); x += len) run_.bounds.push_back(x + len);
    std::size_t n = run_.bounds.size();
    run_.next_op.assign(n, n);
    for (std::size_t i = n - 1; i-- > 0;)
      run_.next_op[i] = op_char(run_.bounds[i], len) ? i : run_.next_op[i + 1];
    return run_;
  }

  // expr_re followed by expr_suffix_re: -?\(?-?\d C* [O] C+ \)?  (C: all_expr_chars, O: operators).
  template <class K>
  bool expr_with_suffix(std::size_t p, K&& k) {
    auto from_digit = [&](std::size_t d) {
      if (!digit(d)) return false;
      // The C run after the digit, as character boundaries b[i0] = d + 1 .. b.back() = run end,
      // and the first operator at or after d + 1 (b.size(): none).
      const Run& run = run_from(d + 1);
      const std::vector<std::size_t>& b = run.bounds;
      std::size_t i0 = static_cast<std::size_t>(std::lower_bound(b.begin(), b.end(), d + 1) - b.begin());
      std::size_t first_op = run.next_op[i0];
      // Backtracking tries the operator position i from the right and, for each, the end of C+
      // from the right. Whether the rest matches depends on that end only, so the first success
      // is the rightmost end that works with any operator left of it (at least one C between).
      for (std::size_t j = b.size(); j-- > first_op + 2 && first_op < b.size();) {
        std::size_t e = b[j];
        auto rest = [&](std::size_t end) {
          cap_.number = false;
          cap_.expr_b = p;
          cap_.expr_e = end;
          return expr_suffix(end, k);
        };
        if (at(e, ')') && rest(e + 1)) return true;  // \)? is greedy
        if (rest(e)) return true;
      }
      return false;
    };
    // -?\(?-? : each optional sign or parenthesis taken first, then left out.
    for (int minus1 = at(p, '-') ? 1 : 0; minus1 >= 0; --minus1) {
      std::size_t q1 = p + minus1;
      for (int paren = at(q1, '(') ? 1 : 0; paren >= 0; --paren) {
        std::size_t q2 = q1 + paren;
        for (int minus2 = at(q2, '-') ? 1 : 0; minus2 >= 0; --minus2)
          if (from_digit(q2 + minus2)) return true;
      }
    }
    return false;
  }

  // The optional percent group of number_re: (\s*(?:%|[Pp]ercent|\s*[Pp]ercentage|\s*[Pp]ct))?
  template <class K>
  bool number_percent(std::size_t p, K&& k) {
    auto word = [&](std::size_t q, std::string_view rest) {  // [Pp]<rest>
      return (at(q, 'P') || at(q, 'p')) && starts(q + 1, rest);
    };
    for (std::size_t q : spaces(p)) {
      cap_.percent = true;
      if (at(q, '%') && k(q + 1)) return true;
      if (word(q, "ercent") && k(q + 7)) return true;
      for (std::size_t r : spaces(q))
        if (word(r, "ercentage") && k(r + 10)) return true;
      for (std::size_t r : spaces(q))
        if (word(r, "ct") && k(r + 3)) return true;
    }
    cap_.percent = false;
    return k(p);
  }
  std::size_t digits_end(std::size_t p) const {
    while (digit(p)) ++p;
    return p;
  }
  // number_re: four alternatives, each greedy, in the regex's order.
  template <class K>
  bool number(std::size_t p, K&& k) {
    if (p > 0 && digit(p - 1)) return false;  // (?<!\d)
    cap_.number = true;
    auto emit = [&](std::size_t ib, std::size_t ie, std::size_t db, std::size_t de) {
      cap_.number = true;
      cap_.int_b = ib;
      cap_.int_e = ie;
      cap_.dec_b = db;
      cap_.dec_e = de;
      return number_percent(de > db ? de : ie, k);
    };
    std::size_t q = at(p, '-') ? p + 1 : p;  // -? (left out, a digit would have to be '-')
    // 1: -?[1-9]\d{0,2}(?:[ ,]\d{3})+(\.\d+)?
    if (digit(q) && t_[q] != '0') {
      std::size_t run = digits_end(q + 1) - (q + 1);
      for (std::size_t extra = std::min<std::size_t>(2, run) + 1; extra-- > 0;) {
        std::vector<std::size_t> groups;
        for (std::size_t x = q + 1 + extra;
             (at(x, ' ') || at(x, ',')) && digit(x + 1) && digit(x + 2) && digit(x + 3); x += 4)
          groups.push_back(x + 4);
        for (std::size_t g = groups.size(); g-- > 0;) {
          std::size_t e = groups[g];
          if (at(e, '.') && digit(e + 1))
            for (std::size_t d = digits_end(e + 1); d > e + 1; --d)
              if (emit(p, e, e, d)) return true;
          if (emit(p, e, e, e)) return true;
        }
      }
    }
    // 2: -?\d+[.,]\d+ ; 4: -?\d+ (3, \.\d+, is tried between them)
    std::size_t m = digits_end(q);
    if (m > q && (at(m, '.') || at(m, ',')) && digit(m + 1))
      for (std::size_t d = digits_end(m + 1); d > m + 1; --d)
        if (emit(p, m, m, d)) return true;
    if (q == p && at(p, '.') && digit(p + 1))
      for (std::size_t d = digits_end(p + 1); d > p + 1; --d)
        if (emit(p, p, p, d)) return true;
    for (std::size_t e = m; e > q; --e)
      if (emit(p, e, e, e)) return true;
    return false;
  }
  // Currency signs of number_with_anchors.
  bool currency(std::size_t p, std::size_t& len) const {
    static constexpr std::u32string_view kCurrency =
        U"$\u20ac\u00a3\u00a5\u20b9\u20bd\u20aa\u20a9\u20ab\u0e3f\u20a1\u20a2\u20a3\u20a4\u20a5\u20a6\u20a7\u20a8"
        U"\u20ad\u20ae\u20af\u20b0\u20b1\u20b2\u20b3\u20b4\u20b5\u20b6\u20b7\u20b8\u20ba\u20bb\u20bc\u20be\u20bf";
    if (p >= n_) return false;
    std::size_t q = p;
    char32_t cp = py::next_code_point(t_, q);
    len = q - p;
    return kCurrency.find(cp) != std::u32string_view::npos;
  }
  // number_with_anchors: prefix, an optional currency sign, number_re (no suffix).
  template <class K>
  bool number_with_anchors(std::size_t p, K&& k) {
    return expr_prefix(p, [&](std::size_t q) {
      std::size_t len = 0;
      if (currency(q, len) && number(q + len, k)) return true;
      return number(q, k);
    });
  }
  // expr_or_number = expr_with_anchors | number_with_anchors.
  template <class K>
  bool expr_or_number(std::size_t p, K&& k) {
    if (expr_prefix(p, [&](std::size_t q) { return expr_with_suffix(q, k); })) return true;
    return number_with_anchors(p, k);
  }
  // (?!\s*=)
  bool no_equals_after(std::size_t p) const {
    std::size_t len = 0;
    while (space(p, len)) p += len;
    return !at(p, '=');
  }
  // answer:?(?:.{0,100}=\s*|.{0,50}?){expr_or_number}(?!\s*=)   (priorities 100 and 200)
  template <class K>
  bool answer_expr(std::size_t s, bool colon, K&& k) {
    if (!starts_ci(s, "answer")) return false;
    std::size_t p = s + 6;
    if (colon && !at(p++, ':')) return false;
    auto value = [&](std::size_t q) { return expr_or_number(q, [&](std::size_t e) { return no_equals_after(e) && k(e); }); };
    bool via_equals = greedy_any(p, kEqualsWindow, [&](std::size_t q) {
      if (!at(q, '=')) return false;
      for (std::size_t r : spaces(q + 1))
        if (value(r)) return true;
      return false;
    });
    return via_equals || lazy_any(p, kAnswerWindow, false, value);
  }

  // -------------------------------------------------------------------- LaTeX (LatexExtractionConfig)

  // After an environment: \s* and the optional percent group (?:\\?%|[Pp]ercent|[Pp]ercentage|[Pp]ct).
  template <class K>
  bool env_tail(std::size_t f, int slot, std::size_t b, std::size_t e, K&& k) {
    auto word = [&](std::size_t q, std::string_view rest) { return (at(q, 'P') || at(q, 'p')) && starts(q + 1, rest); };
    for (std::size_t q : spaces(f)) {
      cap_.env[slot] = {true, b, e, true};
      if (starts(q, "\\%") && k(q + 2)) return true;
      if (at(q, '%') && k(q + 1)) return true;
      if (word(q, "ercent") && k(q + 7)) return true;
      if (word(q, "ercentage") && k(q + 10)) return true;
      if (word(q, "ct") && k(q + 3)) return true;
      cap_.env[slot] = {true, b, e, false};
      if (k(q)) return true;
    }
    return false;
  }
  // A lazy environment body: `unit(q)` is the length of the content unit at q (0: none), `close(e)`
  // the length of the closing delimiter at e (0: none). Shortest content first, at least one unit.
  template <class Unit, class Close, class K>
  bool lazy_env(std::size_t b, int slot, Unit&& unit, Close&& close, K&& k) {
    for (std::size_t e = b;;) {
      std::size_t u = unit(e);
      if (u == 0) return false;
      e += u;
      if (std::size_t c = close(e); c > 0 && env_tail(e + c, slot, b, e, k)) return true;
    }
  }
  // make_latex_env_pattern(context="boxed"): the body is {C}*?\\boxed{{C}+?}{C}*? with C the
  // environment's own content unit, all lazy.
  // The units do not depend on the phase, so the content can only end at one of the closing
  // delimiters met before the first non-unit: those are found once (else every box times every
  // '}' would rescan the text).
  template <class Unit, class Close, class K>
  bool lazy_boxed_env(std::size_t b, int slot, Unit&& unit, Close&& close, K&& k) {
    std::vector<std::size_t> closings;  // content ends e with a closing delimiter at e
    for (std::size_t e = b;;) {
      if (e > b && close(e) > 0) closings.push_back(e);
      std::size_t u = unit(e);
      if (u == 0) break;
      e += u;
    }
    if (closings.empty()) return false;
    for (std::size_t i = b; i < closings.back();) {
      if (starts(i, "\\boxed{")) {
        std::size_t units = 0;
        for (std::size_t j = i + 7; j < closings.back();) {
          if (units > 0 && at(j, '}')) {
            for (auto e = std::lower_bound(closings.begin(), closings.end(), j + 1); e != closings.end(); ++e)
              if (env_tail(*e + close(*e), slot, b, *e, k)) return true;
          }
          j += unit(j);
          ++units;
        }
      }
      i += unit(i);
    }
    return false;
  }
  template <class Unit, class Close, class K>
  bool env_body(std::size_t b, int slot, Unit&& unit, Close&& close, K&& k) {
    return boxed_context_ ? lazy_boxed_env(b, slot, unit, close, k) : lazy_env(b, slot, unit, close, k);
  }
  // make_latex_env_pattern: the six environments, in the regex's order (the boxed context has no
  // fraction).
  template <class K>
  bool env(std::size_t p, int slot, K&& k) {
    bool escaped = p > 0 && t_[p - 1] == '\\';
    auto not_after_backslash = [&](std::size_t e) { return t_[e - 1] != '\\'; };
    if (!escaped && starts(p, "$$")) {  // $$ (?:[^$]|\$(?!\$))+? $$
      auto unit = [&](std::size_t q) -> std::size_t { return q < n_ && (t_[q] != '$' || !at(q + 1, '$')) ? 1 : 0; };
      auto close = [&](std::size_t e) -> std::size_t { return starts(e, "$$") && not_after_backslash(e) ? 2 : 0; };
      if (env_body(p + 2, slot, unit, close, k)) return true;
    }
    if (!escaped && starts(p, "\\[")) {  // \[ (?:[^\\]|\\(?!\]))+? \]
      auto unit = [&](std::size_t q) -> std::size_t { return q < n_ && (t_[q] != '\\' || !at(q + 1, ']')) ? 1 : 0; };
      auto close = [&](std::size_t e) -> std::size_t { return starts(e, "\\]") && not_after_backslash(e) ? 2 : 0; };
      if (env_body(p + 2, slot, unit, close, k)) return true;
    }
    if (!escaped && !(p > 0 && digit(p - 1)) && at(p, '$')) {  // $ (?:\\[$]|[^\n$])+? $
      auto unit = [&](std::size_t q) -> std::size_t {
        if (starts(q, "\\$")) return 2;
        return q < n_ && t_[q] != '\n' && t_[q] != '$' ? 1 : 0;
      };
      auto close = [&](std::size_t e) -> std::size_t { return at(e, '$') && not_after_backslash(e) ? 1 : 0; };
      if (env_body(p + 1, slot, unit, close, k)) return true;
    }
    if (!escaped && starts(p, "\\(")) {  // \( (?:[^\\\n]|\\(?!\)))+? \)
      auto unit = [&](std::size_t q) -> std::size_t {
        if (q >= n_ || t_[q] == '\n') return 0;
        return t_[q] != '\\' || !at(q + 1, ')') ? 1 : 0;
      };
      auto close = [&](std::size_t e) -> std::size_t { return starts(e, "\\)") && not_after_backslash(e) ? 2 : 0; };
      if (env_body(p + 2, slot, unit, close, k)) return true;
    }
    std::size_t len = 0;
    if (space(p, len) && at(p + len, '[')) {  // \s\[ [^\n\]\[]+? \]\s
      auto unit = [&](std::size_t q) -> std::size_t { return q < n_ && t_[q] != '\n' && t_[q] != ']' && t_[q] != '[' ? 1 : 0; };
      auto close = [&](std::size_t e) -> std::size_t {
        std::size_t l = 0;
        return at(e, ']') && space(e + 1, l) ? 1 + l : 0;
      };
      if (env_body(p + len + 1, slot, unit, close, k)) return true;
    }
    // -?\\frac{N}{N}, N = -?\d+(?:[.,]\d+)?
    std::size_t q = at(p, '-') ? p + 1 : p;
    if (!boxed_context_ && starts(q, "\\frac{")) {
      auto simple_number = [&](std::size_t x) -> std::size_t {  // end, or npos
        if (at(x, '-')) ++x;
        std::size_t e = digits_end(x);
        if (e == x) return std::string_view::npos;
        if ((at(e, '.') || at(e, ',')) && digit(e + 1)) e = digits_end(e + 1);
        return e;
      };
      std::size_t a = simple_number(q + 6);
      if (a != std::string_view::npos && starts(a, "}{")) {
        std::size_t c = simple_number(a + 2);
        if (c != std::string_view::npos && at(c, '}') && env_tail(c + 1, slot, p, c + 1, k)) return true;
      }
    }
    return false;
  }
  // The next1_ .. next5_ groups: (?:\s*(?:,?and|,?or|,)\s*{env})?
  template <class K>
  bool next_envs(std::size_t p, int slot, K&& k) {
    if (slot < kEnvSlots) {
      for (std::size_t q : spaces(p)) {
        std::vector<std::size_t> seps;
        if (at(q, ',') && starts(q + 1, "and")) seps.push_back(q + 4);
        if (starts(q, "and")) seps.push_back(q + 3);
        if (at(q, ',') && starts(q + 1, "or")) seps.push_back(q + 3);
        if (starts(q, "or")) seps.push_back(q + 2);
        if (at(q, ',')) seps.push_back(q + 1);
        for (std::size_t r : seps)
          for (std::size_t u : spaces(r))
            if (env(u, slot, [&](std::size_t v) { return next_envs(v, slot + 1, k); })) return true;
      }
      for (int i = slot; i < kEnvSlots; ++i) cap_.env[i].set = false;
    }
    return k(p);
  }
  // latex_envs_re: one environment and up to five more.
  template <class K>
  bool latex_envs(std::size_t p, K&& k) {
    return env(p, 0, [&](std::size_t q) { return next_envs(q, 1, k); });
  }
  // answer:?.{0,50}?{latex_envs}   (priorities 100 and 200; re.DOTALL)
  template <class K>
  bool answer_latex(std::size_t s, bool colon, K&& k) {
    if (!starts_ci(s, "answer")) return false;
    std::size_t p = s + 6;
    if (colon && !at(p++, ':')) return false;
    return lazy_any(p, kAnswerWindow, true, [&](std::size_t q) { return latex_envs(q, k); });
  }

  // ------------------------------------------------------------------------ "final answer"

  // (?i:final answer is)\:?\s*{X}\.?\s?I hope   (priority 0)
  template <class K>
  bool final_answer_hope(std::size_t s, bool latex, K&& k) {
    if (!starts_ci(s, "final answer is")) return false;
    auto tail = [&](std::size_t e) {  // \.?\s?I hope
      std::vector<std::size_t> after_dot{e};
      if (at(e, '.')) after_dot.insert(after_dot.begin(), e + 1);
      for (std::size_t f : after_dot) {
        std::size_t len = 0;
        if (space(f, len) && starts(f + len, "I hope") && k(f + len + 6)) return true;
        if (starts(f, "I hope") && k(f + 6)) return true;
      }
      return false;
    };
    return opt_colon(s + 15, [&](std::size_t p) {
      for (std::size_t q : spaces(p))
        if (latex ? latex_envs(q, tail) : expr_or_number(q, tail)) return true;
      return false;
    });
  }
  // (?i:final answer.{0,100}?)\s+is\:?\s*{latex}  /  ...\s+is\:?{expr_or_number}   (priority 50)
  template <class K>
  bool final_answer_is(std::size_t s, bool latex, K&& k) {
    if (!starts_ci(s, "final answer")) return false;
    return lazy_any(s + 12, kFinalAnswerWindow, latex, [&](std::size_t p) {
      for (std::size_t q : spaces(p, 1)) {
        if (!starts(q, "is")) continue;
        bool ok = opt_colon(q + 2, [&](std::size_t r) {
          if (!latex) return expr_or_number(r, k);
          for (std::size_t u : spaces(r))
            if (latex_envs(u, k)) return true;
          return false;
        });
        if (ok) return true;
      }
      return false;
    });
  }
  // (?P<first_latexBoxed>\\boxed{.+})  (priority 50, re.DOTALL): the first "\boxed{" up to the
  // text's last '}'. Later starts cannot match where the first one did not.
  void boxed_any(std::vector<Match>& out) const {
    std::size_t s = t_.find("\\boxed{");
    std::size_t close = t_.rfind('}');
    if (s == std::string_view::npos || close == std::string_view::npos || close < s + 8) return;
    Match m;
    m.start = s;
    m.end = close + 1;
    m.boxed = true;
    m.cap.env[0] = {true, s, close + 1, false};
    out.push_back(m);
  }

  std::string_view t_;
  std::size_t n_;
  Captures cap_;
  bool boxed_context_ = false;  // matching the priority-50 "environment with a \boxed{}" regex
  Run run_;
};

// latex2sympy's success on an extracted environment, approximated. It fails on: nothing left;
// unbalanced braces ("{5"); a dangling operator ("x ="); a trailing period ("n = 82.", "4.");
// a leading operator or period ("/asy" of an [asy] block); congruences ("\equiv", "\pmod");
// aligned environments and '&' outside a matrix; "^{\text{th}}"; "\cancel"; "{\bf 3}"; "3!=6" (read as "not
// equal"). "x = \pm 7" does parse (to a set, which a single gold never equals), "m-n=\pm 6"
// does not.
bool latex_parses(std::string_view latex) {
  std::string_view s = py::strip(latex);
  if (s.empty()) return false;
  // normalize_latex's unit_superscript_regex drops everything from the first \text{ / \mbox{
  // (\textbf, \mathrm, ... are renamed \text first) when the text ends in '}' or "}^2", unless
  // nothing would remain: "x = \text{Evelyn}" becomes "x =", which then fails.
  if (s.back() == '}' || (s.size() > 3 && s[s.size() - 2] == '^' && s[s.size() - 3] == '}')) {
    std::size_t cut = std::string_view::npos;
    for (std::string_view cmd : {"\\text", "\\mbox", "\\mathrm", "\\mathbf", "\\mathit"}) {
      std::size_t p = s.find(cmd);
      if (p != std::string_view::npos && p < cut && s.find('{', p) != std::string_view::npos) cut = p;
    }
    if (cut != std::string_view::npos && !py::strip(s.substr(0, cut)).empty() &&
        s.substr(cut).find('\n') == std::string_view::npos)
      s = py::strip(s.substr(0, cut));
  }
  int depth = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
      continue;
    }
    if (s[i] == '{') ++depth;
    if (s[i] == '}' && --depth < 0) return false;
  }
  if (depth != 0) return false;
  if (std::string_view("=+-*/^,.").find(s.back()) != std::string_view::npos) return false;
  if (std::string_view("=*/^.").find(s.front()) != std::string_view::npos) return false;
  if (s.ends_with("\\cdot") || s.ends_with("\\times")) return false;
  for (std::string_view bad : {"\\equiv", "\\pmod", "\\begin{align", "\\text{th}", "\\cancel", "\\bf ", "!="})
    if (s.find(bad) != std::string_view::npos) return false;
  if (s.find('&') != std::string_view::npos && s.find("matrix}") == std::string_view::npos) return false;
  // "\pm" after '=' parses only when the left side is one symbol ("x = \pm 7"; not "m-n=\pm 6").
  std::size_t eq = s.find('=');
  if (s.find("\\pm") != std::string_view::npos && eq != std::string_view::npos) {
    std::string_view lhs = py::strip(s.substr(0, eq));
    bool symbol = !lhs.empty() && std::isalpha(static_cast<unsigned char>(lhs[0])) &&
                  (lhs.size() == 1 || lhs[1] == '_');
    if (!symbol) return false;
  }
  return true;
}

// latex2sympy2_extended extract_boxed_content, which normalize_latex applies first: the boxes of
// `text` from the right, each "\boxed{...}" / "\fbox{...}" with balanced braces; where the last one
// has no closing brace, or no brace at all, everything from there on (an unclosed box keeps its
// '{', and "{\frac{1}{2}" then fails to parse). Mode "all" (environments) joins every box with
// ','; "last" (the \boxed{.+} regex) only earlier boxes close by (under 10 characters apart, or
// under 70 with a separator). Text without a box is returned as it is.
std::string extract_boxed(std::string_view text, bool last_mode) {
  std::vector<std::string> results;
  std::size_t current = text.size(), max_pos = text.size();
  std::size_t last_boxed_start = std::string_view::npos;
  auto separator = [](std::string_view between) {  // re.search(r'\b(and|or)\b|,|;')
    if (between.find(',') != std::string_view::npos || between.find(';') != std::string_view::npos) return true;
    auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
    for (std::string_view w : {"and", "or"})
      for (std::size_t p = between.find(w); p != std::string_view::npos; p = between.find(w, p + 1))
        if ((p == 0 || !word(between[p - 1])) && (p + w.size() == between.size() || !word(between[p + w.size()])))
          return true;
    return false;
  };
  for (;;) {
    std::size_t b = text.substr(0, current).rfind("\\boxed");
    std::size_t f = text.substr(0, current).rfind("\\fbox");
    if (b == std::string_view::npos && f == std::string_view::npos) break;
    bool is_boxed = f == std::string_view::npos || (b != std::string_view::npos && b > f);
    std::size_t start = is_boxed ? b : f;
    std::size_t p = start + (is_boxed ? 6 : 5);
    while (p < max_pos && std::isspace(static_cast<unsigned char>(text[p]))) ++p;
    if (p >= max_pos) break;
    if (text[p] != '{') {
      if (results.empty()) results.emplace_back(text.substr(p));
      break;
    }
    std::size_t close = std::string_view::npos;
    for (std::size_t i = p, depth = 1; i + 1 < max_pos;) {
      ++i;
      if (text[i] == '{') ++depth;
      if (text[i] == '}' && --depth == 0) {
        close = i;
        break;
      }
    }
    if (close == std::string_view::npos) {
      if (results.empty()) results.emplace_back(text.substr(p));
      break;
    }
    std::string content(py::strip(text.substr(p + 1, close - p - 1)));
    if (last_mode && last_boxed_start != std::string_view::npos) {
      std::string_view between = text.substr(close + 1, last_boxed_start - close - 1);
      bool differs = results.empty() || results.back() != content;
      bool near = between.size() < 10 || (differs && between.size() < 70 && separator(between));
      if (!near) break;
    }
    if (results.empty() || results.back() != content) results.push_back(content);
    last_boxed_start = start;
    max_pos = start;
    current = start;
  }
  if (results.empty()) return std::string(text);
  std::string out;
  for (std::size_t i = results.size(); i-- > 0;) {
    out += results[i];
    if (i > 0) out += ',';
  }
  return out;
}

// A number match as extract_expr builds it: separators dropped, leading zeros stripped, a decimal
// comma read as a point (the percent sign is reported separately).
std::string number_text(const Scanner& sc, const Captures& c) {
  std::string out;
  for (char ch : sc.text(c.int_b, c.int_e))
    if (ch != ',' && ch != ' ' && !(ch == '0' && out.empty())) out += ch;  // .lstrip("0")
  if (out.empty()) out += '0';
  for (char ch : sc.text(c.dec_b, c.dec_e)) out += ch == ',' ? '.' : ch;
  return out;
}

// parse_expr(expr, evaluate=False) on a plain expression: Python syntax, so "×"/"÷", unbalanced
// parentheses, two numbers side by side and a dangling operator fail.
std::optional<std::string> plain_expression(std::string_view expr) {
  std::string s(py::strip(expr));
  if (s.find("\u00d7") != std::string::npos || s.find("\u00f7") != std::string::npos) return std::nullopt;
  int depth = 0;
  char prev = 0;  // last non-space character
  bool space_since = false;
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      space_since = true;
      continue;
    }
    bool num = (c >= '0' && c <= '9') || c == '.';
    bool prev_num = (prev >= '0' && prev <= '9') || prev == '.';
    if (num && prev_num && space_since) return std::nullopt;
    // "3(4)" and "(3)(-7)" call a number in Python: parse_expr fails.
    if (c == '(' && (prev_num || prev == ')')) return std::nullopt;
    if (c == '(') ++depth;
    if (c == ')' && --depth < 0) return std::nullopt;
    prev = c;
    space_since = false;
  }
  if (depth != 0 || std::string_view("+-*/^").find(prev) != std::string_view::npos) return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s.compare(i, 2, "**") == 0) {
      out += '^';
      ++i;
    } else {
      out += s[i];
      // Python reads "7." as 7.0 ("The answer is 3/7." gives 3/7.0).
      bool digit_before = i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9';
      bool digit_after = i + 1 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '9';
      if (s[i] == '.' && digit_before && !digit_after) out += '0';
    }
  }
  return out;
}

// normalize_latex removes units ("12\text{ cm}" -> "12") with regexes anchored at the end of
// the text, and an environment's content is not stripped first: with whitespace before the
// closing delimiter ("$$ 12\text{ cm} $$", "[ 5\mbox{ m} ]") the unit stays, and the value is
// a product with unit symbols that equals no MATH gold (the text too differs from the gold's).
bool keeps_unit(std::string_view content) {
  std::string_view s = py::strip(content);
  bool trailing_space = !s.empty() && s.data() + s.size() != content.data() + content.size();
  if (!trailing_space) return false;
  for (std::string_view cmd : {"\\text{", "\\mbox{", "\\textnormal{"}) {
    std::size_t p = s.find(cmd);
    // A group that is the whole answer ("\text{even}") is the answer, not a unit.
    bool whole = p == 0 && s.find('}') == s.size() - 1;
    if (p != std::string_view::npos && !whole) return true;
  }
  return false;
}

// An environment's content as normalize_latex(boxed="all") leaves it: the boxes' contents where
// it holds a \boxed{} (the priority-50 environments always do).
std::string env_content(const Scanner& sc, const Match& m, const EnvSlot& e) {
  std::string_view content = sc.text(e.b, e.e);
  bool has_box = content.find("\\boxed") != std::string_view::npos || content.find("\\fbox") != std::string_view::npos;
  if (!m.boxed_env && !has_box) return std::string(content);
  return extract_boxed(content, false);
}

// The answer of one match; `found` is false where math_verify's parse of it fails.
MathExtraction match_answer(const Scanner& sc, const Match& m) {
  MathExtraction out{"", true, false, false, {}};
  if (!m.latex) {
    if (m.cap.number) return {number_text(sc, m.cap), true, true, m.cap.percent, {}};
    if (auto e = plain_expression(sc.text(m.cap.expr_b, m.cap.expr_e))) out = {*e, true, true, false, {}};
    return out;
  }
  if (m.boxed) {
    std::string content = extract_boxed(sc.text(m.start, m.end), true);
    if (latex_parses(content)) out = {content, true, true, false, {}};
    return out;
  }
  // Several environments become one set (extract_latex); if one fails to parse, the first
  // environment's value stands alone, and fails if that one does.
  std::vector<std::string> parts;
  bool all_parse = true;
  for (const EnvSlot& e : m.cap.env) {
    if (!e.set) continue;
    std::string part = env_content(sc, m, e);
    if (keeps_unit(part)) return {"", true, true, false, {}};  // a value no gold equals
    all_parse = all_parse && latex_parses(part);
    if (e.percent && !parts.empty()) part = "\\frac{" + part + "}{100}";  // convert_to_pct inside a set
    parts.push_back(part);
  }
  if (parts.empty() || !latex_parses(parts[0])) return out;
  bool first_percent = m.cap.env[0].percent;
  if (parts.size() == 1 || !all_parse) return {parts[0], true, true, first_percent, {}};
  if (first_percent) parts[0] = "\\frac{" + parts[0] + "}{100}";
  std::string joined;
  for (const auto& p : parts) {
    if (!joined.empty()) joined += ", ";
    joined += p;
  }
  return {joined, true, true, false, {}};
}

// The string extract_match reports for a match (math_verify keeps the first one as a fallback):
// the environments' LaTeX joined by " and ", the number as built, or the plain expression.
std::string match_text(const Scanner& sc, const Match& m) {
  if (!m.latex) return m.cap.number ? number_text(sc, m.cap) : std::string(sc.text(m.cap.expr_b, m.cap.expr_e));
  if (m.boxed) return extract_boxed(sc.text(m.start, m.end), true);
  std::string out;
  for (const EnvSlot& e : m.cap.env) {
    if (!e.set) continue;
    std::string content = env_content(sc, m, e);
    if (keeps_unit(content)) return "";  // its text keeps the unit the gold's loses
    if (!out.empty()) out += " and ";
    out += py::strip(content);
  }
  return out;
}

}  // namespace

MathExtraction math_free_text_answer(std::string_view text) {
  Scanner sc(text);
  std::string fallback;
  bool first = true;
  for (int prio : kPriorities) {
    for (const Match& m : sc.group(prio)) {
      if (first) fallback = match_text(sc, m);
      first = false;
      MathExtraction a = match_answer(sc, m);
      a.fallback = fallback;
      if (a.found) return a;
    }
  }
  return {"", true, false, false, fallback};
}

}  // namespace hrm::tasks
