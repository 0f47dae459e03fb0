// Re-scoring and results.json (see results.h).
#include "eval/results.h"

#include <ctime>

#include "common/error.h"
#include "eval/harness.h"
#include "eval/samples.h"

namespace hrm::eval {

Timings read_timings(const std::filesystem::path& run_dir) {
  Timings t;
  const auto path = run_dir / "timings.json";
  if (!std::filesystem::exists(path)) return t;
  const Json d = read_json_file(path);
  if (!d.IsObject()) throw Error(cat(path.string(), ": expected an object"));
  for (const auto& m : d.GetObject()) {
    if (!m.value.IsObject()) continue;
    SuiteTiming& s = t[m.name.GetString()];
    if (m.value.HasMember("seconds") && m.value["seconds"].IsNumber()) s.seconds = m.value["seconds"].GetDouble();
    if (m.value.HasMember("prompt_tokens") && m.value["prompt_tokens"].IsInt64())
      s.prompt_tokens = m.value["prompt_tokens"].GetInt64();
    if (m.value.HasMember("generated_tokens") && m.value["generated_tokens"].IsInt64())
      s.generated_tokens = m.value["generated_tokens"].GetInt64();
  }
  return t;
}

void write_timings(const std::filesystem::path& run_dir, const Timings& t) {
  Json d(rapidjson::kObjectType);
  auto& a = d.GetAllocator();
  for (const auto& [suite, s] : t) {
    JsonValue v(rapidjson::kObjectType);
    v.AddMember("seconds", s.seconds, a);
    v.AddMember("prompt_tokens", s.prompt_tokens, a);
    v.AddMember("generated_tokens", s.generated_tokens, a);
    d.AddMember(str(suite, a), v, a);
  }
  write_file_atomic(run_dir / "timings.json", to_json(d, true));
}

void finalize_run(const std::filesystem::path& run_dir, const JsonValue& fingerprint,
                  const std::map<std::string, const tasks::Suite*>& suites,
                  const std::map<std::string, std::vector<int64_t>>& items, const Timings& timings) {
  Json out(rapidjson::kObjectType);
  auto& a = out.GetAllocator();
  JsonValue results(rapidjson::kObjectType), nshot(rapidjson::kObjectType), nsamples(rapidjson::kObjectType);
  JsonValue versions(rapidjson::kObjectType), task_hashes(rapidjson::kObjectType);
  JsonValue groups(rapidjson::kObjectType), tim(rapidjson::kObjectType), over(rapidjson::kObjectType);
  double total_seconds = 0;

  for (const auto& [name, suite] : suites) {
    const auto path = run_dir / "samples" / (name + ".jsonl");
    auto samples = read_samples(path, /*repair_tail=*/false);
    const auto& want = items.at(name);
    if (samples.size() != want.size())
      throw Error(cat(path.string(), ": has ", samples.size(), " samples, the run covers ", want.size(),
                      " items; re-run the same command to finish it"));
    std::vector<tasks::SampleScore> scores;
    std::string lines, prompt_hashes;
    int64_t over_context = 0;
    for (int64_t d : want) {
      auto it = samples.find(d);
      if (it == samples.end()) throw Error(cat(path.string(), ": doc_id ", d, " missing"));
      Sample& s = it->second;
      tasks::SampleScore sc = suite->score(static_cast<size_t>(d), s.generation);
      s.extracted = sc.extracted;
      s.target = sc.target;
      s.metrics = sc.metrics;
      s.group = sc.group;
      over_context += s.finish == "context" && s.generated_tokens == 0;
      prompt_hashes += s.prompt_hash;
      lines += sample_to_json_line(s);
      scores.push_back(std::move(sc));
    }
    write_file_atomic(path, lines);
    const tasks::Aggregate agg = suite->aggregate(scores, 0);

    JsonValue r(rapidjson::kObjectType);
    r.AddMember("name", str(name, a), a);
    r.AddMember("alias", str(name, a), a);
    r.AddMember("sample_len", static_cast<uint64_t>(agg.n_scored), a);
    for (const auto& m : agg.metrics) {
      r.AddMember(str(m.name + ",none", a), JsonValue(m.value), a);
      r.AddMember(str(m.name + "_stderr,none", a), JsonValue(m.stderr_), a);
    }
    results.AddMember(str(name, a), r, a);
    nshot.AddMember(str(name, a), JsonValue(suite->info().shots), a);
    JsonValue ns(rapidjson::kObjectType);
    ns.AddMember("original", static_cast<uint64_t>(suite->info().official_rows), a);
    ns.AddMember("effective", static_cast<uint64_t>(agg.n_scored), a);
    nsamples.AddMember(str(name, a), ns, a);
    versions.AddMember(str(name, a), JsonValue(1.0), a);
    task_hashes.AddMember(str(name, a), str(tasks::prompt_hash(prompt_hashes), a), a);
    over.AddMember(str(name, a), JsonValue(over_context), a);
    if (!agg.groups.empty()) {
      JsonValue g(rapidjson::kArrayType);
      for (const auto& grp : agg.groups) {
        JsonValue e(rapidjson::kObjectType);
        e.AddMember("name", str(grp.name, a), a);
        e.AddMember("n", static_cast<uint64_t>(grp.n), a);
        e.AddMember("acc", grp.acc, a);
        e.AddMember("invalid", grp.invalid, a);
        g.PushBack(e, a);
      }
      groups.AddMember(str(name, a), g, a);
    }
    const auto t = timings.find(name);
    if (t != timings.end()) {
      JsonValue e(rapidjson::kObjectType);
      e.AddMember("seconds", t->second.seconds, a);
      e.AddMember("prompt_tokens", t->second.prompt_tokens, a);
      e.AddMember("generated_tokens", t->second.generated_tokens, a);
      tim.AddMember(str(name, a), e, a);
      total_seconds += t->second.seconds;
    }
  }
  tim.AddMember("total_seconds", total_seconds, a);

  out.AddMember("results", results, a);
  out.AddMember("groups", groups, a);
  out.AddMember("n-shot", nshot, a);
  out.AddMember("n-samples", nsamples, a);
  out.AddMember("versions", versions, a);
  JsonValue config(rapidjson::kObjectType);
  config.AddMember("model", JsonValue(fingerprint["paths"]["model"], a), a);
  config.AddMember("model_hash", JsonValue(fingerprint["model_hash"], a), a);
  config.AddMember("tokenizer_hash", JsonValue(fingerprint["tokenizer_hash"], a), a);
  config.AddMember("dtype", JsonValue(fingerprint["model_dtype"], a), a);
  config.AddMember("backend", JsonValue(fingerprint["backend"], a), a);
  config.AddMember("limit", JsonValue(fingerprint["limit"], a), a);
  config.AddMember("shard", JsonValue(fingerprint["shard"], a), a);
  config.AddMember("generation", JsonValue(fingerprint["generation"], a), a);
  out.AddMember("config", config, a);
  out.AddMember("git_hash", HRM_GIT_HASH, a);
  out.AddMember("date", static_cast<double>(std::time(nullptr)), a);
  out.AddMember("task_hashes", task_hashes, a);
  out.AddMember("schema_version", kSchemaVersion, a);
  JsonValue protocol(fingerprint["protocol"], a);
  protocol.AddMember("prompt_format", JsonValue(fingerprint["prompt_format"], a), a);
  out.AddMember("protocol", protocol, a);
  out.AddMember("data_hashes", JsonValue(fingerprint["data_hashes"], a), a);
  out.AddMember("doc_id_filters", JsonValue(fingerprint["doc_id_filters"], a), a);
  out.AddMember("over_context", over, a);
  out.AddMember("timings", tim, a);
  write_file_atomic(run_dir / "results.json", to_json(out, true));
}

}  // namespace hrm::eval
