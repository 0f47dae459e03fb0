// `hrmbench run`: build requests, generate resumably, score, write results (see harness.h).
#include <algorithm>
#include <chrono>
#include <ctime>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/error.h"
#include "eval/fingerprint.h"
#include "eval/harness.h"
#include "eval/json_util.h"
#include "eval/progress.h"
#include "eval/results.h"
#include "eval/samples.h"
#include "runtime/cuda_backend.h"
#include "runtime/engine.h"
#include "runtime/model.h"
#include "runtime/prompt.h"
#include "runtime/tokenizer.h"
#include "tasks/task.h"

namespace hrm::eval {
namespace {

// Keys of run.json that may differ between a run and its resumption (where files live).
const std::vector<std::string> kIgnoredOnResume = {"paths", "created"};

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

// The files of a suite's data: every .jsonl in the folder of its evaluation file.
std::vector<std::filesystem::path> suite_data_files(const std::filesystem::path& data_dir,
                                                    const tasks::SuiteInfo& info) {
  std::vector<std::filesystem::path> files;
  const auto folder = (data_dir / info.eval_file).parent_path();
  for (const auto& e : std::filesystem::directory_iterator(folder))
    if (e.path().extension() == ".jsonl") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

struct SuiteRun {
  std::unique_ptr<tasks::Suite> suite;
  std::vector<int64_t> items;  // doc_ids this run covers
};

}  // namespace

void run(const RunOptions& o) {
  if (o.shard_count < 1 || o.shard_index < 0 || o.shard_index >= o.shard_count)
    throw Error(cat("--shard ", o.shard_index, "/", o.shard_count, ": expected i/N with 0 <= i < N"));
  if (!std::filesystem::is_directory(o.data_dir))
    throw Error(cat(o.data_dir.string(), ": data directory not found (expected the layout of "
                                         "shared/data/benchmarks; see scripts/export_benchmarks.py)"));
  if (o.backend != "cpu" && o.backend != "cuda")
    throw Error(cat("--backend ", o.backend, ": expected cpu or cuda"));
  const ModelConfig cfg = load_config(o.model_dir);
  const std::filesystem::path tok_path = o.tokenizer.empty() ? o.model_dir / "tokenizer.json" : o.tokenizer;
  if (!std::filesystem::exists(tok_path))
    throw Error(cat(tok_path.string(), ": tokenizer not found (pass --tokenizer FILE)"));

  std::vector<std::string> names = o.suites.empty() ? tasks::suite_names() : o.suites;
  for (auto& n : names) n = tasks::canonical_suite_name(n);
  std::map<std::string, std::set<int64_t>> filters;
  for (const auto& [suite, file] : o.doc_id_filters) filters[tasks::canonical_suite_name(suite)] = tasks::read_doc_id_file(file);

  // Load suites and fix the item set of this run.
  std::map<std::string, SuiteRun> suites;
  for (const auto& n : names) {
    SuiteRun sr;
    tasks::LoadOptions lo;
    lo.limit = o.limit;
    lo.warn_on_row_count = !o.limit.has_value();
    sr.suite = tasks::load_suite(n, o.data_dir, lo);
    const auto f = filters.find(n);
    for (size_t d = 0; d < sr.suite->size(); ++d) {
      if (static_cast<int>(d % o.shard_count) != o.shard_index) continue;
      if (f != filters.end() && !f->second.count(static_cast<int64_t>(d))) continue;
      sr.items.push_back(static_cast<int64_t>(d));
    }
    suites.emplace(n, std::move(sr));
  }

  // The fingerprint: everything the results depend on.
  const PromptFormat fmt;
  Json fp(rapidjson::kObjectType);
  auto& a = fp.GetAllocator();
  fp.AddMember("schema_version", kSchemaVersion, a);
  JsonValue paths(rapidjson::kObjectType);
  paths.AddMember("model", str(std::filesystem::absolute(o.model_dir).string(), a), a);
  paths.AddMember("data", str(std::filesystem::absolute(o.data_dir).string(), a), a);
  paths.AddMember("tokenizer", str(std::filesystem::absolute(tok_path).string(), a), a);
  fp.AddMember("paths", paths, a);
  fp.AddMember("created", static_cast<int64_t>(std::time(nullptr)), a);
  fp.AddMember("model_hash", str(hash_files(model_files(o.model_dir)), a), a);
  fp.AddMember("model_dtype", str(cfg.torch_dtype, a), a);
  fp.AddMember("tokenizer_hash", str(hash_file(tok_path), a), a);
  fp.AddMember("backend", str(o.backend, a), a);
  JsonValue gen(rapidjson::kObjectType);
  gen.AddMember("temperature", 0.0, a);
  gen.AddMember("top_p", 1.0, a);
  gen.AddMember("seed", 0, a);
  fp.AddMember("generation", gen, a);
  if (o.limit) fp.AddMember("limit", static_cast<uint64_t>(*o.limit), a);
  else fp.AddMember("limit", JsonValue(rapidjson::kNullType), a);
  JsonValue shard(rapidjson::kObjectType);
  shard.AddMember("index", o.shard_index, a);
  shard.AddMember("count", o.shard_count, a);
  fp.AddMember("shard", shard, a);
  JsonValue pf(rapidjson::kObjectType);
  pf.AddMember("boq", str(fmt.boq, a), a);
  pf.AddMember("eoq", str(fmt.eoq, a), a);
  pf.AddMember("eoa", str(fmt.eoa, a), a);
  JsonValue conds(rapidjson::kObjectType);
  for (const auto& [tag, token] : fmt.conditions) conds.AddMember(str(tag, a), str(token, a), a);
  pf.AddMember("conditions", conds, a);
  fp.AddMember("prompt_format", pf, a);
  JsonValue protocol(rapidjson::kObjectType), data_hashes(rapidjson::kObjectType), filt(rapidjson::kObjectType);
  JsonValue suite_list(rapidjson::kArrayType);
  for (const auto& n : names) {
    const auto& info = suites.at(n).suite->info();
    suite_list.PushBack(str(n, a), a);
    JsonValue p(rapidjson::kObjectType);
    JsonValue c(rapidjson::kArrayType);
    for (const auto& x : info.conditions) c.PushBack(str(x, a), a);
    p.AddMember("conditions", c, a);
    p.AddMember("shots", info.shots, a);
    p.AddMember("max_new_tokens", info.max_new_tokens, a);
    if (o.max_new_tokens > 0) p.AddMember("max_new_tokens_cap", o.max_new_tokens, a);
    p.AddMember("max_context", info.max_context, a);
    // A model with a shorter context than the protocol's runs with its own (recorded here).
    p.AddMember("effective_context",
                static_cast<int64_t>(std::min<int64_t>(info.max_context, cfg.max_position_embeddings)), a);
    p.AddMember("eval_file", str(info.eval_file, a), a);
    protocol.AddMember(str(n, a), p, a);
    data_hashes.AddMember(str(n, a), str(hash_files(suite_data_files(o.data_dir, info)), a), a);
    for (const auto& [suite, file] : o.doc_id_filters)
      if (tasks::canonical_suite_name(suite) == n) filt.AddMember(str(n, a), str(hash_file(file), a), a);
  }
  fp.AddMember("suites", suite_list, a);
  fp.AddMember("protocol", protocol, a);
  fp.AddMember("data_hashes", data_hashes, a);
  fp.AddMember("doc_id_filters", filt, a);

  std::filesystem::create_directories(o.out_dir / "samples");
  const auto fp_path = o.out_dir / "run.json";
  if (std::filesystem::exists(fp_path)) {
    const Json was = read_json_file(fp_path);
    const std::string diff = describe_difference(was, fp, "", kIgnoredOnResume);
    if (!diff.empty())
      throw Error(cat(o.out_dir.string(), " holds a different run (", diff,
                      "); its cached generations do not apply. Use a new --out directory, or delete this one."));
    if (!o.quiet) std::fprintf(stderr, "run: resuming %s\n", o.out_dir.string().c_str());
  } else {
    write_file_atomic(fp_path, to_json(fp, true));
  }

  // What is left to generate.
  std::map<std::string, std::vector<int64_t>> todo;
  size_t total_todo = 0;
  for (const auto& n : names) {
    const auto path = o.out_dir / "samples" / (n + ".jsonl");
    const auto done = read_samples(path, /*repair_tail=*/true);
    const std::set<int64_t> items(suites.at(n).items.begin(), suites.at(n).items.end());
    for (const auto& [doc_id, s] : done)
      if (!items.count(doc_id))
        throw Error(cat(path.string(), ": doc_id ", doc_id, " is not part of this run"));
    for (int64_t d : suites.at(n).items)
      if (!done.count(d)) todo[n].push_back(d);
    total_todo += todo[n].size();
    if (!o.quiet && !done.empty())
      std::fprintf(stderr, "run: %s: %zu of %zu items already done\n", n.c_str(), done.size(),
                   suites.at(n).items.size());
  }

  Timings timings = read_timings(o.out_dir);
  if (total_todo > 0) {
    const Tokenizer tok = Tokenizer::from_file(tok_path.string());
    const TokenId stop = stop_token(tok, fmt);
    const Model model = Model::load(o.model_dir);
    // One engine for every suite (for CUDA: one weight upload, one KV-cache pool).
    auto engine =
        make_engine_for(o.backend, model, o.cuda,
                        {.max_batch = o.max_batch, .kv_budget_bytes = o.kv_budget_bytes, .max_step_tokens = o.max_step_tokens});
    if (!o.quiet) std::fprintf(stderr, "run: %s\n", engine->describe().c_str());
    for (const auto& n : names) {
      const auto& ids = todo[n];
      if (ids.empty()) continue;
      const tasks::Suite& suite = *suites.at(n).suite;
      std::vector<GenerationRequest> reqs(ids.size());
      std::vector<std::string> prompts(ids.size());
      for (size_t i = 0; i < ids.size(); ++i) {
        const tasks::Request r = suite.request(static_cast<size_t>(ids[i]));
        prompts[i] = r.prompt;
        reqs[i].prompt = format_prompt(tok, fmt, r.prompt, join(r.conditions, ","));
        reqs[i].max_new_tokens =
            o.max_new_tokens > 0 ? std::min<int64_t>(r.max_new_tokens, o.max_new_tokens) : r.max_new_tokens;
        reqs[i].context_len = std::min<int64_t>(r.max_context, cfg.max_position_embeddings);
        reqs[i].stop_ids = {stop};
      }
      SampleWriter writer(o.out_dir / "samples" / (n + ".jsonl"));
      Progress progress(cat("run ", n), static_cast<int64_t>(ids.size()), !o.quiet);
      int64_t finished = 0, tokens = 0;
      const auto t0 = std::chrono::steady_clock::now();
      engine->generate(reqs, [&](size_t i, GenerationResult g) {
        Sample s;
        s.doc_id = ids[i];
        s.prompt_hash = tasks::prompt_hash(prompts[i]);
        s.prompt = prompts[i];
        s.generation = decode_generation(tok, g.tokens, stop);
        s.generated_tokens = static_cast<int64_t>(g.tokens.size());
        s.finish = finish_reason_name(g.finish);
        writer.append(s);
        tokens += s.generated_tokens;
        progress.update(++finished, tokens);
      });
      progress.finish();
      if (const std::string report = engine->profile_report(); !report.empty() && !o.quiet)
        std::fprintf(stderr, "\nKernel time of %s:\n\n%s\n", n.c_str(), report.c_str());
      SuiteTiming& t = timings[n];
      t.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      t.prompt_tokens += engine->stats().prompt_tokens;
      t.generated_tokens += engine->stats().generated_tokens;
      write_timings(o.out_dir, timings);
    }
  }

  std::map<std::string, const tasks::Suite*> loaded;
  std::map<std::string, std::vector<int64_t>> items;
  for (const auto& n : names) {
    loaded[n] = suites.at(n).suite.get();
    items[n] = suites.at(n).items;
  }
  finalize_run(o.out_dir, fp, loaded, items, timings);
}

}  // namespace hrm::eval
