// RUN_DIR → report views (see report_data.h).
#include "eval/report_data.h"

#include "common/error.h"
#include "eval/json_util.h"
#include "eval/samples.h"

namespace hrm::eval {

reports::RunView load_run_view(const std::filesystem::path& dir) {
  const auto path = dir / "results.json";
  if (!std::filesystem::exists(path))
    throw Error(cat(path.string(), ": not found; is ", dir.string(), " a finished `hrmbench run` directory?"));
  const Json r = read_json_file(path);
  if (!r.HasMember("results") || !r["results"].IsObject() || !r.HasMember("config"))
    throw Error(cat(path.string(), ": not an hrmbench results file (no 'results'/'config')"));
  auto s = [](const JsonValue& v, const char* k) -> std::string {
    return v.HasMember(k) && v[k].IsString() ? v[k].GetString() : "";
  };
  reports::RunView run;
  run.dir = dir.string();
  run.model = s(r["config"], "model");
  run.model_hash = s(r["config"], "model_hash");
  run.backend = s(r["config"], "backend");
  run.dtype = s(r["config"], "dtype");
  run.git_hash = s(r, "git_hash");
  if (r["config"].HasMember("limit") && r["config"]["limit"].IsUint64())
    run.limit = std::to_string(r["config"]["limit"].GetUint64());
  if (r.HasMember("date") && r["date"].IsNumber()) run.date = r["date"].GetDouble();
  for (const auto& m : r["results"].GetObject()) {
    reports::SuiteView v;
    v.name = m.name.GetString();
    if (m.value.HasMember("sample_len") && m.value["sample_len"].IsInt64()) v.n = m.value["sample_len"].GetInt64();
    for (const auto& f : m.value.GetObject()) {
      const std::string key = f.name.GetString();
      const size_t comma = key.find(",none");
      if (comma == std::string::npos || !f.value.IsNumber() || key.find("_stderr") != std::string::npos) continue;
      reports::MetricView mv;
      mv.name = key.substr(0, comma);
      mv.value = f.value.GetDouble();
      const std::string se = mv.name + "_stderr,none";
      if (m.value.HasMember(se.c_str()) && m.value[se.c_str()].IsNumber()) mv.stderr_ = m.value[se.c_str()].GetDouble();
      v.metrics.push_back(mv);
    }
    if (r.HasMember("groups") && r["groups"].HasMember(v.name.c_str()))
      for (const auto& g : r["groups"][v.name.c_str()].GetArray())
        v.groups.push_back({g["name"].GetString(), static_cast<long>(g["n"].GetInt64()), g["acc"].GetDouble()});
    if (r.HasMember("over_context") && r["over_context"].HasMember(v.name.c_str()))
      v.over_context = r["over_context"][v.name.c_str()].GetInt64();
    const std::string headline = reports::headline_metric(v.name);
    for (auto& [doc, smp] : read_samples(dir / "samples" / (v.name + ".jsonl"), false)) {
      reports::SampleView x;
      x.doc_id = doc;
      x.prompt = std::move(smp.prompt);
      x.generation = std::move(smp.generation);
      x.target = std::move(smp.target);
      x.extracted = std::move(smp.extracted);
      x.generated_tokens = smp.generated_tokens;
      x.finish = smp.finish;
      for (const auto& [k, val] : smp.metrics)
        if (k == headline) x.score = val;
      v.samples.push_back(std::move(x));
    }
    run.suites.push_back(std::move(v));
  }
  return run;
}

}  // namespace hrm::eval
