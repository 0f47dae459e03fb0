// A synthetic instruction corpus: multi-step arithmetic word problems whose responses are short worked
// solutions ending in `\boxed{answer}` (the answer format the GSM8K/MATH scorers extract), written as
// training JSONL ({"instruction", "response", "condition"}), or as a benchmark in the GSM8K schema
// ({"question", "answer": "... #### n"}). Deterministic for a seed; `difficulty` picks easier problems
// (one or two + / - steps on small numbers) that a tiny model learns within minutes on a CPU.
//
// It can also plant verbatim copies of given benchmark-style questions (a "planted leak"): the
// contamination scan of the demo must find exactly those. Leaked rows keep the question text byte
// for byte as the instruction; their response is the row's answer when it has one.
// Not for: realistic data, or anything the evaluation scores as a benchmark.
//
// Example:
//   hrm::SyntheticOptions o;  o.n = 1000;  o.seed = 1;
//   for (const auto& s : hrm::make_synthetic_corpus(o)) out << hrm::to_jsonl(s) << "\n";
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace hrm {

struct SyntheticSample {
  std::string instruction, response, condition;
  bool leaked = false;  // a planted benchmark question
};

struct LeakQuestion {
  std::string question;
  std::string answer;  // "" when the row has none
};

// Levels of SyntheticOptions::difficulty.
constexpr int kMinDifficulty = 1, kMaxDifficulty = 3;

struct SyntheticOptions {
  int64_t n = 1000;                 // generated word problems
  uint64_t seed = 0;
  // 1: one + or - on numbers below 10 (answers 1..18); 2: + then - (or - then +) on numbers up to 20;
  // 3 (default): the four multi-step templates (+, -, *, /; answers up to a few hundred).
  int difficulty = kMaxDifficulty;
  std::string condition = "synth,cot";  // the condition the evaluation uses for GSM8K/MATH (DESIGN §4)
  std::vector<LeakQuestion> leaks;  // questions to plant
  int64_t leak_count = 0;           // copies planted in all (cycling through `leaks`)
};

// n + leak_count samples; leaked ones at seed-determined positions. Throws hrm::Error on a difficulty
// outside [kMinDifficulty, kMaxDifficulty].
std::vector<SyntheticSample> make_synthetic_corpus(const SyntheticOptions& opts);

// The answer in the last `\boxed{...}` of a synthetic response. Throws hrm::Error when there is none.
std::string boxed_answer(const std::string& response);
// The sample as one GSM8K-schema JSONL line (no trailing newline): "question" the instruction,
// "answer" the worked solution without its box, then "\n#### " and the boxed answer.
std::string to_gsm8k_jsonl(const SyntheticSample& s);

// Benchmark-style JSONL: the question is the first present of "question", "problem", "instruction",
// "text"; the answer the first of "answer", "solution", "response". Throws hrm::Error naming the
// file and line on a row without a question.
std::vector<LeakQuestion> read_leak_questions(const std::filesystem::path& path);

// One JSONL line (no trailing newline), keys instruction, response, condition.
std::string to_jsonl(const SyntheticSample& s);

}  // namespace hrm
