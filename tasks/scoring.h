// Answer extraction and scoring rules of the reference evaluation (internal to tasks/).
//
// Each function mirrors one piece of sapientinc/HRM-Text evaluation/benchmarks.py and
// utils/functions.py, or of lm-evaluation-harness lm_eval/tasks/drop/utils.py for DROP, and is
// exposed here so the parity tests can call it directly. Suites (suites.cpp) compose them.
// Not for prompt building or data loading.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hrm::tasks {

// utils/functions.py last_boxed_only_string: the content of the last `\boxed` (else last
// `\fbox`), from the first '{' after it to its matching '}', stripped; nullopt when unbalanced.
std::optional<std::string> last_boxed_only_string(std::string_view text);

// GSM8k._extract_answer: last non-empty boxed content (else the whole text), without ',' and '$',
// stripped, then int(float(.)). Returns the integer's decimal text, or nullopt when invalid.
std::optional<std::string> gsm8k_extract(std::string_view generation);
// GSM8k._extract_truth: int(answer.split("####")[-1].strip().replace(",", "")).
std::optional<std::int64_t> gsm8k_gold(std::string_view answer);

// StandardMCQBenchmark: generation.strip().upper() must be one of the first n_choices letters.
std::optional<char> mcq_extract(std::string_view generation, std::size_t n_choices);

// DROP (lm-eval drop/utils.py): one gold answer is a tuple of spans.
using DropAnswer = std::vector<std::string>;
struct DropScore {
  double em = 0;
  double f1 = 0;
};
std::string drop_normalize(std::string_view answer);  // _normalize
// get_metrics(predicted, gold) for a list of predicted spans against one gold tuple.
DropScore drop_metrics(const std::vector<std::string>& predicted, const DropAnswer& gold);
// process_results(doc, [prediction]): max over the non-blank gold answers.
DropScore drop_score(std::string_view prediction, const std::vector<DropAnswer>& golds);

// MATH: the answer judged for one generation. benchmarks.py takes the last `\boxed{}`/`\fbox{}`
// content (last_boxed_only_string); when there is none it counts the item invalid and lets
// math_verify.parse find an answer in the whole text (math_free_text_answer). `found` is false
// when math_verify would extract nothing: such a reply is never correct. `percent`: the answer
// was followed by a percent sign or word outside LaTeX ("50%", "$50$ percent"), which
// math_verify turns into answer * 1/100 (convert_to_pct). `answer` is empty (with `found`) where
// math_verify extracts a value no gold equals (a number times a unit symbol). `fallback` (free
// text only): the text of the first match math_verify tried, which verify() also compares as a
// string with the gold (empty: never equal).
struct MathExtraction {
  std::string answer;
  bool invalid = false;
  bool found = true;
  bool percent = false;
  std::string fallback;
};
MathExtraction math_extract(std::string_view generation);
// math_verify.parse on a reply without a closed \boxed{} (priorities, "answer" anchors, LaTeX
// environments, numbers: see math_free_text.cpp): the answer as text for math_equivalent.
MathExtraction math_free_text_answer(std::string_view text);
// The reference's MATH verdict on one generation: the extracted answer is equivalent to the gold.
bool math_correct(std::string_view gold, const MathExtraction& extraction);
// Mathematical equivalence of two answers (LaTeX, without \boxed), approximating math_verify.
bool math_equivalent(std::string_view gold, std::string_view prediction);

}  // namespace hrm::tasks
