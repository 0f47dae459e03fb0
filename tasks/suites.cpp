// The five suites: loading their JSONL files, building prompts byte-exactly as the reference,
// scoring and aggregating. Protocol source: sapientinc/HRM-Text evaluation/benchmarks.py (prompt
// builders, extraction), evaluation/config/hrm_benchmarking.yaml (conditions, context lengths,
// special shots), evaluation/engines.py + simple_inference_engine.py (max_tokens defaults to
// max_context; prompts are .strip()-ed). Data layout: shared/data/benchmarks/MANIFEST.md.
// Not for extraction rules themselves (scoring.h) nor for the CLI (cli/cmd_tasks.cpp).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "common/error.h"
#include "tasks/jsonl.h"
#include "tasks/pytext.h"
#include "tasks/scoring.h"
#include "tasks/task.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace hrm::tasks {
namespace {

namespace fs = std::filesystem;

// hrm_benchmarking.yaml: generation_config.max_context 3072 by default, 4096 for MMLU and ARC.
constexpr int kMaxContextFreeform = 3072;
constexpr int kMaxContextMcq = 4096;
// benchmarks.py StandardMCQBenchmark.generation_overrides: {"max_tokens": 1}.
constexpr int kMcqMaxNewTokens = 1;
// engines.py SimpleEngine.generate: max_tokens None -> max_context (bounded by the context).
constexpr int kFreeformMaxNewTokens = kMaxContextFreeform;

// benchmarks.py MMLU(num_shots=5) and hrm_benchmarking.yaml special_shots.
constexpr int kMmluShots = 5;
constexpr std::string_view kMmluShortSubject = "high_school_european_history";
constexpr int kMmluShortSubjectShots = 3;
// benchmarks.py ARC(num_shots=25), shots from the first rows of the validation split.
constexpr int kArcShots = 25;
// benchmarks.py DROP(num_shots=3).
constexpr int kDropShots = 3;

// Official split sizes (MANIFEST.md table; the datasets' cards).
constexpr std::size_t kGsm8kTestRows = 1319;
constexpr std::size_t kMathTestRows = 5000;
constexpr std::size_t kDropValidationRows = 9536;
constexpr std::size_t kMmluTestRows = 14042;
constexpr std::size_t kMmluDevRows = 285;
constexpr std::size_t kArcTestRows = 1172;

// benchmarks.py DROP.EXAMPLES, verbatim (protocol data).
const char* const kDropExemplars[kDropShots] = {
    "To start the season, the Lions traveled south to Tampa, Florida to take on the Tampa Bay Buccaneers. "
    "The Lions scored first in the first quarter with a 23-yard field goal by Jason Hanson. The Buccaneers "
    "tied it up with a 38-yard field goal by Connor Barth, then took the lead when Aqib Talib intercepted a "
    "pass from Matthew Stafford and ran it in 28 yards. The Lions responded with a 28-yard field goal. In the "
    "second quarter, Detroit took the lead with a 36-yard touchdown catch by Calvin Johnson, and later added "
    "more points when Tony Scheffler caught an 11-yard TD pass. Tampa Bay responded with a 31-yard field goal "
    "just before halftime. The second half was relatively quiet, with each team only scoring one touchdown. "
    "First, Detroit's Calvin Johnson caught a 1-yard pass in the third quarter. The game's final points came "
    "when Mike Williams of Tampa Bay caught a 5-yard pass. The Lions won their regular season opener for the "
    "first time since 2007\nQ: How many points did the buccaneers need to tie in the first?\nA: 3",
    "Trying to snap a two-game skid, the Bills flew to Gillette Stadium for a Week 3 divisional fight with the "
    "New England Patriots. In the first quarter, QB J. P. Losman was immediately injured on the first "
    "offensive play of the game. He would finish the series, but ended up on the bench for the rest of the "
    "game. After New England took the lead with kicker Stephen Gostkowski's 24-yard field goal, rookie QB "
    "Trent Edwards played the rest of the game for Buffalo. The Bills would get their only score of the game "
    "as RB Marshawn Lynch got an 8-yard TD run, and a Rian Lindell extra point put the Bills ahead "
    "surprisingly 7-3. However, in the second quarter, the Patriots were able to open up their running game "
    "when Bills rookie standout Paul Posluszny was lost due to a broken arm. This left passing lanes open, and "
    "for the rest of the game, the Patriots dominated. QB Tom Brady's 8-yard TD pass to TE Benjamin Watson and "
    "a 3-yard TD pass to WR Randy Moss made it 17-7 at the half. In the third quarter, New England continued "
    "its conquest with Brady's 4-yard TD pass to WR Jabar Gaffney and RB Sammy Morris' 4-yard TD run. In the "
    "fourth quarter, the Patriots ended the day with Brady and Moss hooking up with each other again on a "
    "45-yard TD pass.\nQ: How many games had the Bills won before this game?\nA: 0",
    "The French king, John II, had been held captive in England. The Treaty of Br\xC3\xA9tigny set his ransom "
    "at 3 million crowns and allowed for hostages to be held in lieu of John. The hostages included two of his "
    "sons, several princes and nobles, four inhabitants of Paris, and two citizens from each of the nineteen "
    "principal towns of France. While these hostages were held, John returned to France to try and raise "
    "funds to pay the ransom. In 1362 John's son Louis of Anjou, a hostage in English-held Calais, escaped "
    "captivity. So, with his stand-in hostage gone, John felt honor-bound to return to captivity in England. "
    "The French crown had been at odds with Navarre since 1354, and in 1363 the Navarrese used the captivity "
    "of John II in London and the political weakness of the Dauphin to try to seize power. Although there was "
    "no formal treaty, Edward III supported the Navarrese moves, particularly as there was a prospect that he "
    "might gain control over the northern and western provinces as a consequence. With this in mind, Edward "
    "deliberately slowed the peace negotiations. In 1364, John II died in London, while still in honourable "
    "captivity. Charles V succeeded him as king of France. On 7 May 1364, one month after the dauphin's "
    "accession and three days before his coronation as Charles V, the Navarrese suffered a crushing defeat "
    "at the Battle of Cocherel.\nQ: How many years before Navarrase used the captivity of John II?\nA: 9",
};

std::size_t limit_of(const LoadOptions& o) { return o.limit ? *o.limit : static_cast<std::size_t>(-1); }

void check_rows(const std::string& file, std::size_t got, std::size_t official, const LoadOptions& o) {
  if (got == official || !o.warn_on_row_count) return;
  if (o.limit && got == *o.limit) return;  // a --limit asked for exactly this many
  std::fprintf(stderr, "warning: %s: %zu rows, the official split has %zu\n", file.c_str(), got, official);
}

std::string require_file(const fs::path& data_dir, const std::string& rel) {
  fs::path p = data_dir / rel;
  if (!fs::exists(p)) throw Error(cat(p.string(), ": missing (expected the layout of shared/data/benchmarks/MANIFEST.md)"));
  return p.string();
}

Metric mean_metric(const std::string& name, const std::vector<double>& xs) {
  // Undefined values (no samples; a standard error from one sample) are NaN, written as null.
  Metric m{name, std::nan(""), std::nan("")};
  if (xs.empty()) return m;
  double sum = 0;
  for (double x : xs) sum += x;
  double mean = sum / static_cast<double>(xs.size());
  double ss = 0;
  for (double x : xs) ss += (x - mean) * (x - mean);
  m.value = mean;
  // Standard error of the mean with the sample standard deviation (lm-eval's mean_stderr).
  if (xs.size() > 1) m.stderr_ = std::sqrt(ss / static_cast<double>(xs.size() - 1)) / std::sqrt(static_cast<double>(xs.size()));
  return m;
}

double metric_value(const SampleScore& s, std::string_view name) {
  for (const auto& [k, v] : s.metrics)
    if (k == name) return v;
  HRM_CHECK(false, "sample has no metric ", name);
  return 0;
}

// Aggregates a fixed list of per-sample metrics as plain means.
Aggregate mean_aggregate(const SuiteInfo& info, std::span<const SampleScore> scores, std::size_t n_missing,
                         std::initializer_list<const char*> names) {
  Aggregate a;
  a.suite = info.name;
  a.n_scored = scores.size();
  a.n_missing = n_missing;
  for (const char* name : names) {
    std::vector<double> xs;
    xs.reserve(scores.size());
    for (const auto& s : scores) xs.push_back(metric_value(s, name));
    a.metrics.push_back(mean_metric(name, xs));
  }
  return a;
}

std::string strip_copy(std::string_view s) { return std::string(py::strip(s)); }

// ---------------------------------------------------------------------------------------- GSM8K

class Gsm8k final : public Suite {
 public:
  Gsm8k(const fs::path& dir, const LoadOptions& o) {
    info_ = {"gsm8k", {"synth", "cot"}, 0, kFreeformMaxNewTokens, kMaxContextFreeform, kGsm8kTestRows, "gsm8k/test.jsonl"};
    std::string file = require_file(dir, info_.eval_file);
    for_each_row(file, [&](const Row& r) {
      Item it{r.string("question"), r.string("answer"), 0};
      auto gold = gsm8k_gold(it.answer);
      if (!gold) throw Error(r.where("answer") + ": expected '#### <integer>' at the end");
      it.gold = *gold;
      items_.push_back(std::move(it));
    }, limit_of(o));
    check_rows(file, items_.size(), info_.official_rows, o);
  }
  const SuiteInfo& info() const override { return info_; }
  std::size_t size() const override { return items_.size(); }
  Request request(std::size_t i) const override {
    return {strip_copy(items_.at(i).question), info_.conditions, info_.max_new_tokens, info_.max_context};
  }
  std::string question_text(std::size_t i) const override { return items_.at(i).question; }
  std::string target(std::size_t i) const override { return std::to_string(items_.at(i).gold); }
  std::string gold_generation(std::size_t i) const override { return "\\boxed{" + target(i) + "}"; }
  SampleScore score(std::size_t i, std::string_view gen) const override {
    SampleScore s;
    s.target = target(i);
    s.extracted = gsm8k_extract(gen);
    bool ok = s.extracted && *s.extracted == s.target;
    s.metrics = {{"acc", ok ? 1.0 : 0.0}, {"invalid", s.extracted ? 0.0 : 1.0}};
    return s;
  }
  Aggregate aggregate(std::span<const SampleScore> s, std::size_t missing) const override {
    return mean_aggregate(info_, s, missing, {"acc", "invalid"});
  }

