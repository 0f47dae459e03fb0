// `hrmbench run`, `merge`, `compare`, `report`: the evaluation harness from the command line.
#include <cstdio>
#include <memory>
#include <optional>

#include "cli/backend_flags.h"
#include "cli/commands.h"
#include "common/error.h"
#include "eval/harness.h"
#include "eval/json_util.h"
#include "eval/report_data.h"
#include "reports/run_report.h"

namespace hrm::cli {
namespace {

std::vector<std::string> split_csv(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    const size_t c = std::min(s.find(',', pos), s.size());
    if (c > pos) out.push_back(s.substr(pos, c - pos));
    pos = c + 1;
  }
  return out;
}

void parse_shard(const std::string& s, eval::RunOptions& o) {
  const size_t slash = s.find('/');
  try {
    if (slash == std::string::npos) throw std::invalid_argument(s);
    o.shard_index = std::stoi(s.substr(0, slash));
    o.shard_count = std::stoi(s.substr(slash + 1));
  } catch (const std::exception&) {
    throw Error(cat("--shard '", s, "': expected i/N, e.g. 0/4"));
  }
}

}  // namespace

void add_eval_commands(CLI::App& app) {
  auto* run = app.add_subcommand("run", "Evaluate a checkpoint on the benchmark suites (resumable)");
  auto o = std::make_shared<eval::RunOptions>();
  auto suites = std::make_shared<std::string>();
  auto shard = std::make_shared<std::string>();
  auto limit = std::make_shared<int64_t>(-1);
  auto filters = std::make_shared<std::vector<std::string>>();
  run->add_option("--model", o->model_dir, "Model directory")->required();
  run->add_option("--data", o->data_dir, "Benchmark data directory (layout of shared/data/benchmarks)")->required();
  run->add_option("--out", o->out_dir, "Run directory (created; an existing one is resumed)")->required();
  run->add_option("--suites", *suites, "Comma-separated: mmlu,gsm8k,math,drop,arc (default: all)");
  run->add_option("--limit", *limit, "Only the first N items of each suite");
  run->add_option("--shard", *shard, "i/N: this process takes items with doc_id % N == i");
  run->add_option("--doc-ids", *filters, "SUITE=FILE: only the doc_ids listed in FILE (e.g. a clean subset)");
  run->add_option("--tokenizer", o->tokenizer, "tokenizer.json (default: MODEL/tokenizer.json)");
  auto backend = std::make_shared<BackendFlags>();
  add_backend_flags(run, *backend);
  run->add_option("--max-batch", o->max_batch, "Sequences decoded together")->capture_default_str();
  run->add_option("--max-new-tokens", o->max_new_tokens,
                  "Cap every generation budget (smoke tests; recorded, never protocol-exact)");
  run->add_flag("--quiet", o->quiet, "No progress on stderr");
  run->callback([o, suites, shard, limit, filters, backend] {
    o->backend = backend->backend;
    o->cuda = backend->cuda;
    o->kv_budget_bytes = backend->kv_budget_mib << 20;
    o->max_step_tokens = backend->max_step_tokens;
    o->suites = split_csv(*suites);
    if (*limit >= 0) o->limit = static_cast<size_t>(*limit);
    if (!shard->empty()) parse_shard(*shard, *o);
    for (const auto& f : *filters) {
      const size_t eq = f.find('=');
      if (eq == std::string::npos) throw Error(cat("--doc-ids '", f, "': expected SUITE=FILE"));
      o->doc_id_filters.emplace_back(f.substr(0, eq), f.substr(eq + 1));
    }
    eval::run(*o);
    std::printf("%s\n", (o->out_dir / "results.json").string().c_str());
  });

  auto* merge = app.add_subcommand("merge", "Merge the run directories of --shard i/N runs");
  auto shards = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>();
  merge->add_option("shard_dirs", *shards, "Run directories of all shards")->required();
  merge->add_option("--out", *out, "Merged run directory")->required();
  merge->callback([shards, out] {
    std::vector<std::filesystem::path> dirs(shards->begin(), shards->end());
    eval::merge(dirs, *out);
    std::printf("%s\n", (std::filesystem::path(*out) / "results.json").string().c_str());
  });

  auto* cmp = app.add_subcommand("compare", "Paired comparison of two runs (B against A)");
  auto a = std::make_shared<std::string>(), b = std::make_shared<std::string>();
  auto co = std::make_shared<eval::CompareOptions>();
  cmp->add_option("run_a", *a, "Baseline run directory")->required();
  cmp->add_option("run_b", *b, "Candidate run directory")->required();
  cmp->add_option("--fail-on-regression", co->fail_on_regression_pct,
                  "Exit 1 when a metric drops by more than this many percentage points, significantly");
  cmp->add_option("--bootstrap", co->bootstrap_samples, "Paired bootstrap resamples")->capture_default_str();
  cmp->add_option("--seed", co->seed, "Bootstrap seed")->capture_default_str();
  cmp->callback([a, b, co] {
    std::string md;
    const int code = eval::compare(*a, *b, *co, md);
    std::printf("%s", md.c_str());
    if (code != 0) throw CLI::RuntimeError(code);
  });

  auto* rep = app.add_subcommand("report", "Render a run as Markdown (stdout) and self-contained HTML");
  auto run_dir = std::make_shared<std::string>(), other = std::make_shared<std::string>();
  auto html = std::make_shared<std::string>(), md = std::make_shared<std::string>();
  rep->add_option("run_dir", *run_dir, "Run directory")->required();
  rep->add_option("--compare", *other, "A second run directory shown side by side");
  rep->add_option("--html", *html, "Write the HTML report here");
  rep->add_option("--md", *md, "Write the Markdown report here (default: stdout)");
  rep->callback([run_dir, other, html, md] {
    const reports::RunView a = eval::load_run_view(*run_dir);
    std::optional<reports::RunView> b;
    if (!other->empty()) b = eval::load_run_view(*other);
    const std::string markdown = reports::render_markdown(a, b ? &*b : nullptr);
    if (md->empty()) std::printf("%s", markdown.c_str());
    else eval::write_file_atomic(*md, markdown);
    if (!html->empty()) {
      eval::write_file_atomic(*html, reports::render_html(a, b ? &*b : nullptr));
      std::fprintf(stderr, "report: wrote %s\n", html->c_str());
    }
  });
}

}  // namespace hrm::cli
