// MATH answer extraction and mathematical equivalence, approximating math_verify (the reference's
// judge, which parses LaTeX into sympy). See scoring.h for the contract and docs/SCORING.md for
// the measured agreement and every known disagreement.
//
// How: both answers are normalised (\dfrac/\tfrac -> \frac, \left/\right, spacing commands,
// units in \text{}/\mbox{}, degrees, \%, \$, trailing '.'), then parsed into a small expression
// tree: numbers, symbols, + - * / ^, implicit products, \frac, \sqrt, functions, factorial,
// \pi, \infty, and at the top level sets, tuples, intervals, unions, matrices and equations.
// Scalars are equal when they agree numerically (to 6 decimals, like math_verify's rounding) at
// several points for their free symbols; lists element-wise (sets in any order). Text that does
// not parse is compared as normalised text. Not a computer algebra system.
#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "tasks/pytext.h"
#include "tasks/scoring.h"

namespace hrm::tasks {
namespace {

using Complex = std::complex<double>;

// math_verify.verify(float_rounding=6): numbers are compared after rounding to 6 decimals.
constexpr double kAbsTolerance = 1e-6;
constexpr double kRelTolerance = 1e-9;
// Without decimal literals sympy compares exact values: 4036082/4036081 is not its reciprocal
// although both round to 1.000000. Floating-point noise stays far below this.
constexpr double kExactRelTolerance = 1e-12;
// Points at which expressions with free symbols are compared.
constexpr int kTrials = 3;
// Parser recursion limit: inputs are model output, so nesting depth is untrusted.
constexpr int kMaxDepth = 200;
// Longer answers are compared as text: std::regex recurses per character matched, and a final
// answer this long is not a formula math_verify would parse either.
constexpr std::size_t kMaxFormulaChars = 1000;

// ---------------------------------------------------------------------------- normalisation

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  for (std::size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
}

// Index of the '}' matching the '{' at `open`, or npos.
std::size_t matching_brace(const std::string& s, std::size_t open) {
  int depth = 0;
  for (std::size_t i = open; i < s.size(); ++i) {
    if (s[i] == '{') ++depth;
    if (s[i] == '}' && --depth == 0) return i;
  }
  return std::string::npos;
}

struct Normalized {
  std::string text;
  bool percent = false;
  bool unparseable = false;  // math_verify keeps e.g. "13." as a string
};

bool only_space(const std::string& s) { return py::strip(s).empty(); }

// Removes \text{..}/\mbox{..}/\textbf{..} groups: units when other content remains, else the
// group's own text (e.g. "\text{even}" -> "even").
std::string strip_text_groups(std::string s) {
  for (const char* cmd : {"\\textbf", "\\textit", "\\mathrm", "\\mathbf", "\\textnormal", "\\text", "\\mbox",
                          "\\operatorname"}) {
    std::string c(cmd);
    for (std::size_t p = s.find(c + "{"); p != std::string::npos; p = s.find(c + "{")) {
      std::size_t open = p + c.size();
      std::size_t close = matching_brace(s, open);
      if (close == std::string::npos) break;
      std::string inner = s.substr(open + 1, close - open - 1);
      std::string rest = s.substr(0, p) + s.substr(close + 1);
      // A one-letter group is a variable ("\text{x}"), unless a power follows: "144 \mbox{ m}^3" is 144.
      bool letter = py::strip(inner).size() == 1 && std::isalpha(static_cast<unsigned char>(py::strip(inner)[0])) &&
                    !(close + 1 < s.size() && s[close + 1] == '^');
      bool keep = only_space(rest) || letter || c == "\\mathrm" || c == "\\mathbf" || c == "\\operatorname" ||
                  c == "\\textbf" || c == "\\textit";
      std::size_t after = close + 1;
      if (!keep) {
        // A dropped unit takes its power along: "45 \text{ units}^2" is 45 to math_verify.
        static const std::regex kUnitPower(R"(^\^(\{\d\}|\d))");
        std::smatch m;
        std::string tail = s.substr(after, 4);
        if (std::regex_search(tail, m, kUnitPower)) after += static_cast<std::size_t>(m.length(0));
      }
      s = s.substr(0, p) + (keep ? inner : std::string(" ")) + s.substr(after);
    }
  }
  return s;
}

Normalized normalize(std::string_view in) {
  Normalized n;
  std::string s(py::strip(in));
  if (s.size() > kMaxFormulaChars) {
    n.unparseable = true;
    n.text = s;
    return n;
  }
  // math_verify reads "\frac{8}{17}." as 8/17 but keeps "13.", "\pi.", "\sqrt{3}." or
  // "\dfrac{1}{16}." as unparsed text that equals nothing else.
  static const std::regex kFracPeriod(R"(-?\\frac\{\d+\}\{\d+\}\.)");
  bool frac_period = !s.empty() && s.back() == '.' && std::regex_match(s, kFracPeriod);
  for (const char* w : {"\\left", "\\right", "\\bigl", "\\bigr", "\\Bigl", "\\Bigr", "\\big", "\\Big", "\\displaystyle"}) {
    // Only whole commands: "\left(" but not "\leftarrow".
    std::string c(w);
    for (std::size_t p = s.find(c); p != std::string::npos; p = s.find(c, p)) {
      std::size_t e = p + c.size();
      if (e < s.size() && std::isalpha(static_cast<unsigned char>(s[e]))) {
        p = e;
        continue;
      }
      s.erase(p, c.size());
    }
  }
  // Protect matrix row separators ("\\") from the spacing commands below ("\ ").
  replace_all(s, "\\\\", "\x01");
  replace_all(s, "\\dfrac", "\\frac");
  replace_all(s, "\\tfrac", "\\frac");
  replace_all(s, "\\cfrac", "\\frac");
  // "\approx 8.24" is 8.24 to math_verify.
  if (s.starts_with("\\approx")) s.erase(0, 7);
  // Mixed numbers: latex2sympy reads "1\frac{4}{5}" and "2 \frac12" as 9/5 and 5/2 (a sign
  // applies to the whole: "-1\frac{4}{5}" is -9/5), not as products.
  static const std::regex kMixed(R"((^|[^\w.}])(-?)(\d+)\s*\\frac(?:\{(\d+)\}\{(\d+)\}|(\d)(\d)))");
  if (s.find("\\frac") != std::string::npos) s = std::regex_replace(s, kMixed, "$1$2($3+\\frac{$4$6}{$5$7})");
  // math_normalization.py removes "\!" with the spaces after it ("25,\!000" -> "25,000").
  static const std::regex kNegSpace(R"(\\!\s*)");
  if (s.find("\\!") != std::string::npos) s = std::regex_replace(s, kNegSpace, "");
  replace_all(s, "^{\\circ}", "");
  replace_all(s, "^\\circ", "");
  replace_all(s, "\\circ", "");
  replace_all(s, "\\$", "");
  replace_all(s, "$", "");
  // A whole-answer \text{...} holding a list, a time or a date is text to math_verify
  // ("\text{C,E}" != "C,E", "\text{4:30 p.m.}" != "4:30 p.m.").
  static const std::regex kTextAnswer(R"(\s*\\text\{(?=[^{}]*[A-Za-z])[^{}]*[, :][^{}]*\}\s*)");
  if (s.find("\\text{") != std::string::npos && std::regex_match(s, kTextAnswer)) {
    n.unparseable = true;
    n.text = s;
    return n;
  }
  // "12\text{ and }13", "7, -2, and -5", "-2 \text{ or } -12": "and"/"or" separate list items.
  static const std::regex kAnd(R"(\s*,?\s*(\\text\{\s*(and|or)\s*\}|\b(and|or)\b)\s*)");
  if (s.find("and") != std::string::npos || s.find("or") != std::string::npos) s = std::regex_replace(s, kAnd, ", ");
  s = strip_text_groups(s);
  // Trailing unit words (latex2sympy2_extended math_normalization.py `units`, applied twice,
  // before spacing commands are expanded: "10\;edges" keeps its unit there).
  static const std::regex kUnits(
      R"((\d|\}|\s)\s*(?:children ticket|sq inch|m square|sq m|cu cm|no change|feet|sue|digit|pound|meal|edge|)"
      R"(student|multiple|east|degree|kmph|mph|ft|deg|mile|monkey|prime|ratio|rd|o|gm|lb|tile|per|dm|lt|gain|ab|)"
      R"(way|west|t|h|men|soldier|pie|bc|excess|st|inches|noon|cent|by|gal|kmh|c|acre|rise|th|sq|mark|l|toy|)"
      R"(coin|gallon|profit|minw|yr|women|am|pm|hr|square|are|rupee|rounds|cubic|cc|mtr|s|ohm|number|day|hour|)"
      R"(minute|min|second|man|woman|sec|cube|mt|mp|hectare|more|unit|rs|kg|g|month|km|m|cm|mm|apple|liter|loss|)"
      R"(yard|pure|year|increase|decrease|d|less|Surface|litre|metre|meter|inch)(?:s|es)?\s*$)");
  // The pattern is anchored at the end, so only the tail can match; scanning the whole answer with
  // ~150 alternatives at every position is what made this slow.
  constexpr std::size_t kUnitTail = 64;
  auto ends_in_letter = [](const std::string& x) {
    std::string_view t = py::strip(x);
    return !t.empty() && std::isalpha(static_cast<unsigned char>(t.back()));
  };
  for (int k = 0; k < 2 && ends_in_letter(s); ++k) {
    std::size_t cut = s.size() > kUnitTail ? s.size() - kUnitTail : 0;
    std::string t = s.substr(0, cut) + std::regex_replace(s.substr(cut), kUnits, "$1");
    if (!only_space(t)) s = t;
  }
  for (const char* sp : {"\\,", "\\;", "\\:", "\\ ", "~", "\\quad", "\\qquad"}) replace_all(s, sp, " ");
  replace_all(s, "\x01", "\\\\");
  replace_all(s, "\\%", "%");
  s = std::string(py::strip(s));
  while (!s.empty() && s.back() == '%') {
    n.percent = true;
    s.pop_back();
    s = std::string(py::strip(s));
  }
  if (!s.empty() && s.back() == '.') {
    if (frac_period) {
      s.pop_back();
    } else {
      n.unparseable = true;
      n.text = s;
      return n;
    }
  }
  // Number bases: math_verify drops the subscript of "1011_2".
  static const std::regex kBase(R"((\d)_(\{\d+\}|\d+))");
  if (s.find('_') != std::string::npos) s = std::regex_replace(s, kBase, "$1");
  s = std::string(py::strip(s));
  // "1,000" and "25,000.5": thousands separators, not a list.
  static const std::regex kThousands(R"(\s*-?\d{1,3}(,\d{3})+(\.\d+)?\s*)");
  if (s.find(',') != std::string::npos && std::regex_match(s, kThousands))
    s.erase(std::remove_if(s.begin(), s.end(), [](char c) { return c == ',' || std::isspace(static_cast<unsigned char>(c)); }), s.end());
  n.text = std::string(py::strip(s));
  return n;
}

// -------------------------------------------------------------------------------- expressions

struct Node;
using NodePtr = std::shared_ptr<Node>;
struct Node {
  enum class Kind { Num, Sym, Add, Sub, Mul, Div, Pow, Neg, Func, Fact } kind;
  double num = 0;
  bool decimal = false;  // a literal written with a decimal point
  std::string name;  // symbol or function name
  std::vector<NodePtr> kids;
};

NodePtr make(Node::Kind k, std::vector<NodePtr> kids, std::string name = {}) {
  auto n = std::make_shared<Node>();
  n->kind = k;
  n->kids = std::move(kids);
  n->name = std::move(name);
  return n;
}

struct ParseError {};

struct Token {
  enum class T { Num, Letter, Cmd, Op, End } t;
  std::string s;
};

std::vector<Token> tokenize(const std::string& s) {
  std::vector<Token> out;
  std::size_t i = 0;
  while (i < s.size()) {
    char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (std::isdigit(static_cast<unsigned char>(c)) ||
               (c == '.' && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])))) {
      std::size_t j = i;
      while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
      if (j < s.size() && s[j] == '.') {
        ++j;
        while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
      }
      out.push_back({Token::T::Num, s.substr(i, j - i)});
      i = j;
    } else if (c == '\\') {
      std::size_t j = i + 1;
      while (j < s.size() && std::isalpha(static_cast<unsigned char>(s[j]))) ++j;
      if (j == i + 1 && j < s.size()) ++j;  // "\{", "\}", "\|"
      out.push_back({Token::T::Cmd, s.substr(i, j - i)});
      i = j;
    } else if (std::isalpha(static_cast<unsigned char>(c))) {
      out.push_back({Token::T::Letter, std::string(1, c)});
      ++i;
    } else if (static_cast<unsigned char>(c) >= 0x80) {
      std::size_t j = i;
      py::next_code_point(s, j);
      out.push_back({Token::T::Letter, s.substr(i, j - i)});
      i = j;
    } else {
      out.push_back({Token::T::Op, std::string(1, c)});
      ++i;
    }
  }
  out.push_back({Token::T::End, ""});
  return out;
}