 private:
  struct Item {
    std::string question, answer;
    std::int64_t gold;
  };
  SuiteInfo info_;
  std::vector<Item> items_;
};

// ----------------------------------------------------------------------------------------- MATH

class MathSuite final : public Suite {
 public:
  MathSuite(const fs::path& dir, const LoadOptions& o) {
    info_ = {"math", {"synth", "cot"}, 0, kFreeformMaxNewTokens, kMaxContextFreeform, kMathTestRows, "math/test.jsonl"};
    std::string file = require_file(dir, info_.eval_file);
    for_each_row(file, [&](const Row& r) {
      auto gold = last_boxed_only_string(r.string("solution"));
      // benchmarks.py MATH: assert last_boxed_only_string(solution) is not None.
      if (!gold) throw Error(r.where("solution") + ": expected a \\boxed{...} answer");
      items_.push_back({r.string("problem"), *gold});
    }, limit_of(o));
    check_rows(file, items_.size(), info_.official_rows, o);
  }
  const SuiteInfo& info() const override { return info_; }
  std::size_t size() const override { return items_.size(); }
  Request request(std::size_t i) const override {
    return {strip_copy(items_.at(i).problem), info_.conditions, info_.max_new_tokens, info_.max_context};
  }
  std::string question_text(std::size_t i) const override { return items_.at(i).problem; }
  std::string target(std::size_t i) const override { return items_.at(i).gold; }
  std::string gold_generation(std::size_t i) const override { return "\\boxed{" + target(i) + "}"; }
  SampleScore score(std::size_t i, std::string_view gen) const override {
    SampleScore s;
    s.target = target(i);
    MathExtraction ex = math_extract(gen);
    if (!ex.invalid) s.extracted = ex.answer;
    bool ok = math_correct(s.target, ex);
    s.metrics = {{"acc", ok ? 1.0 : 0.0}, {"invalid", ex.invalid ? 1.0 : 0.0}};
    return s;
  }
  Aggregate aggregate(std::span<const SampleScore> s, std::size_t missing) const override {
    return mean_aggregate(info_, s, missing, {"acc", "invalid"});
  }

