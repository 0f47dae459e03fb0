// `hrmbench merge`: combine the run directories of `--shard i/N` runs (see harness.h).
#include <map>
#include <set>

#include "common/error.h"
#include "eval/fingerprint.h"
#include "eval/harness.h"
#include "eval/json_util.h"
#include "eval/results.h"
#include "eval/samples.h"
#include "tasks/task.h"

namespace hrm::eval {

void merge(const std::vector<std::filesystem::path>& dirs, const std::filesystem::path& out_dir) {
  if (dirs.empty()) throw Error("merge: no shard directories given");
  std::vector<Json> fps;
  for (const auto& d : dirs) {
    if (!std::filesystem::exists(d / "results.json"))
      throw Error(cat(d.string(), ": no results.json; the shard has not finished (re-run its command)"));
    fps.push_back(read_json_file(d / "run.json"));
  }
  const int64_t count = fps[0]["shard"]["count"].GetInt64();
  std::set<int64_t> seen;
  for (size_t i = 0; i < dirs.size(); ++i) {
    const std::string diff = describe_difference(fps[0], fps[i], "", {"paths", "created", "shard"});
    if (!diff.empty())
      throw Error(cat(dirs[i].string(), " is not a shard of the same run as ", dirs[0].string(), " (", diff, ")"));
    if (fps[i]["shard"]["count"].GetInt64() != count)
      throw Error(cat(dirs[i].string(), ": shard count ", fps[i]["shard"]["count"].GetInt64(), ", expected ", count));
    if (!seen.insert(fps[i]["shard"]["index"].GetInt64()).second)
      throw Error(cat(dirs[i].string(), ": shard ", fps[i]["shard"]["index"].GetInt64(), "/", count, " given twice"));
  }
  for (int64_t k = 0; k < count; ++k)
    if (!seen.count(k)) throw Error(cat("merge: shard ", k, "/", count, " is missing"));

  // The merged fingerprint is a single (unsharded) run's.
  Json fp;
  fp.CopyFrom(fps[0], fp.GetAllocator());
  fp["shard"]["index"].SetInt64(0);
  fp["shard"]["count"].SetInt64(1);
  std::filesystem::create_directories(out_dir / "samples");
  write_file_atomic(out_dir / "run.json", to_json(fp, true));

  tasks::LoadOptions lo;
  if (fp["limit"].IsUint64()) lo.limit = fp["limit"].GetUint64();
  lo.warn_on_row_count = false;
  const std::filesystem::path data_dir = fp["paths"]["data"].GetString();
  std::map<std::string, std::unique_ptr<tasks::Suite>> owned;
  std::map<std::string, const tasks::Suite*> suites;
  std::map<std::string, std::vector<int64_t>> items;
  Timings timings;
  for (const auto& s : fp["suites"].GetArray()) {
    const std::string name = s.GetString();
    owned[name] = tasks::load_suite(name, data_dir, lo);
    suites[name] = owned[name].get();
    std::string lines;
    std::map<int64_t, std::string> by_doc;
    for (const auto& d : dirs)
      for (const auto& [doc, sample] : read_samples(d / "samples" / (name + ".jsonl"), false))
        if (!by_doc.emplace(doc, sample_to_json_line(sample)).second)
          throw Error(cat("merge: ", name, " doc_id ", doc, " appears in two shards"));
    for (const auto& [doc, line] : by_doc) {
      items[name].push_back(doc);
      lines += line;
    }
    write_file_atomic(out_dir / "samples" / (name + ".jsonl"), lines);
  }
  for (const auto& d : dirs)
    for (const auto& [suite, t] : read_timings(d)) {
      timings[suite].seconds += t.seconds;
      timings[suite].prompt_tokens += t.prompt_tokens;
      timings[suite].generated_tokens += t.generated_tokens;
    }
  write_timings(out_dir, timings);
  finalize_run(out_dir, fp, suites, items, timings);
}

}  // namespace hrm::eval