const std::set<std::string>& functions() {
  static const std::set<std::string> f = {"\\sin", "\\cos", "\\tan", "\\cot", "\\sec", "\\csc", "\\log", "\\ln",
                                          "\\exp", "\\arcsin", "\\arccos", "\\arctan", "\\sinh", "\\cosh", "\\tanh"};
  return f;
}

class Parser {
 public:
  explicit Parser(std::vector<Token> toks) : t_(std::move(toks)) {}

  NodePtr parse_all() {
    NodePtr e = expr();
    if (peek().t != Token::T::End) throw ParseError{};
    return e;
  }

 private:
  const Token& peek() const { return t_[i_]; }
  bool is_op(const char* op) const { return peek().t == Token::T::Op && peek().s == op; }
  bool is_cmd(const char* c) const { return peek().t == Token::T::Cmd && peek().s == c; }
  void expect_op(const char* op) {
    if (!is_op(op)) throw ParseError{};
    ++i_;
  }
  struct DepthGuard {
    explicit DepthGuard(int& d) : d_(d) {
      if (++d_ > kMaxDepth) throw ParseError{};
    }
    ~DepthGuard() { --d_; }
    int& d_;
  };

  NodePtr expr() {
    DepthGuard g(depth_);
    NodePtr left = term();
    while (is_op("+") || is_op("-") || is_cmd("\\pm")) {
      bool minus = is_op("-");
      ++i_;
      NodePtr right = term();
      left = make(minus ? Node::Kind::Sub : Node::Kind::Add, {left, right});
    }
    return left;
  }