 private:
  struct Item {
    std::string problem, gold;
  };
  SuiteInfo info_;
  std::vector<Item> items_;
};

// ----------------------------------------------------------------------------------------- DROP

// lm-eval drop/utils.py parse_answer for one structured answer {number, date{day,month,year}, spans}.
DropAnswer parse_structured_answer(const Row& ans) {
  std::string number = ans.string("number");
  if (!number.empty()) return {number};
  std::vector<std::string> spans = ans.strings("spans");
  if (!spans.empty()) return spans;
  Row date = ans.object("date");
  std::string joined = date.string("day") + " " + date.string("month") + " " + date.string("year");
  return {strip_copy(joined)};
}

// lm-eval get_answers: the answer, then each validated answer, de-duplicated in order.
std::vector<DropAnswer> structured_answers(const Row& r) {
  std::vector<DropAnswer> out;
  auto add = [&](DropAnswer a) {
    if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(std::move(a));
  };
  add(parse_structured_answer(r.object("answer")));
  Row va = r.object("validated_answers");
  // The Hub stores validated_answers column-wise: {"number": [...], "date": [...], "spans": [[...]]}.
  const auto& numbers = va.value()["number"];
  if (!va.has("number") || !numbers.IsArray()) throw Error(va.where("validated_answers.number") + ": expected an array");
  const auto& dates = va.value()["date"];
  const auto& spans = va.value()["spans"];
  for (rapidjson::SizeType i = 0; i < numbers.Size(); ++i) {
    rapidjson::Document tmp;
    auto& alloc = tmp.GetAllocator();
    rapidjson::Value one(rapidjson::kObjectType);
    one.AddMember("number", rapidjson::Value(numbers[i], alloc), alloc);
    if (va.has("spans") && spans.IsArray() && i < spans.Size()) {
      one.AddMember("spans", rapidjson::Value(spans[i], alloc), alloc);
    } else {
      throw Error(va.where("validated_answers.spans") + ": expected one entry per validated answer");
    }
    if (va.has("date") && dates.IsArray() && i < dates.Size()) {
      one.AddMember("date", rapidjson::Value(dates[i], alloc), alloc);
    } else if (va.has("date") && dates.IsObject()) {
      // Column-wise dates: {"day": [...], "month": [...], "year": [...]}.
      rapidjson::Value d(rapidjson::kObjectType);
      for (const char* k : {"day", "month", "year"}) {
        if (!dates.HasMember(k) || !dates[k].IsArray() || i >= dates[k].Size())
          throw Error(va.where(std::string("validated_answers.date.") + k) + ": expected an array entry per answer");
        d.AddMember(rapidjson::StringRef(k), rapidjson::Value(dates[k][i], alloc), alloc);
      }
      one.AddMember("date", d, alloc);
    } else {
      throw Error(va.where("validated_answers.date") + ": expected one entry per validated answer");
    }
    add(parse_structured_answer(Row(one, "validated_answers", r.line())));
  }
  return out;
}

class Drop final : public Suite {
 public:
  Drop(const fs::path& dir, const LoadOptions& o) {
    info_ = {"drop", {"direct"}, kDropShots, kFreeformMaxNewTokens, kMaxContextFreeform, kDropValidationRows, ""};
    // The EleutherAI/drop schema is the reference's input; the simple-evals export is the
    // substitute shipped in shared/ (MANIFEST.md, DROP).
    bool structured = fs::exists(dir / "drop/validation.jsonl");
    info_.eval_file = structured ? "drop/validation.jsonl" : "drop/validation_simple_evals.jsonl";
    std::string file = require_file(dir, info_.eval_file);
    for_each_row(file, [&](const Row& r) {
      Item it{r.string("passage"), r.string("question"), {}};
      if (structured) {
        it.answers = structured_answers(r);
      } else {
        // De-duplicated in order, as lm-eval's get_answers does: 8 rows repeat a flattened string.
        for (auto& a : r.strings("answers")) {
          DropAnswer one{std::move(a)};
          if (std::find(it.answers.begin(), it.answers.end(), one) == it.answers.end()) it.answers.push_back(std::move(one));
        }
        if (it.answers.empty()) throw Error(r.where("answers") + ": expected at least one answer");
      }
      items_.push_back(std::move(it));
    }, limit_of(o));
    check_rows(file, items_.size(), info_.official_rows, o);
    for (int k = 0; k < kDropShots; ++k) prefix_ += std::string(kDropExemplars[k]) + "\n\n";
  }
  const SuiteInfo& info() const override { return info_; }
  std::size_t size() const override { return items_.size(); }
  Request request(std::size_t i) const override {
    const Item& it = items_.at(i);
    std::string prompt = prefix_ + it.passage + "\nQ: " + it.question + "\nA:";
    return {strip_copy(prompt), info_.conditions, info_.max_new_tokens, info_.max_context};
  }
  std::string question_text(std::size_t i) const override { return items_.at(i).passage + "\n" + items_.at(i).question; }
  std::string target(std::size_t i) const override {
    std::string out;
    for (const auto& a : items_.at(i).answers) {
      if (!out.empty()) out += " | ";
      for (std::size_t k = 0; k < a.size(); ++k) out += (k ? ", " : "") + a[k];
    }
    return out;
  }
  std::string gold_generation(std::size_t i) const override {
    for (const auto& a : items_.at(i).answers) {
      if (a.empty() || py::strip(a[0]).empty()) continue;
      std::string joined;
      for (std::size_t k = 0; k < a.size(); ++k) joined += (k ? " " : "") + a[k];
      return joined;
    }
    return "";
  }
  SampleScore score(std::size_t i, std::string_view gen) const override {
    SampleScore s;
    s.target = target(i);
    // benchmarks.py DROP.compute_metrics passes [text.strip()].
    std::string pred = strip_copy(gen);
    s.extracted = pred;
    DropScore d = drop_score(pred, items_.at(i).answers);
    s.metrics = {{"em", d.em}, {"f1", d.f1}};
    return s;
  }
  Aggregate aggregate(std::span<const SampleScore> s, std::size_t missing) const override {
    return mean_aggregate(info_, s, missing, {"em", "f1"});
  }

