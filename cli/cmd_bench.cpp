// `hrmbench bench replay`: the suite replay of issue #4. The real prompts of the five suites,
// built, formatted and tokenized exactly as `hrmbench run` builds them (tasks::Suite::request,
// then runtime/prompt.h's format_prompt), are pushed through the generation engine with FIXED
// output lengths and `ignore_eos`, so every run does the same work whatever the weights say.
// Each suite is timed end to end; the totals are the sum. A Markdown table goes to stdout,
// progress to stderr, and `--json FILE` writes the same numbers for scripts.
// It is for measuring the runtime (the CPU reference now, the CUDA backend later), NOT for
// evaluating a model: nothing is scored, and the fixed lengths differ from the protocol budgets.
//
// Example:
//   hrmbench bench replay --shape tiny --limit 4              # random weights, test tokenizer
//   hrmbench bench replay --model ckpt --json replay.json     # all of every suite (GPU work)
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <sys/resource.h>
#include <tbb/global_control.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "common/error.h"
#include "eval/progress.h"
#include "runtime/config.h"
#include "cli/backend_flags.h"
#include "runtime/engine.h"
#include "runtime/model.h"
#include "runtime/optimizer.h"
#include "runtime/prompt.h"
#include "runtime/tokenizer.h"
#include "runtime/trainer.h"
#include "tasks/task.h"