  bool starts_atom() const {
    const Token& k = peek();
    if (k.t == Token::T::Num || k.t == Token::T::Letter) return true;
    if (k.t == Token::T::Op) return k.s == "(" || k.s == "{" || k.s == "[" || k.s == "|";
    if (k.t == Token::T::Cmd)
      return k.s == "\\frac" || k.s == "\\sqrt" || k.s == "\\pi" || k.s == "\\infty" || functions().count(k.s) ||
             k.s == "\\alpha" || k.s == "\\beta" || k.s == "\\theta" || k.s == "\\phi" || k.s == "\\lambda";
    return false;
  }

  NodePtr term() {
    DepthGuard g(depth_);
    NodePtr left = unary();
    for (;;) {
      if (is_op("*") || is_cmd("\\cdot") || is_cmd("\\times")) {
        ++i_;
        left = make(Node::Kind::Mul, {left, unary()});
      } else if (is_op("/") || is_cmd("\\div") || is_op(":")) {  // latex2sympy reads "3:2" as 3/2
        ++i_;
        left = make(Node::Kind::Div, {left, unary()});
      } else if (starts_atom() && !is_op("|")) {
        left = make(Node::Kind::Mul, {left, power()});  // implicit product: "2x", "1 4 3 0"
      } else {
        return left;
      }
    }
  }

