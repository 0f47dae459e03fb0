// `hrmbench tasks list|show` and `hrmbench score`: inspect the benchmark suites and score a file of
// generations offline (DESIGN §8). Not the evaluation harness: nothing here runs a model.
//
// Example:
//   hrmbench tasks list
//   hrmbench tasks show gsm8k --index 0
//   hrmbench score gsm8k --generations gens.jsonl --out samples.jsonl > aggregate.json
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "common/error.h"
#include "tasks/jsonl.h"
#include "tasks/task.h"

namespace hrm::cli {
namespace {

namespace fs = std::filesystem;

// The checkout layout of DESIGN §3: the shared data sits beside the repository.
constexpr const char* kDefaultDataDir = "../shared/data/benchmarks";

fs::path resolve_data_dir(const std::string& given) {
  if (!given.empty()) return given;
  if (fs::is_directory(kDefaultDataDir)) return kDefaultDataDir;
  throw Error(cat("--data is required: no benchmark data at ", kDefaultDataDir, " (relative to the current directory)"));
}

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

void run_list(const std::string& data) {
  fs::path dir = resolve_data_dir(data);
  std::printf("%-6s %7s %8s  %-10s %5s %7s %7s  %s\n", "suite", "rows", "official", "condition", "shots", "new_tok",
              "context", "file");
  tasks::LoadOptions quiet;
  quiet.warn_on_row_count = false;
  for (const auto& name : tasks::suite_names()) {
    auto suite = tasks::load_suite(name, dir, quiet);
    const auto& info = suite->info();
    std::printf("%-6s %7zu %8zu  %-10s %5d %7d %7d  %s\n", name.c_str(), suite->size(), info.official_rows,
                join(info.conditions, ",").c_str(), info.shots, info.max_new_tokens, info.max_context,
                info.eval_file.c_str());
  }
}

void run_show(const std::string& suite_name, std::size_t index, const std::string& data) {
  auto suite = tasks::load_suite(suite_name, resolve_data_dir(data));
  if (index >= suite->size())
    throw Error(cat("--index ", index, " is out of range: ", suite->info().name, " has ", suite->size(), " rows"));
  tasks::Request req = suite->request(index);
  std::printf("suite: %s\ndoc_id: %zu\ncondition: %s\nmax_new_tokens: %d\nmax_context: %d\nprompt_hash: %s\n",
              suite->info().name.c_str(), index, join(req.conditions, ",").c_str(), req.max_new_tokens,
              req.max_context, tasks::prompt_hash(req.prompt).c_str());
  std::printf("target: %s\n----- prompt -----\n%s\n----- end -----\n", suite->target(index).c_str(), req.prompt.c_str());
}

struct ScoreArgs {
  std::string suite, generations, data, out, doc_ids;
  std::optional<std::size_t> limit;
};

void run_score(const ScoreArgs& a) {
  tasks::LoadOptions opts;
  opts.limit = a.limit;
  auto suite = tasks::load_suite(a.suite, resolve_data_dir(a.data), opts);
  std::vector<std::optional<std::string>> gens(suite->size());
  std::vector<std::size_t> seen_line(suite->size(), 0);
  tasks::for_each_row(a.generations, [&](const tasks::Row& r) {
    std::int64_t id = r.integer("doc_id");
    if (id < 0 || static_cast<std::size_t>(id) >= suite->size())
      throw Error(r.where("doc_id") + cat(": ", id, " is out of range (", suite->info().name, " has ", suite->size(), " rows)"));
    auto i = static_cast<std::size_t>(id);
    if (seen_line[i])
      throw Error(r.where("doc_id") + cat(": doc_id ", id, " was already given on line ", seen_line[i]));
    seen_line[i] = r.line();
    if (!r.has("generation") || r.value()["generation"].IsNull()) return;  // reported as missing
    gens[i] = r.string("generation");
  });
  std::unique_ptr<std::ofstream> out;
  if (!a.out.empty()) {
    out = std::make_unique<std::ofstream>(a.out, std::ios::binary);
    if (!*out) throw Error(cat(a.out, ": cannot open for writing"));
  }
  std::optional<std::set<std::int64_t>> only;
  if (!a.doc_ids.empty()) only = tasks::read_doc_id_file(a.doc_ids);
  std::vector<tasks::SampleScore> scores;
  std::size_t missing = 0;
  for (std::size_t i = 0; i < gens.size(); ++i) {
    if (only && !only->count(static_cast<std::int64_t>(i))) continue;
    if (!gens[i]) {
      ++missing;
      continue;
    }
    scores.push_back(suite->score(i, *gens[i]));
    if (out) *out << tasks::sample_json(*suite, i, *gens[i], scores.back()) << '\n';
  }
  if (out && !out->flush()) throw Error(cat(a.out, ": write failed"));
  const std::size_t considered = only ? scores.size() + missing : gens.size();
  if (missing) std::fprintf(stderr, "warning: %zu of %zu items have no generation (reported as missing)\n", missing, considered);
  std::printf("%s\n", tasks::aggregate_json(suite->aggregate(scores, missing)).c_str());
}

}  // namespace

void add_tasks_commands(CLI::App& app) {
  auto* tasks_cmd = app.add_subcommand("tasks", "Inspect the benchmark suites (MMLU, GSM8K, MATH, DROP, ARC)");
  tasks_cmd->require_subcommand(1);

  auto* list = tasks_cmd->add_subcommand("list", "List suites: rows, condition, shots, generation budgets");
  auto list_data = std::make_shared<std::string>();
  list->add_option("--data", *list_data, "Benchmark data directory (default: ../shared/data/benchmarks)");
  list->callback([list_data] { run_list(*list_data); });

  auto* show = tasks_cmd->add_subcommand("show", "Print one item's exact prompt, conditions and gold answer");
  auto show_suite = std::make_shared<std::string>();
  auto show_index = std::make_shared<std::size_t>(0);
  auto show_data = std::make_shared<std::string>();
  show->add_option("suite", *show_suite, "mmlu, gsm8k, math, drop or arc")->required();
  show->add_option("--index", *show_index, "doc_id (0-based row of the evaluation file)")->required();
  show->add_option("--data", *show_data, "Benchmark data directory (default: ../shared/data/benchmarks)");
  show->callback([=] { run_show(*show_suite, *show_index, *show_data); });

  auto* score = app.add_subcommand("score", "Score a JSONL file of {doc_id, generation}; aggregate JSON on stdout");
  auto a = std::make_shared<ScoreArgs>();
  score->add_option("suite", a->suite, "mmlu, gsm8k, math, drop or arc")->required();
  score->add_option("--generations", a->generations, "JSONL, one {\"doc_id\": int, \"generation\": str} per line")->required();
  score->add_option("--data", a->data, "Benchmark data directory (default: ../shared/data/benchmarks)");
  score->add_option("--out", a->out, "Write per-sample lines (doc_id, prompt_hash, prompt, generation, extracted, target, metrics)");
  score->add_option("--limit", a->limit, "Use only the first N items of the suite");
  score->add_option("--doc-ids", a->doc_ids, "Score only the doc_ids listed in FILE (e.g. contam scan's subsets/<suite>.clean.txt)");
  score->callback([a] { run_score(*a); });
}

}  // namespace hrm::cli