namespace hrm::cli {
namespace {

namespace fs = std::filesystem;

// The checkout layout of DESIGN §3: the shared data sits beside the repository.
constexpr const char* kDefaultDataDir = "../shared/data/benchmarks";
// With --shape, the prompts still need a tokenizer; the test tokenizer is the default in a checkout.
constexpr const char* kDefaultShapeTokenizer = "tests/fixtures/tokenizer/tokenizer.json";

// Fixed generation lengths of the replay (issue #4): roughly what a model writes for each suite,
// so the replay's decode work is that of a real evaluation while staying reproducible. Multiple
// choice generates one token, as the protocol does (DESIGN §4).
constexpr int64_t kGsm8kNewTokens = 256;
constexpr int64_t kMathNewTokens = 512;
constexpr int64_t kDropNewTokens = 16;
constexpr int64_t kMultipleChoiceNewTokens = 1;

int64_t replay_new_tokens(const std::string& suite) {
  if (suite == "gsm8k") return kGsm8kNewTokens;
  if (suite == "math") return kMathNewTokens;
  if (suite == "drop") return kDropNewTokens;
  if (suite == "mmlu" || suite == "arc") return kMultipleChoiceNewTokens;
  throw Error(cat("bench replay: no fixed output length for suite '", suite, "'"));
}

struct ReplayArgs {
  std::string model, shape, tokenizer, data, json;
  BackendFlags backend;
  int64_t vocab = 0;  // 0: the tokenizer's size
  std::vector<std::string> suites;
  std::optional<size_t> limit;
  int64_t max_batch = 32;
  int threads = 0;
  uint64_t seed = 0;
  bool quiet = false;
};

// One suite's measurement (or the total over suites).
struct ReplayRow {
  std::string suite;
  int64_t requests = 0, new_tokens_per_request = 0;  // 0 in the total row: it varies
  int64_t prompt_tokens = 0, generated_tokens = 0, peak_live = 0;
  int64_t short_requests = 0;  // generated fewer than the fixed length (prompt too close to the context)
  int64_t longest_prompt = 0;
  double seconds = 0, cpu_seconds = 0, prefill_seconds = 0, decode_seconds = 0, tokenize_seconds = 0;
  // Tokens produced by pure decode steps: the first token of each request comes out of its
  // prefill step, and the engine books steps that prefill anything as prefill time.
  int64_t decode_tokens() const { return std::max<int64_t>(generated_tokens - requests, 0); }
  double prefill_rate() const { return prefill_seconds > 0 ? prompt_tokens / prefill_seconds : 0.0; }
  double decode_rate() const { return decode_seconds > 0 ? decode_tokens() / decode_seconds : 0.0; }
};

double cpu_seconds_now() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return secs(u.ru_utime) + secs(u.ru_stime);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

fs::path resolve_data_dir(const std::string& given) {
  if (!given.empty()) return given;
  if (fs::is_directory(kDefaultDataDir)) return kDefaultDataDir;
  throw Error(cat("--data is required: no benchmark data at ", kDefaultDataDir, " (relative to the current directory)"));
}

void print_table(const std::vector<ReplayRow>& rows) {
  std::printf(
      "| suite | requests | new tokens each | prompt tokens | generated tokens | seconds | CPU seconds "
      "| prefill tok/s | decode tok/s | peak live |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const ReplayRow& r : rows) {
    const std::string each = r.new_tokens_per_request > 0 ? std::to_string(r.new_tokens_per_request) : "-";
    // Multiple choice generates one token per request, all of it in the prefill step: no decode rate.
    const std::string decode = r.decode_tokens() > 0 ? cat(std::fixed, std::setprecision(1), r.decode_rate()) : "-";
    std::printf("| %s | %ld | %s | %ld | %ld | %.2f | %.2f | %.0f | %s | %ld |\n", r.suite.c_str(), r.requests,
                each.c_str(), r.prompt_tokens, r.generated_tokens, r.seconds, r.cpu_seconds, r.prefill_rate(),
                decode.c_str(), r.peak_live);
  }
  std::fflush(stdout);
}

void write_row(rapidjson::PrettyWriter<rapidjson::StringBuffer>& w, const ReplayRow& r) {
  w.StartObject();
  w.Key("suite"), w.String(r.suite.c_str());
  w.Key("requests"), w.Int64(r.requests);
  w.Key("new_tokens_per_request"), w.Int64(r.new_tokens_per_request);
  w.Key("prompt_tokens"), w.Int64(r.prompt_tokens);
  w.Key("longest_prompt"), w.Int64(r.longest_prompt);
  w.Key("generated_tokens"), w.Int64(r.generated_tokens);
  w.Key("short_requests"), w.Int64(r.short_requests);
  w.Key("seconds"), w.Double(r.seconds);
  w.Key("cpu_seconds"), w.Double(r.cpu_seconds);
  w.Key("tokenize_seconds"), w.Double(r.tokenize_seconds);
  w.Key("prefill_seconds"), w.Double(r.prefill_seconds);
  w.Key("decode_seconds"), w.Double(r.decode_seconds);
  w.Key("decode_tokens"), w.Int64(r.decode_tokens());
  w.Key("prefill_tokens_per_second"), w.Double(r.prefill_rate());
  w.Key("decode_tokens_per_second"), w.Double(r.decode_rate());
  w.Key("peak_live"), w.Int64(r.peak_live);
  w.EndObject();
}

void write_json(const ReplayArgs& a, const std::string& model_name, const ModelConfig& cfg,
                const std::string& tok_path, const std::vector<ReplayRow>& rows, const ReplayRow& total) {
  rapidjson::StringBuffer sb;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("model"), w.String(model_name.c_str());
  w.Key("random_weights"), w.Bool(a.model.empty());
  w.Key("parameters"), w.Int64(cfg.parameter_count());
  w.Key("hidden_size"), w.Int64(cfg.hidden_size);
  w.Key("num_layers_per_stack"), w.Int64(cfg.num_layers_per_stack);
  w.Key("vocab_size"), w.Int64(cfg.vocab_size);
  w.Key("max_position_embeddings"), w.Int64(cfg.max_position_embeddings);
  w.Key("tokenizer"), w.String(tok_path.c_str());
  w.Key("backend"), w.String(a.backend.backend.c_str());
  if (a.backend.backend == "cuda") {
    w.Key("kv_dtype"), w.String(a.backend.cuda.fp8_kv ? "fp8-e4m3" : "bf16");
    w.Key("cuda_graphs"), w.Bool(a.backend.cuda.graphs);
  }
  w.Key("max_batch"), w.Int64(a.max_batch);
  w.Key("threads"), w.Int(a.threads);
  w.Key("limit");
  if (a.limit) w.Uint64(*a.limit);
  else w.Null();
  w.Key("suites");
  w.StartArray();
  for (const ReplayRow& r : rows) write_row(w, r);
  w.EndArray();
  w.Key("total");
  write_row(w, total);
  w.EndObject();
  std::ofstream out(a.json, std::ios::binary);
  if (!out) throw Error(cat("--json ", a.json, ": cannot open for writing"));
  out << sb.GetString() << '\n';
  if (!out.flush()) throw Error(cat("--json ", a.json, ": write failed"));
}

void run_replay(const ReplayArgs& a) {
  if (a.model.empty() == a.shape.empty()) throw Error("give either --model DIR or --shape tiny|b|l|xl");
  if (a.max_batch < 1) throw Error(cat("--max-batch must be at least 1, got ", a.max_batch));
  std::optional<tbb::global_control> limit;
  if (a.threads > 0) limit.emplace(tbb::global_control::max_allowed_parallelism, a.threads);

  // Suites first: a bad name or missing data fails before any model work.
  const fs::path data = resolve_data_dir(a.data);
  std::vector<std::string> names;
  for (const std::string& s : a.suites.empty() ? tasks::suite_names() : a.suites) {
    const std::string n = tasks::canonical_suite_name(s);
    if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  }
  tasks::LoadOptions lo;
  lo.limit = a.limit;
  lo.warn_on_row_count = !a.limit;  // a subset differs from the official count on purpose
  std::map<std::string, std::unique_ptr<tasks::Suite>> suites;
  int64_t widest_context = 0;
  for (const auto& n : names) {
    suites[n] = tasks::load_suite(n, data, lo);
    widest_context = std::max<int64_t>(widest_context, suites[n]->info().max_context);
  }

  std::string tok_path = a.tokenizer;
  if (tok_path.empty()) tok_path = a.model.empty() ? kDefaultShapeTokenizer : (fs::path(a.model) / "tokenizer.json").string();
  if (!fs::exists(tok_path))
    throw Error(cat(tok_path, ": not found; the replay tokenizes the real prompts, give --tokenizer FILE"));
  const Tokenizer tok = Tokenizer::from_file(tok_path);
  const PromptFormat fmt;
  const TokenId stop = stop_token(tok, fmt);

  const auto t_load = std::chrono::steady_clock::now();
  std::optional<Model> model;
  std::string model_name;
  if (!a.model.empty()) {
    model.emplace(Model::load(a.model));
    model_name = a.model;
  } else {
    const int64_t vocab = a.vocab > 0 ? a.vocab : static_cast<int64_t>(tok.vocab_size());
    if (vocab < static_cast<int64_t>(tok.vocab_size()))
      throw Error(cat("--vocab ", vocab, " is smaller than the tokenizer's ", tok.vocab_size(), " ids (", tok_path, ")"));
    ModelConfig cfg = shape_config(a.shape, vocab);
    // Positions are computed (RoPE), not learned, so a random-weight shape can take the protocol's
    // widest context (DESIGN §4: 4096 for multiple choice) and no prompt is cut short.
    cfg.max_position_embeddings = std::max(cfg.max_position_embeddings, widest_context);
    model.emplace(cfg, init_weights(cfg, a.seed));
    model_name = cat("shape ", a.shape);
  }
  const ModelConfig& cfg = model->config();
  if (static_cast<int64_t>(tok.vocab_size()) > cfg.vocab_size)
    throw Error(cat(tok_path, ": the tokenizer has ", tok.vocab_size(), " ids, more than the model's vocab_size ",
                    cfg.vocab_size));
  if (!a.quiet)
    std::fprintf(stderr, "bench replay: %s, %.3f B parameters, loaded in %.1f s; suites %s%s\n", model_name.c_str(),
                 cfg.parameter_count() / 1e9, seconds_since(t_load), join(names, ",").c_str(),
                 a.limit ? cat(" (first ", *a.limit, " items each)").c_str() : "");

  // One engine for every suite (for CUDA: one weight upload, one KV pool).
  auto engine = make_engine_for(a.backend.backend, *model, a.backend.cuda, a.backend.engine_options(a.max_batch));
  if (!a.quiet) std::fprintf(stderr, "bench replay: %s\n", engine->describe().c_str());
  std::vector<ReplayRow> rows;
  ReplayRow total;
  total.suite = "total";
  for (const auto& n : names) {
    const tasks::Suite& suite = *suites.at(n);
    ReplayRow row;
    row.suite = n;
    row.new_tokens_per_request = replay_new_tokens(n);
    const double cpu0 = cpu_seconds_now();
    const auto t0 = std::chrono::steady_clock::now();
    // The same request `hrmbench run` builds (eval/run.cpp), except the fixed length and ignore_eos.
    std::vector<GenerationRequest> reqs(suite.size());
    for (size_t i = 0; i < reqs.size(); ++i) {
      const tasks::Request r = suite.request(i);
      reqs[i].prompt = format_prompt(tok, fmt, r.prompt, join(r.conditions, ","));
      reqs[i].max_new_tokens = row.new_tokens_per_request;
      reqs[i].context_len = std::min<int64_t>(r.max_context, cfg.max_position_embeddings);
      reqs[i].stop_ids = {stop};
      reqs[i].ignore_eos = true;
      row.longest_prompt = std::max<int64_t>(row.longest_prompt, static_cast<int64_t>(reqs[i].prompt.size()));
    }
    row.tokenize_seconds = seconds_since(t0);
    eval::Progress progress(cat("replay ", n), static_cast<int64_t>(reqs.size()), !a.quiet);
    int64_t finished = 0, tokens = 0;
    engine->generate(reqs, [&](size_t, GenerationResult g) {
      tokens += static_cast<int64_t>(g.tokens.size());
      if (static_cast<int64_t>(g.tokens.size()) < row.new_tokens_per_request) ++row.short_requests;
      progress.update(++finished, tokens);
    });
    progress.finish();
    row.seconds = seconds_since(t0);
    row.cpu_seconds = cpu_seconds_now() - cpu0;
    const EngineStats& s = engine->stats();
    row.requests = static_cast<int64_t>(reqs.size());
    row.prompt_tokens = s.prompt_tokens;
    row.generated_tokens = s.generated_tokens;
    row.prefill_seconds = s.prefill_seconds;
    row.decode_seconds = s.decode_seconds;
    row.peak_live = s.peak_live;
    if (const std::string report = engine->profile_report(); !report.empty() && !a.quiet)
      std::fprintf(stderr, "\nKernel time of %s:\n\n%s\n", n.c_str(), report.c_str());
    if (row.short_requests > 0 && !a.quiet)
      std::fprintf(stderr, "warning: %s: %ld request(s) generated fewer than %ld tokens (prompt too close to the context)\n",
                   n.c_str(), row.short_requests, row.new_tokens_per_request);
    total.requests += row.requests;
    total.prompt_tokens += row.prompt_tokens;
    total.generated_tokens += row.generated_tokens;
    total.short_requests += row.short_requests;
    total.longest_prompt = std::max(total.longest_prompt, row.longest_prompt);
    total.seconds += row.seconds;
    total.cpu_seconds += row.cpu_seconds;
    total.tokenize_seconds += row.tokenize_seconds;
    total.prefill_seconds += row.prefill_seconds;
    total.decode_seconds += row.decode_seconds;
    total.peak_live = std::max(total.peak_live, row.peak_live);
    rows.push_back(std::move(row));
  }
  std::vector<ReplayRow> table = rows;
  table.push_back(total);
  print_table(table);
  if (!a.json.empty()) write_json(a, model_name, cfg, tok_path, rows, total);
}

}  // namespace

void add_bench_commands(CLI::App& bench) {
  auto* rp = bench.add_subcommand(
      "replay", "Suite replay: the real prompts of the five suites with fixed output lengths, timed per suite");
  auto a = std::make_shared<ReplayArgs>();
  rp->add_option("--model", a->model, "Model directory (config.json + safetensors)");
  rp->add_option("--shape", a->shape, "tiny, b, l or xl with random weights (DESIGN §2) instead of --model");
  rp->add_option("--vocab", a->vocab, "Vocabulary size for --shape (default: the tokenizer's)");
  rp->add_option("--tokenizer", a->tokenizer,
                 cat("tokenizer.json (default: MODEL/tokenizer.json, or ", kDefaultShapeTokenizer, " with --shape)"));
  rp->add_option("--data", a->data, cat("Benchmark data directory (default: ", kDefaultDataDir, ")"));
  rp->add_option("--suites", a->suites, "Suites to replay (default: all five)")->delimiter(',');
  rp->add_option("--limit", a->limit, "Replay only the first N items of each suite");
  add_backend_flags(rp, a->backend);
  rp->add_option("--max-batch", a->max_batch, "Sequences decoded together")->capture_default_str();
  rp->add_option("--threads", a->threads, "CPU threads (default: all)");
  rp->add_option("--seed", a->seed, "Weight seed for --shape")->capture_default_str();
  rp->add_option("--json", a->json, "Also write the numbers as JSON to FILE");
  rp->add_flag("--quiet", a->quiet, "No progress on stderr");
  rp->callback([a] { run_replay(*a); });
}

}  // namespace hrm::cli