  NodePtr unary() {
    DepthGuard g(depth_);
    if (is_op("-")) {
      ++i_;
      return make(Node::Kind::Neg, {unary()});
    }
    if (is_op("+")) {
      ++i_;
      return unary();
    }
    return power();
  }

  NodePtr power() {
    DepthGuard g(depth_);
    NodePtr base = postfix();
    if (is_op("^")) {
      ++i_;
      NodePtr exp;
      if (is_op("-")) {
        ++i_;
        exp = make(Node::Kind::Neg, {arg()});
      } else {
        exp = arg();
      }
      return make(Node::Kind::Pow, {base, exp});
    }
    return base;
  }

  NodePtr postfix() {
    NodePtr a = atom();
    while (is_op("!")) {
      ++i_;
      a = make(Node::Kind::Fact, {a});
    }
    return a;
  }

  // A LaTeX argument: "{...}" or a single token (one digit of a number: "\frac12").
  NodePtr arg() {
    DepthGuard g(depth_);
    if (is_op("{")) {
      ++i_;
      NodePtr e = expr();
      expect_op("}");
      return e;
    }
    Token& k = t_[i_];
    if (k.t == Token::T::Num && k.s.size() > 1) {
      auto n = make(Node::Kind::Num, {});
      n->num = k.s[0] - '0';
      k.s.erase(0, 1);
      return n;
    }
    return atom();
  }

  NodePtr atom() {
    DepthGuard g(depth_);
    const Token k = peek();
    switch (k.t) {
      case Token::T::Num: {
        ++i_;
        auto n = make(Node::Kind::Num, {});
        n->num = std::strtod(k.s.c_str(), nullptr);
        n->decimal = k.s.find('.') != std::string::npos;
        return n;
      }
      case Token::T::Letter: {
        ++i_;
        std::string name = py::lower(k.s);
        if (is_op("_")) {  // subscripted symbol: a_1, x_{12}
          ++i_;
          if (is_op("{")) {
            std::size_t close = i_;
            int depth = 0;
            for (; close < t_.size(); ++close) {
              if (t_[close].t == Token::T::Op && t_[close].s == "{") ++depth;
              if (t_[close].t == Token::T::Op && t_[close].s == "}" && --depth == 0) break;
              if (close > i_) name += t_[close].s;
            }
            if (close >= t_.size()) throw ParseError{};
            i_ = close + 1;
          } else {
            if (peek().t == Token::T::End) throw ParseError{};  // "x_" at the end
            name += "_" + peek().s;
            ++i_;
          }
        }
        return make(Node::Kind::Sym, {}, name);
      }
      case Token::T::Op: {
        if (k.s == "(" || k.s == "{" || k.s == "[") {
          ++i_;
          NodePtr e = expr();
          expect_op(k.s == "(" ? ")" : k.s == "{" ? "}" : "]");
          return e;
        }
        if (k.s == "|") {
          ++i_;
          NodePtr e = expr();
          expect_op("|");
          return make(Node::Kind::Func, {e}, "abs");
        }
        throw ParseError{};
      }
      case Token::T::Cmd: {
        ++i_;
        if (k.s == "\\frac") {
          NodePtr a = arg();
          NodePtr b = arg();
          return make(Node::Kind::Div, {a, b});
        }
        if (k.s == "\\sqrt") {
          NodePtr index;
          if (is_op("[")) {
            ++i_;
            index = expr();
            expect_op("]");
          }
          NodePtr radicand = arg();
          auto half = make(Node::Kind::Num, {});
          half->num = 2;
          return make(Node::Kind::Pow, {radicand, make(Node::Kind::Div, {make_one(), index ? index : half})});
        }
        if (k.s == "\\pi" || k.s == "\\infty") return make(Node::Kind::Sym, {}, k.s);
        if (functions().count(k.s)) {
          NodePtr exponent;
          if (is_op("^")) {  // \sin^2 x
            ++i_;
            exponent = arg();
          }
          NodePtr a = is_op("(") || is_op("{") ? atom() : power();
          NodePtr f = make(Node::Kind::Func, {a}, k.s);
          return exponent ? make(Node::Kind::Pow, {f, exponent}) : f;
        }
        if (k.s.size() > 2 && std::isalpha(static_cast<unsigned char>(k.s[1])) && k.s != "\\cup" && k.s != "\\in")
          return make(Node::Kind::Sym, {}, k.s);  // Greek letters and other named symbols
        throw ParseError{};
      }
      case Token::T::End:
        break;
    }
    throw ParseError{};
  }