 private:
  struct Item {
    std::string passage, question;
    std::vector<DropAnswer> answers;
  };
  SuiteInfo info_;
  std::string prefix_;
  std::vector<Item> items_;
};

// ------------------------------------------------------------------------------------ MCQ (MMLU, ARC)

struct McqDoc {
  std::string query;
  std::vector<std::string> choices;
  std::size_t gold = 0;
};

// benchmarks.py _format_mcq: letters by position; query and choices stripped.
std::string format_mcq(const McqDoc& d, bool include_gold) {
  std::string text = strip_copy(d.query) + "\n";
  for (std::size_t k = 0; k < d.choices.size(); ++k) {
    text += static_cast<char>('A' + k);
    text += ". " + strip_copy(d.choices[k]) + "\n";
  }
  if (include_gold) return text + "Answer: " + static_cast<char>('A' + d.gold);
  return text + "Answer:";
}

// benchmarks.py _construct_mcq_prompt.
std::string construct_mcq_prompt(const McqDoc& target, std::span<const McqDoc> shots) {
  std::string prompt;
  for (const auto& s : shots) prompt += format_mcq(s, true) + "\n\n";
  return prompt + format_mcq(target, false);
}

std::string mcq_question_text(const McqDoc& d) {
  std::string t = d.query;
  for (const auto& c : d.choices) t += "\n" + c;
  return t;
}

SampleScore score_mcq(const McqDoc& d, std::string_view gen, std::string group) {
  SampleScore s;
  s.target = std::string(1, static_cast<char>('A' + d.gold));
  s.group = std::move(group);
  auto letter = mcq_extract(gen, d.choices.size());
  double acc = 0;
  if (!letter) {
    // An invalid reply is credited 1/len(valid_set) (chance level).
    acc = 1.0 / static_cast<double>(d.choices.size());
  } else {
    s.extracted = std::string(1, *letter);
    acc = *s.extracted == s.target ? 1.0 : 0.0;
  }
  s.metrics = {{"acc", acc}, {"invalid", letter ? 0.0 : 1.0}};
  return s;
}

constexpr std::size_t kMaxChoices = 26;  // letters A–Z

McqDoc mmlu_doc(const Row& r) {
  McqDoc d{r.string("question"), r.strings("choices"), 0};
  std::int64_t a = r.integer("answer");
  if (d.choices.empty() || d.choices.size() > kMaxChoices) throw Error(r.where("choices") + ": expected 1 to 26 choices");
  if (a < 0 || static_cast<std::size_t>(a) >= d.choices.size())
    throw Error(r.where("answer") + cat(": expected an index into choices (0..", d.choices.size() - 1, "), got ", a));
  d.gold = static_cast<std::size_t>(a);
  return d;
}

class Mmlu final : public Suite {
 public:
  Mmlu(const fs::path& dir, const LoadOptions& o) {
    info_ = {"mmlu", {"direct"}, kMmluShots, kMcqMaxNewTokens, kMaxContextMcq, kMmluTestRows, "mmlu/test.jsonl"};
    std::string dev = require_file(dir, "mmlu/dev.jsonl");
    std::size_t n_dev = for_each_row(dev, [&](const Row& r) { shots_[r.string("subject")].push_back(mmlu_doc(r)); });
    LoadOptions dev_opts = o;
    dev_opts.limit.reset();
    check_rows(dev, n_dev, kMmluDevRows, dev_opts);
    std::string file = require_file(dir, info_.eval_file);
    for_each_row(file, [&](const Row& r) {
      std::string subject = r.string("subject");
      if (!shots_.count(subject)) throw Error(r.where("subject") + ": '" + subject + "' has no rows in mmlu/dev.jsonl");
      docs_.push_back(mmlu_doc(r));
      subjects_.push_back(std::move(subject));
    }, limit_of(o));
    check_rows(file, docs_.size(), info_.official_rows, o);
  }
  const SuiteInfo& info() const override { return info_; }
  std::size_t size() const override { return docs_.size(); }
  std::size_t shots_for(const std::string& subject) const {
    std::size_t k = subject == kMmluShortSubject ? kMmluShortSubjectShots : kMmluShots;
    return std::min(k, shots_.at(subject).size());
  }
  Request request(std::size_t i) const override {
    const auto& all = shots_.at(subjects_.at(i));
    std::span<const McqDoc> shots(all.data(), shots_for(subjects_[i]));
    return {strip_copy(construct_mcq_prompt(docs_.at(i), shots)), info_.conditions, info_.max_new_tokens, info_.max_context};
  }
  std::string question_text(std::size_t i) const override { return mcq_question_text(docs_.at(i)); }
  std::string target(std::size_t i) const override { return std::string(1, static_cast<char>('A' + docs_.at(i).gold)); }
  std::string gold_generation(std::size_t i) const override { return " " + target(i); }
  SampleScore score(std::size_t i, std::string_view gen) const override { return score_mcq(docs_.at(i), gen, subjects_.at(i)); }
  Aggregate aggregate(std::span<const SampleScore> scores, std::size_t missing) const override;

