// Extraction and scoring rules; see scoring.h. DROP follows lm-evaluation-harness
// lm_eval/tasks/drop/utils.py step for step (the reference calls its process_results).
#include "tasks/scoring.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "tasks/pytext.h"

namespace hrm::tasks {
namespace {

// Python's string.punctuation.
constexpr std::string_view kAsciiPunctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
// get_metrics rounds F1 with round(np.float64, 2).
constexpr double kF1RoundScale = 100.0;
// Exact search over assignments up to this many rows/columns, Hungarian beyond.
constexpr std::size_t kBruteForceMax = 7;

std::string remove_punc(const std::string& token) {
  if (py::parse_float(token)) return token;
  std::string out;
  for (char c : token)
    if (kAsciiPunctuation.find(c) == std::string_view::npos) out += c;
  return out;
}

std::string fix_number(const std::string& token) {
  auto f = py::parse_float(token);
  return f ? py::float_repr(*f) : token;
}

// re.sub(r"\b(a|an|the)\b", " ", text): a match is a maximal run of word characters that is
// exactly "a", "an" or "the".
std::string remove_articles(const std::string& text) {
  std::string out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t start = pos;
    std::size_t p = pos;
    if (!py::is_word_char(py::next_code_point(text, p))) {
      out.append(text, start, p - start);
      pos = p;
      continue;
    }
    std::size_t end = start;
    while (end < text.size()) {
      std::size_t q = end;
      if (!py::is_word_char(py::next_code_point(text, q))) break;
      end = q;
    }
    std::string_view word(text.data() + start, end - start);
    if (word == "a" || word == "an" || word == "the") {
      out += ' ';
    } else {
      out.append(word);
    }
    pos = end;
  }
  return out;
}

std::string white_space_fix(const std::string& text) {
  std::string out;
  for (auto w : py::split(text)) {
    if (!out.empty()) out += ' ';
    out.append(w);
  }
  return out;
}

using Bag = std::set<std::string>;

Bag to_bag(const std::string& normalized) {
  Bag b;
  for (auto w : py::split(normalized)) b.emplace(w);
  return b;
}

double compute_f1(const Bag& predicted, const Bag& gold) {
  std::size_t inter = 0;
  for (const auto& w : gold) inter += predicted.count(w);
  double precision = predicted.empty() ? 1.0 : static_cast<double>(inter) / static_cast<double>(predicted.size());
  double recall = gold.empty() ? 1.0 : static_cast<double>(inter) / static_cast<double>(gold.size());
  if (precision == 0.0 && recall == 0.0) return 0.0;
  return (2 * precision * recall) / (precision + recall);
}

bool match_numbers_if_present(const Bag& gold, const Bag& predicted) {
  Bag gold_numbers, predicted_numbers;
  for (const auto& w : gold)
    if (py::parse_float(w)) gold_numbers.insert(w);
  if (gold_numbers.empty()) return true;
  for (const auto& w : predicted)
    if (py::parse_float(w) && gold_numbers.count(w)) return true;
  return false;
}

// Best total of a one-to-one assignment of rows to columns (rows <= cols after transposing).
// Returns, per row of `scores`, the score of its assigned column (0 when unassigned).
std::vector<double> best_assignment(const std::vector<std::vector<double>>& scores, std::size_t cols) {
  std::size_t rows = scores.size();
  std::vector<double> per_row(rows, 0.0);
  if (rows == 0 || cols == 0) return per_row;
  if (std::max(rows, cols) <= kBruteForceMax) {
    // Enumerate injective maps from the smaller side into the larger one.
    bool rows_small = rows <= cols;
    std::size_t small = rows_small ? rows : cols, large = rows_small ? cols : rows;
    std::vector<std::size_t> perm(large);
    for (std::size_t i = 0; i < large; ++i) perm[i] = i;
    double best = -1;
    std::vector<double> best_rows(rows, 0.0);
    do {
      double total = 0;
      std::vector<double> cur(rows, 0.0);
      for (std::size_t k = 0; k < small; ++k) {
        std::size_t r = rows_small ? k : perm[k], c = rows_small ? perm[k] : k;
        cur[r] = scores[r][c];
        total += cur[r];
      }
      if (total > best) {
        best = total;
        best_rows = cur;
      }
    } while (std::next_permutation(perm.begin(), perm.end()));
    return best_rows;
  }
  // Hungarian algorithm (potentials, O(n^3)) on the square cost matrix -score.
  std::size_t n = std::max(rows, cols);
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> u(n + 1, 0), v(n + 1, 0);
  std::vector<std::size_t> p(n + 1, 0), way(n + 1, 0);
  auto cost = [&](std::size_t i, std::size_t j) { return (i < rows && j < cols) ? -scores[i][j] : 0.0; };
  for (std::size_t i = 1; i <= n; ++i) {
    p[0] = i;
    std::size_t j0 = 0;
    std::vector<double> minv(n + 1, inf);
    std::vector<bool> used(n + 1, false);
    do {
      used[j0] = true;
      std::size_t i0 = p[j0], j1 = 0;
      double delta = inf;
      for (std::size_t j = 1; j <= n; ++j) {
        if (used[j]) continue;
        double cur = cost(i0 - 1, j - 1) - u[i0] - v[j];
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      for (std::size_t j = 0; j <= n; ++j) {
        if (used[j]) {
          u[p[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (p[j0] != 0);
    do {
      std::size_t j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0);
  }
  for (std::size_t j = 1; j <= n; ++j)
    if (p[j] - 1 < rows && j - 1 < cols) per_row[p[j] - 1] = scores[p[j] - 1][j - 1];
  return per_row;
}

}  // namespace

std::optional<std::string> last_boxed_only_string(std::string_view s) {
  std::size_t idx = s.rfind("\\boxed");
  if (idx == std::string_view::npos) idx = s.rfind("\\fbox");
  if (idx == std::string_view::npos) return std::nullopt;
  std::size_t left = std::string_view::npos;
  long open = 0;
  for (std::size_t i = idx; i < s.size(); ++i) {
    if (s[i] == '{') {
      ++open;
      if (left == std::string_view::npos) left = i;
    } else if (s[i] == '}') {
      --open;
      if (open == 0) return std::string(py::strip(s.substr(left + 1, i - left - 1)));
    }
  }
  return std::nullopt;
}

std::optional<std::string> gsm8k_extract(std::string_view generation) {
  std::string text(generation);
  auto boxed = last_boxed_only_string(generation);
  if (boxed && !boxed->empty()) text = *boxed;  // `if boxed:` skips an empty box too
  std::string clean;
  for (char c : text)
    if (c != ',' && c != '$') clean += c;
  auto f = py::parse_float(clean);
  // int(float(x)) raises on inf (OverflowError) and nan (ValueError).
  if (!f || !std::isfinite(*f)) return std::nullopt;
  double t = std::trunc(*f);
  if (t == 0) return std::string("0");  // int(-0.0) == 0
  char buf[400];
  std::snprintf(buf, sizeof buf, "%.0f", t);  // exact decimal expansion, as Python's int
  return std::string(buf);
}

std::optional<std::int64_t> gsm8k_gold(std::string_view answer) {
  std::size_t pos = answer.rfind("####");
  std::string_view tail = pos == std::string_view::npos ? answer : answer.substr(pos + 4);
  std::string clean;
  for (char c : py::strip(tail))
    if (c != ',') clean += c;
  if (clean.empty()) return std::nullopt;
  std::size_t i = (clean[0] == '-' || clean[0] == '+') ? 1 : 0;
  if (i == clean.size()) return std::nullopt;
  for (std::size_t k = i; k < clean.size(); ++k)
    if (clean[k] < '0' || clean[k] > '9') return std::nullopt;
  try {
    return std::stoll(clean);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<char> mcq_extract(std::string_view generation, std::size_t n_choices) {
  std::string_view s = py::strip(generation);
  if (s.size() != 1) return std::nullopt;
  char c = s[0];
  if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  if (c < 'A' || static_cast<std::size_t>(c - 'A') >= n_choices) return std::nullopt;
  return c;
}

std::string drop_normalize(std::string_view answer) {
  // _tokenize: re.split(" |-", text).
  std::vector<std::string> tokens;
  std::string cur;
  for (char c : answer) {
    if (c == ' ' || c == '-') {
      tokens.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  tokens.push_back(cur);
  std::string out;
  for (const auto& t : tokens) {
    std::string tok = white_space_fix(remove_articles(fix_number(remove_punc(py::lower(t)))));
    if (py::strip(tok).empty()) continue;
    if (!out.empty()) out += ' ';
    out += tok;
  }
  return std::string(py::strip(out));
}

DropScore drop_metrics(const std::vector<std::string>& predicted, const DropAnswer& gold) {
  std::vector<std::string> pred_spans, gold_spans;
  std::vector<Bag> pred_bags, gold_bags;
  for (const auto& p : predicted) {
    pred_spans.push_back(drop_normalize(p));
    pred_bags.push_back(to_bag(pred_spans.back()));
  }
  for (const auto& g : gold) {
    gold_spans.push_back(drop_normalize(g));
    gold_bags.push_back(to_bag(gold_spans.back()));
  }
  DropScore out;
  std::set<std::string> ps(pred_spans.begin(), pred_spans.end()), gs(gold_spans.begin(), gold_spans.end());
  out.em = (ps == gs && pred_spans.size() == gold_spans.size()) ? 1.0 : 0.0;
  // _align_bags: scores[gold][pred], optimal assignment, mean over max(len(gold), len(pred)).
  std::vector<std::vector<double>> scores(gold_bags.size(), std::vector<double>(pred_bags.size(), 0.0));
  for (std::size_t g = 0; g < gold_bags.size(); ++g)
    for (std::size_t p = 0; p < pred_bags.size(); ++p)
      if (match_numbers_if_present(gold_bags[g], pred_bags[p])) scores[g][p] = compute_f1(pred_bags[p], gold_bags[g]);
  std::vector<double> per_gold = best_assignment(scores, pred_bags.size());
  std::size_t n = std::max(gold_bags.size(), pred_bags.size());
  if (n == 0) {
    out.f1 = std::nan("");  // np.mean of an empty array
    return out;
  }
  double sum = 0;
  for (double x : per_gold) sum += x;
  double mean = sum / static_cast<double>(n);
  // round(np.float64, 2) is numpy's rint(x * 100) / 100 (round half to even).
  out.f1 = std::nearbyint(mean * kF1RoundScale) / kF1RoundScale;
  return out;
}

DropScore drop_score(std::string_view prediction, const std::vector<DropAnswer>& golds) {
  DropScore best;
  std::vector<std::string> preds{std::string(prediction)};
  for (const auto& gold : golds) {
    DropScore s = drop_metrics(preds, gold);
    // process_results skips gold answers whose first span is blank.
    if (gold.empty() || py::strip(gold[0]).empty()) continue;
    best.em = std::max(best.em, s.em);
    best.f1 = std::max(best.f1, s.f1);
  }
  return best;
}

}  // namespace hrm::tasks