  static NodePtr make_one() {
    auto n = make(Node::Kind::Num, {});
    n->num = 1;
    return n;
  }

  std::vector<Token> t_;
  std::size_t i_ = 0;
  int depth_ = 0;
};

// Value of a symbol at trial `trial`: deterministic, distinct per name, away from special points.
double symbol_value(const std::string& name, int trial) {
  std::uint64_t h = 1469598103934665603ull + static_cast<std::uint64_t>(trial) * 7919u;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return 0.5 + static_cast<double>(h % 100000) / 40000.0;  // in [0.5, 3.0)
}

Complex eval(const NodePtr& n, int trial) {
  using K = Node::Kind;
  switch (n->kind) {
    case K::Num:
      return n->num;
    case K::Sym:
      if (n->name == "\\pi") return M_PI;
      if (n->name == "\\infty") return HUGE_VAL;
      if (n->name == "e") return M_E;
      if (n->name == "i") return Complex(0, 1);
      return symbol_value(n->name, trial);
    case K::Add:
      return eval(n->kids[0], trial) + eval(n->kids[1], trial);
    case K::Sub:
      return eval(n->kids[0], trial) - eval(n->kids[1], trial);
    case K::Mul:
      return eval(n->kids[0], trial) * eval(n->kids[1], trial);
    case K::Div:
      return eval(n->kids[0], trial) / eval(n->kids[1], trial);
    case K::Neg:
      return -eval(n->kids[0], trial);
    case K::Pow: {
      Complex b = eval(n->kids[0], trial), e = eval(n->kids[1], trial);
      if (b.imag() == 0 && e.imag() == 0 && (b.real() >= 0 || e.real() == std::round(e.real())))
        return std::pow(b.real(), e.real());
      // Real odd roots of negatives (sympy's real_root is not assumed; principal root as sympy).
      return std::pow(b, e);
    }
    case K::Fact: {
      Complex a = eval(n->kids[0], trial);
      return std::tgamma(a.real() + 1);
    }
    case K::Func: {
      Complex a = eval(n->kids[0], trial);
      const std::string& f = n->name;
      if (f == "abs") return std::abs(a);
      if (f == "\\sin") return std::sin(a);
      if (f == "\\cos") return std::cos(a);
      if (f == "\\tan") return std::tan(a);
      if (f == "\\cot") return 1.0 / std::tan(a);
      if (f == "\\sec") return 1.0 / std::cos(a);
      if (f == "\\csc") return 1.0 / std::sin(a);
      if (f == "\\log" || f == "\\ln") return std::log(a);
      if (f == "\\exp") return std::exp(a);
      if (f == "\\arcsin") return std::asin(a);
      if (f == "\\arccos") return std::acos(a);
      if (f == "\\arctan") return std::atan(a);
      if (f == "\\sinh") return std::sinh(a);
      if (f == "\\cosh") return std::cosh(a);
      if (f == "\\tanh") return std::tanh(a);
      return std::nan("");
    }
  }
  return std::nan("");
}

void collect_symbols(const NodePtr& n, std::set<std::string>& out) {
  if (n->kind == Node::Kind::Sym && n->name != "\\pi" && n->name != "\\infty" && n->name != "e" && n->name != "i")
    out.insert(n->name);
  for (const auto& k : n->kids) collect_symbols(k, out);
}

bool has_decimal(const NodePtr& n) {
  if (n->decimal) return true;
  for (const auto& k : n->kids)
    if (has_decimal(k)) return true;
  return false;
}

bool close(Complex a, Complex b, bool exact) {
  auto finite = [](Complex z) { return std::isfinite(z.real()) && std::isfinite(z.imag()); };
  if (!finite(a) || !finite(b)) {
    if (std::isnan(a.real()) || std::isnan(b.real())) return false;
    return a == b;  // same infinity
  }
  double scale = std::max(std::abs(a), std::abs(b));
  if (exact) return std::abs(a - b) <= kExactRelTolerance * std::max(1.0, scale);
  return std::abs(a - b) <= kAbsTolerance + kRelTolerance * scale;
}

// ------------------------------------------------------------------------------- answer values

struct Answer {
  enum class Kind { Scalar, Set, Seq, Union, Equation, Text } kind = Kind::Text;
  NodePtr expr;                 // Scalar
  std::vector<Answer> items;    // Set, Seq, Union
  char open = 0, close = 0;     // Seq brackets
  std::string text;             // Text fallback (normalised)
  std::string lhs;              // "x" of "x = 5" / "x \in [a, b]": the value is the right side
  bool percent = false;
};