 private:
  SuiteInfo info_;
  std::map<std::string, std::vector<McqDoc>> shots_;
  std::vector<McqDoc> docs_;
  std::vector<std::string> subjects_;
};

// MMLU: the reference reports the macro average over subjects (compute_benchmark_micro_macro_avg,
// despite its name, returns only the macro average). Its standard error treats subjects as strata:
// SE = sqrt(sum_s SE_s^2) / S with SE_s the within-subject stderr of the mean (docs/SCORING.md).
Aggregate Mmlu::aggregate(std::span<const SampleScore> scores, std::size_t missing) const {
  Aggregate a = mean_aggregate(info_, scores, missing, {"acc", "invalid"});
  a.metrics[0].name = "acc_micro";
  a.metrics[1].name = "invalid_micro";
  std::map<std::string, std::pair<std::vector<double>, std::vector<double>>> by_subject;
  for (const auto& s : scores) {
    auto& [acc, inv] = by_subject[s.group];
    acc.push_back(metric_value(s, "acc"));
    inv.push_back(metric_value(s, "invalid"));
  }
  Metric acc{"acc", 0, 0}, inv{"invalid", 0, 0};
  double var_acc = 0, var_inv = 0;
  for (const auto& [subject, v] : by_subject) {
    Metric sa = mean_metric("acc", v.first), si = mean_metric("invalid", v.second);
    a.groups.push_back({subject, v.first.size(), sa.value, si.value});
    acc.value += sa.value;
    inv.value += si.value;
    // A one-item subject has no within-subject variance estimate; it contributes 0.
    if (std::isfinite(sa.stderr_)) var_acc += sa.stderr_ * sa.stderr_;
    if (std::isfinite(si.stderr_)) var_inv += si.stderr_ * si.stderr_;
  }
  if (by_subject.empty()) {
    acc.value = inv.value = acc.stderr_ = inv.stderr_ = std::nan("");
  } else {
    double n = static_cast<double>(by_subject.size());
    acc.value /= n;
    inv.value /= n;
    acc.stderr_ = std::sqrt(var_acc) / n;
    inv.stderr_ = std::sqrt(var_inv) / n;
  }
  a.metrics.insert(a.metrics.begin(), {acc, inv});
  return a;
}

McqDoc arc_doc(const Row& r) {
  Row choices = r.object("choices");
  McqDoc d{r.string("question"), choices.strings("text"), 0};
  std::vector<std::string> labels = choices.strings("label");
  std::string key = r.string("answerKey");
  if (labels.size() != d.choices.size())
    throw Error(r.where("choices.label") + cat(": expected one label per choice (", d.choices.size(), "), got ", labels.size()));
  if (d.choices.empty() || d.choices.size() > kMaxChoices) throw Error(r.where("choices.text") + ": expected 1 to 26 choices");
  auto it = std::find(labels.begin(), labels.end(), key);
  // The gold letter is the answer's position (MANIFEST.md, ARC): numeric labels are re-lettered.
  if (it == labels.end()) throw Error(r.where("answerKey") + ": '" + key + "' is not one of the choice labels");
  d.gold = static_cast<std::size_t>(it - labels.begin());
  return d;
}

class Arc final : public Suite {
 public:
  Arc(const fs::path& dir, const LoadOptions& o) {
    info_ = {"arc", {"direct"}, kArcShots, kMcqMaxNewTokens, kMaxContextMcq, kArcTestRows, "arc_challenge/test.jsonl"};
    std::string val = require_file(dir, "arc_challenge/validation.jsonl");
    for_each_row(val, [&](const Row& r) { shots_.push_back(arc_doc(r)); }, kArcShots);
    if (shots_.size() < static_cast<std::size_t>(kArcShots))
      throw Error(cat(val, ": ", shots_.size(), " rows, expected at least ", kArcShots, " few-shot exemplars"));
    std::string file = require_file(dir, info_.eval_file);
    for_each_row(file, [&](const Row& r) { docs_.push_back(arc_doc(r)); }, limit_of(o));
    check_rows(file, docs_.size(), info_.official_rows, o);
  }
  const SuiteInfo& info() const override { return info_; }
  std::size_t size() const override { return docs_.size(); }
  Request request(std::size_t i) const override {
    return {strip_copy(construct_mcq_prompt(docs_.at(i), shots_)), info_.conditions, info_.max_new_tokens, info_.max_context};
  }
  std::string question_text(std::size_t i) const override { return mcq_question_text(docs_.at(i)); }
  std::string target(std::size_t i) const override { return std::string(1, static_cast<char>('A' + docs_.at(i).gold)); }
  std::string gold_generation(std::size_t i) const override { return " " + target(i); }
  SampleScore score(std::size_t i, std::string_view gen) const override { return score_mcq(docs_.at(i), gen, ""); }
  Aggregate aggregate(std::span<const SampleScore> s, std::size_t missing) const override {
    return mean_aggregate(info_, s, missing, {"acc", "invalid"});
  }

