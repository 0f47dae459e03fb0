// `hrmbench make-task`: a synthetic task with a training split and a held-out test split, for
// showing that training learns (scripts/reproduce.sh, docs/TRAINING.md "Small-scale reproduction").
//
// It writes the training corpus as JSONL for `hrmbench train`, and a held-out benchmark in the
// GSM8K schema for `hrmbench run --suites gsm8k` — the real harness and scorer: exact match of the
// boxed answer. No test question occurs verbatim in the training split (the generator's template
// space is small at low difficulty, so collisions are dropped, and counted). baselines.json records
// what answering without reading the question scores: always the most frequent training answer, and
// the best constant answer picked with the test answers known (an upper bound on any such guess).
// Not for: planted leaks or tokenized output (`make-corpus`), or the demo's fixed pipeline
// (cmd_demo).
//
// Example:
//   hrmbench make-task --out task --train 20000 --test 300 --difficulty 1 --seed 1
//   -> task/corpus.jsonl, task/data/gsm8k/test.jsonl, task/baselines.json
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <unordered_set>

#include "cli/commands.h"
#include "common/error.h"
#include "runtime/synthetic.h"

namespace hrm::cli {
namespace {

namespace fs = std::filesystem;

// The held-out split's generator stream: another seed than the training split's.
constexpr uint64_t kTestSeedOffset = 1000;
// Candidates drawn per wanted test item before giving up (a template space smaller than the
// request).
constexpr int64_t kMaxDrawsPerItem = 50;

struct TaskArgs {
  std::string out, condition = "synth,cot";
  int64_t train = 20000, test = 300;
  int difficulty = 1;
  uint64_t seed = 1;
};

void write_lines(const fs::path& path, const std::vector<std::string>& lines) {
  std::ofstream out(path, std::ios::binary);
  if (!out) throw Error(cat(path.string(), ": cannot write"));
  for (const std::string& l : lines) out << l << "\n";
  if (!out) throw Error(cat(path.string(), ": write failed"));
}

void run_make_task(const TaskArgs& a) {
  if (a.train <= 0 || a.test <= 0)
    throw Error(cat("--train and --test must be positive, got ", a.train, ", ", a.test));
  SyntheticOptions o;
  o.n = a.train;
  o.seed = a.seed;
  o.difficulty = a.difficulty;
  o.condition = a.condition;
  const std::vector<SyntheticSample> train = make_synthetic_corpus(o);
  std::unordered_set<std::string> seen;
  std::map<std::string, int64_t> answers;
  for (const SyntheticSample& s : train) {
    seen.insert(s.instruction);
    ++answers[boxed_answer(s.response)];
  }
  // The test stream is prefix-stable (sample i does not depend on n), so drawing more never
  // reorders.
  o.seed = a.seed + kTestSeedOffset;
  std::vector<SyntheticSample> test;
  int64_t dropped = 0;
  for (int64_t draws = 2 * a.test; static_cast<int64_t>(test.size()) < a.test; draws *= 2) {
    if (draws > kMaxDrawsPerItem * a.test)
      throw Error(cat("difficulty ", a.difficulty, ": only ", test.size(), " of ", a.test,
                      " test questions are new to the training split; ask for fewer (--test) or "
                      "train on fewer"));
    o.n = draws;
    test.clear();
    dropped = 0;
    std::unordered_set<std::string> taken;
    for (SyntheticSample& s : make_synthetic_corpus(o)) {
      if (static_cast<int64_t>(test.size()) == a.test) break;
      if (seen.count(s.instruction) || !taken.insert(s.instruction).second) {
        ++dropped;
        continue;
      }
      test.push_back(std::move(s));
    }
  }

  // Answering without reading the question: the most frequent training answer (ties: the first in
  // string order), scored on the test split.
  std::string majority;
  int64_t majority_count = 0;
  for (const auto& [ans, count] : answers)
    if (count > majority_count) majority = ans, majority_count = count;
  int64_t majority_hits = 0;
  std::map<std::string, int64_t> test_answers;
  for (const SyntheticSample& s : test) {
    majority_hits += boxed_answer(s.response) == majority;
    ++test_answers[boxed_answer(s.response)];
  }
  // The best constant answer chosen with the test answers in hand: no guess that ignores the
  // question can score more.
  int64_t best_constant = 0;
  for (const auto& [ans, count] : test_answers) best_constant = std::max(best_constant, count);

  const fs::path dir(a.out), bench = dir / "data" / "gsm8k";
  fs::create_directories(bench);
  std::vector<std::string> lines;
  for (const SyntheticSample& s : train) lines.push_back(to_jsonl(s));
  write_lines(dir / "corpus.jsonl", lines);
  lines.clear();
  for (const SyntheticSample& s : test) lines.push_back(to_gsm8k_jsonl(s));
  write_lines(bench / "test.jsonl", lines);
  const double acc = static_cast<double>(majority_hits) / static_cast<double>(test.size());
  const double best = static_cast<double>(best_constant) / static_cast<double>(test.size());
  std::ofstream b(dir / "baselines.json");
  b << "{\"difficulty\": " << a.difficulty << ", \"seed\": " << a.seed
    << ", \"train\": " << train.size() << ", \"test\": " << test.size()
    << ", \"test_dropped_as_seen_or_repeated\": " << dropped
    << ", \"distinct_train_answers\": " << answers.size() << ", \"majority_answer\": \"" << majority
    << "\", \"majority_train_share\": "
    << static_cast<double>(majority_count) / static_cast<double>(train.size())
    << ", \"majority_test_acc\": " << acc << ", \"best_constant_test_acc\": " << best << "}\n";
  if (!b) throw Error(cat((dir / "baselines.json").string(), ": write failed"));
  std::fprintf(stderr,
               "wrote %zu training problems (difficulty %d) to %s, %zu held-out test items to %s "
               "(%lld candidates "
               "dropped: seen in training or repeated); always answering the most frequent "
               "training answer (%s) "
               "scores %.1f%% on the test items, the best constant answer %.1f%%\n",
               train.size(), a.difficulty, (dir / "corpus.jsonl").c_str(), test.size(),
               (bench / "test.jsonl").c_str(), static_cast<long long>(dropped), majority.c_str(),
               100.0 * acc, 100.0 * best);
}

}  // namespace

void add_synth_commands(CLI::App& app) {
  auto a = std::make_shared<TaskArgs>();
  auto* mt = app.add_subcommand(
      "make-task",
      "Write a synthetic arithmetic task: a training corpus (JSONL) and a held-out test "
      "set in the GSM8K schema that shares no question with it");
  mt->add_option("--out", a->out,
                 "Output directory: corpus.jsonl, data/gsm8k/test.jsonl, baselines.json")
      ->required();
  mt->add_option("--train", a->train, "Training problems")->capture_default_str();
  mt->add_option("--test", a->test, "Held-out test problems")->capture_default_str();
  mt->add_option(
        "--difficulty", a->difficulty,
        "1: one + or - on numbers below 10; 2: + and - on numbers up to 20; 3: the default "
        "multi-step problems of make-corpus")
      ->capture_default_str()
      ->check(CLI::Range(kMinDifficulty, kMaxDifficulty));
  mt->add_option("--seed", a->seed, "Seed (the test split uses seed + 1000)")
      ->capture_default_str();
  mt->add_option("--condition", a->condition, "Condition tags of every training sample")
      ->capture_default_str();
  mt->callback([a] { run_make_task(*a); });
}

}  // namespace hrm::cli