// Splits `s` at top-level occurrences of `sep` (outside (), [], {}).
std::vector<std::string> split_top(const std::string& s, const std::string& sep) {
  std::vector<std::string> parts;
  int depth = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\\' && i + 1 < s.size() && (s[i + 1] == '{' || s[i + 1] == '}')) {
      depth += s[i + 1] == '{' ? 1 : -1;
      ++i;
      continue;
    }
    if (c == '(' || c == '[' || c == '{') ++depth;
    if (c == ')' || c == ']' || c == '}') --depth;
    // An '=' of "!=", "<=", ">=" is not an equation's (math_verify's equation_split_regex).
    bool relation = sep == "=" && i > 0 && (s[i - 1] == '!' || s[i - 1] == '<' || s[i - 1] == '>');
    if (depth == 0 && !relation && s.compare(i, sep.size(), sep) == 0) {
      parts.push_back(s.substr(start, i - start));
      start = i + sep.size();
      i += sep.size() - 1;
    }
  }
  parts.push_back(s.substr(start));
  return parts;
}

// True when s[0] opens a bracket that closes exactly at s.back().
bool wraps_whole(const std::string& s) {
  int depth = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '(' || c == '[' || c == '{') ++depth;
    if (c == ')' || c == ']' || c == '}') --depth;
    if (depth == 0 && i + 1 < s.size()) return false;
  }
  return depth == 0;
}

std::string squash(std::string s) {
  std::string out;
  for (char c : py::lower(s))
    if (!std::isspace(static_cast<unsigned char>(c))) out += c;
  return out;
}

Answer parse_answer(const std::string& raw, int depth = 0);

Answer parse_list(const std::vector<std::string>& parts, Answer::Kind kind, int depth) {
  Answer a;
  a.kind = kind;
  for (const auto& p : parts) a.items.push_back(parse_answer(p, depth + 1));
  return a;
}

Answer parse_answer_inner(const std::string& raw, int depth);

// Every answer keeps its normalised text: answers of different shapes compare by it.
Answer parse_answer(const std::string& raw, int depth) {
  Answer a = parse_answer_inner(raw, depth);
  a.text = squash(std::string(py::strip(raw)));
  return a;
}

// latex2sympy's is_expr_of_only_symbols for the left side of an assignment: symbols (letters,
// optionally subscripted, or Greek letters) joined by products, sums or divisions, no number and
// no minus sign ("x", "AC", "a_{100}", "r_1r_2", "x + y + z"; not "2x", "a - b"). (e, i and \pi
// are constants to sympy, but an answer never assigns to them.)
bool only_symbols(const std::string& lhs) {
  static const std::regex kSymbols(
      R"(\s*(?:[A-Za-z]|\\(?:alpha|beta|gamma|delta|theta|lambda|mu|phi|psi|omega|sigma|tau|rho))(?:_(?:\{[^{}]*\}|\w))?)"
      R"((?:\s*(?:[+*/]|\\cdot)?\s*(?:[A-Za-z]|\\(?:alpha|beta|gamma|delta|theta|lambda|mu|phi|psi|omega|sigma|tau|rho))(?:_(?:\{[^{}]*\}|\w))?)*\s*)");
  return !lhs.empty() && lhs.size() < 40 && std::regex_match(lhs, kSymbols);
}

Answer parse_answer_inner(const std::string& raw, int depth) {
  Answer a;
  std::string s(py::strip(raw));
  a.text = squash(s);
  if (depth > kMaxDepth || s.empty()) return a;
  // "x \in [1, 2]" and "x = 5": the value is the right-hand side when the left is a symbol.
  for (const char* rel : {"\\in", "="}) {
    auto parts = split_top(s, rel);
    // "a = b = c": latex2sympy chains the relations, and verify() keeps the first left side and
    // the last right side (a list of equations, "x=1, y=2", is not a chain).
    bool chain = std::string(rel) == "=" && parts.size() > 2 && split_top(s, ",").size() == 1;
    if (parts.size() == 2 || chain) {
      std::string lhs(py::strip(parts.front()));
      static const std::regex kFunctionLhs(R"([a-zA-Z]\([a-zA-Z]\))");
      if (only_symbols(lhs) || std::regex_match(lhs, kFunctionLhs)) {
        Answer r = parse_answer(parts.back(), depth + 1);
        r.lhs = squash(lhs);
        return r;
      }
      if (std::string(rel) == "=") {  // a general equation: compared side by side
        Answer e;
        e.kind = Answer::Kind::Equation;
        e.items = {parse_answer(parts.front(), depth + 1), parse_answer(parts.back(), depth + 1)};
        return e;
      }
    }
  }
  auto unions = split_top(s, "\\cup");
  if (unions.size() > 1) return parse_list(unions, Answer::Kind::Union, depth);
  if (s.rfind("\\begin{pmatrix}", 0) == 0 || s.rfind("\\begin{bmatrix}", 0) == 0) {
    std::string body = s.substr(15);
    std::size_t end = body.rfind("\\end{");
    if (end == std::string::npos) return a;
    body = body.substr(0, end);
    std::vector<std::string> cells;
    for (auto& row : split_top(body, "\\\\"))
      for (auto& cell : split_top(row, "&")) cells.push_back(cell);
    Answer m = parse_list(cells, Answer::Kind::Seq, depth);
    m.open = '(';
    m.close = ')';
    return m;
  }
  if (s.size() >= 4 && s.rfind("\\{", 0) == 0 && s.compare(s.size() - 2, 2, "\\}") == 0)
    return parse_list(split_top(s.substr(2, s.size() - 4), ","), Answer::Kind::Set, depth);
  auto commas = split_top(s, ",");
  if (commas.size() > 1) return parse_list(commas, Answer::Kind::Set, depth);  // a bare list is a set
  char first = s.front(), last = s.back();
  if ((first == '(' || first == '[') && (last == ')' || last == ']') && wraps_whole(s)) {
    auto inner = split_top(s.substr(1, s.size() - 2), ",");
    if (inner.size() > 1) {
      Answer q = parse_list(inner, Answer::Kind::Seq, depth);
      q.open = first;
      q.close = last;
      return q;
    }
  }
  try {
    Parser p(tokenize(s));
    a.expr = p.parse_all();
    a.kind = Answer::Kind::Scalar;
  } catch (const ParseError&) {
    a.kind = Answer::Kind::Text;
  }
  return a;
}