 private:
  SuiteInfo info_;
  std::vector<McqDoc> shots_;
  std::vector<McqDoc> docs_;
};

}  // namespace

std::vector<std::string> suite_names() { return {"mmlu", "gsm8k", "math", "drop", "arc"}; }

std::string canonical_suite_name(std::string_view name) {
  std::string n = py::lower(name);
  for (char& c : n)
    if (c == '-') c = '_';
  if (n == "mmlu") return "mmlu";
  if (n == "gsm8k") return "gsm8k";
  if (n == "math" || n == "hendrycks_math" || n == "minerva_math") return "math";
  if (n == "drop") return "drop";
  if (n == "arc" || n == "arc_challenge" || n == "arc_c") return "arc";
  throw Error(cat("unknown suite '", name, "': expected one of mmlu, gsm8k, math, drop, arc (or arc_challenge)"));
}

std::unique_ptr<Suite> load_suite(std::string_view name, const std::filesystem::path& data_dir, const LoadOptions& o) {
  std::string n = canonical_suite_name(name);
  if (!fs::is_directory(data_dir)) throw Error(cat(data_dir.string(), ": data directory not found"));
  if (n == "mmlu") return std::make_unique<Mmlu>(data_dir, o);
  if (n == "gsm8k") return std::make_unique<Gsm8k>(data_dir, o);
  if (n == "math") return std::make_unique<MathSuite>(data_dir, o);
  if (n == "drop") return std::make_unique<Drop>(data_dir, o);
  return std::make_unique<Arc>(data_dir, o);
}

std::vector<std::string> question_texts(std::string_view suite, const std::filesystem::path& data_dir) {
  LoadOptions o;
  auto s = load_suite(suite, data_dir, o);
  std::vector<std::string> out;
  out.reserve(s->size());
  for (std::size_t i = 0; i < s->size(); ++i) out.push_back(s->question_text(i));
  return out;
}

std::string prompt_hash(std::string_view prompt) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(XXH3_64bits(prompt.data(), prompt.size())));
  return buf;
}

}  // namespace hrm::tasks