bool has_infinity(const NodePtr& n) {
  if (n->kind == Node::Kind::Sym && n->name == "\\infty") return true;
  for (const auto& k : n->kids)
    if (has_infinity(k)) return true;
  return false;
}

bool scalar_equal(const NodePtr& g, const NodePtr& p, double pred_scale) {
  std::set<std::string> gs, ps;
  collect_symbols(g, gs);
  collect_symbols(p, ps);
  if (gs != ps) return false;
  bool exact = !has_decimal(g) && !has_decimal(p);
  auto infinite = [](Complex z) { return std::isinf(z.real()) || std::isinf(z.imag()); };
  for (int t = 0; t < (gs.empty() ? 1 : kTrials); ++t) {
    Complex a = eval(g, t), b = eval(p, t) * pred_scale;
    // A value past double range (2^{2018}) is not \infty: sympy compares such numbers exactly,
    // and two overflows must not compare equal.
    if ((infinite(a) || infinite(b)) && !(has_infinity(g) && has_infinity(p))) return false;
    if (!close(a, b, exact)) return false;
  }
  return true;
}

bool equal(const Answer& g, const Answer& p);

bool items_equal_ordered(const Answer& g, const Answer& p) {
  if (g.items.size() != p.items.size()) return false;
  for (std::size_t i = 0; i < g.items.size(); ++i)
    if (!equal(g.items[i], p.items[i])) return false;
  return true;
}

bool items_equal_unordered(const Answer& g, const Answer& p) {
  if (g.items.size() != p.items.size()) return false;
  std::vector<bool> used(p.items.size(), false);
  for (const auto& gi : g.items) {
    bool found = false;
    for (std::size_t j = 0; j < p.items.size() && !found; ++j)
      if (!used[j] && equal(gi, p.items[j])) used[j] = found = true;
    if (!found) return false;
  }
  return true;
}

bool equal(const Answer& g, const Answer& p) {
  using K = Answer::Kind;
  // "x = 3" and "t = 3" differ; "x = 3" and "3" do not (math_verify compares Eq to Eq only).
  if (!g.lhs.empty() && !p.lhs.empty() && g.lhs != p.lhs) return false;
  if (g.kind == K::Scalar && p.kind == K::Scalar) {
    // The same expression (spacing aside) is equal even where evaluation overflows.
    if (g.percent == p.percent) return g.text == p.text || scalar_equal(g.expr, p.expr, 1.0);
    // "X\%" is X * 1/100 to math_verify; its numeric comparison reads it as X only when both sides
    // are integer literals ("10\%" equals 10, not "7.2\%" 7.2 nor "-8\%" -8, a negation).
    auto integer = [](const NodePtr& n) { return n->kind == Node::Kind::Num && !n->decimal; };
    if (integer(g.expr) && integer(p.expr) && scalar_equal(g.expr, p.expr, 1.0)) return true;
    return scalar_equal(g.expr, p.expr, p.percent ? 0.01 : 100.0);
  }
  if (g.kind != p.kind) {
    // An equation against a gold that is not one: verify() keeps the prediction's right side
    // ("12 + 3 + 1 = 16" equals 16).
    if (p.kind == K::Equation && g.lhs.empty()) return equal(g, p.items[1]);
    // A bare list is compared with a tuple or an open interval element by element, in order:
    // "(1, 2, 3)" equals "1, 2, 3" but not "3, 2, 1" (math_verify's set/tuple comparison).
    auto paren = [](const Answer& a) { return a.kind == K::Seq && a.open == '(' && a.close == ')'; };
    if ((paren(g) && p.kind == K::Set) || (g.kind == K::Set && paren(p))) return items_equal_ordered(g, p);
    // A one-element set equals its element.
    if (g.kind == K::Set && g.items.size() == 1) return equal(g.items[0], p);
    if (p.kind == K::Set && p.items.size() == 1) return equal(g, p.items[0]);
    return g.text == p.text;
  }
  switch (g.kind) {
    case K::Set:
    case K::Union:
      return items_equal_unordered(g, p);
    case K::Seq:
      return g.open == p.open && g.close == p.close && items_equal_ordered(g, p);
    case K::Equation:
      return items_equal_ordered(g, p) || (equal(g.items[0], p.items[1]) && equal(g.items[1], p.items[0]));
    default:
      return g.text == p.text;
  }
}

// sympy's FiniteSet keeps one copy of equal elements: "3, 3" is {3}, which equals 3.
void dedupe_sets(Answer& a) {
  for (auto& item : a.items) dedupe_sets(item);
  if (a.kind != Answer::Kind::Set) return;
  std::vector<Answer> kept;
  for (auto& item : a.items) {
    bool dup = std::any_of(kept.begin(), kept.end(), [&](const Answer& k) { return equal(k, item); });
    if (!dup) kept.push_back(std::move(item));
  }
  a.items = std::move(kept);
}

Answer prepare(std::string_view s) {
  Normalized n = normalize(s);
  // latex2sympy fails on a trailing period ("13.", "\$ 10.", "(1, 2)."), and math_verify's parse of
  // "\boxed{X.}" then goes on to its free-text regexes over the whole string, which find a number
  // after a space ("\$ 10." is 10) or numeric fractions ("\frac{1}{2}, -\frac{1}{12}." is a
  // list); "13." has neither (the '{' before it is no anchor) and stays text.
  std::string_view stripped = py::strip(s);
  if (n.unparseable && stripped.ends_with('.') && stripped.size() <= kMaxFormulaChars) {
    MathExtraction free = math_free_text_answer("\\boxed{" + std::string(stripped) + "}");
    if (free.found && !free.answer.empty() && !py::strip(free.answer).ends_with('.')) {
      Answer a = prepare(free.answer);
      if (free.percent) a.percent = true;
      return a;
    }
  }
  if (n.unparseable) {
    Answer a;
    a.text = squash(n.text);
    return a;
  }
  Answer a = parse_answer(n.text);
  a.percent = n.percent;
  dedupe_sets(a);
  return a;
}

// The string comparison of verify() on math_verify's normalised strings, approximated by the
// string-only part of that normalisation: \dfrac/\tfrac, \left/\right, and "nits" (a leading
// ".6" is "0.6"). Not our value normalisation: "\frac{24}{5}." keeps its period there, and
// "15 , 600" its spaces.
bool same_string(std::string_view a, std::string_view b) {
  if (py::strip(a).empty() || py::strip(b).empty()) return false;
  auto key = [](std::string_view x) {
    std::string t(py::strip(x));
    replace_all(t, "\\dfrac", "\\frac");
    replace_all(t, "\\tfrac", "\\frac");
    replace_all(t, "\\left", "");
    replace_all(t, "\\right", "");
    if (!t.empty() && t[0] == '.') t.insert(t.begin(), '0');
    return t;
  };
  return key(a) == key(b);
}

}  // namespace

MathExtraction math_extract(std::string_view generation) {
  auto boxed = last_boxed_only_string(generation);
  if (boxed) return {*boxed, false, true, false, {}};
  // No braced box: benchmarks.py counts the item invalid and scores math_verify's own
  // extraction from the whole text.
  return math_free_text_answer(generation);
}

bool math_correct(std::string_view gold, const MathExtraction& extraction) {
  // verify() also compares the strings: the first match's text equal to the gold's counts even
  // when the values differ or did not parse ("62.8%" against 62.8).
  if (same_string(gold, extraction.fallback)) return true;
  if (!extraction.found) return false;
  if (!extraction.percent) return math_equivalent(gold, extraction.answer);
  // convert_to_pct gives answer * 1/100; math_verify's numeric comparison reads a percentage of
  // an integer as the integer too ("300%" equals 3 and 300, "-80%" equals -80). Otherwise only
  // the string fallback above can match the number as written ("62.8%" and 62.8).
  static const std::regex kInteger(R"(\s*-?\d+\s*)");
  if (std::regex_match(extraction.answer, kInteger) && math_equivalent(gold, extraction.answer)) return true;
  return math_equivalent(gold, "\\frac{" + extraction.answer + "}{100}");
}

bool math_equivalent(std::string_view gold, std::string_view prediction) {
  // verify() also compares the two normalised strings: equal strings count even where the values
  // do not compare ("05\!:\!00" is 5/0) or did not parse ("\dfrac{7}{5} + \dfrac{1}{5} i." and
  // "\frac{7}{5} + \frac{1}{5} i.").
  if (same_string(gold, prediction)) return true;
  Answer g = prepare(gold);
  Answer p = prepare(prediction);
  return equal(g, p);
}

}  // namespace hrm::tasks
