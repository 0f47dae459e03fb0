// JSON renderings of per-sample scores and aggregates (task.h sample_json / aggregate_json), shared
// by `hrmbench score` and the harness so both write the same DESIGN §8 shapes. Not a parser.
#include <cmath>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "tasks/task.h"

namespace hrm::tasks {
namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void put_string(Writer& w, std::string_view s) { w.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); }

// JSON has no NaN; a metric that is undefined (e.g. DROP F1 with no gold spans) is written as null.
void put_number(Writer& w, double x) {
  if (std::isfinite(x)) {
    w.Double(x);
  } else {
    w.Null();
  }
}

}  // namespace

std::string sample_json(const Suite& suite, std::size_t doc_id, std::string_view generation, const SampleScore& score) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  Request req = suite.request(doc_id);
  w.StartObject();
  w.Key("doc_id");
  w.Uint64(doc_id);
  w.Key("prompt_hash");
  put_string(w, prompt_hash(req.prompt));
  w.Key("prompt");
  put_string(w, req.prompt);
  w.Key("generation");
  put_string(w, generation);
  w.Key("extracted");
  if (score.extracted) {
    put_string(w, *score.extracted);
  } else {
    w.Null();
  }
  w.Key("target");
  put_string(w, score.target);
  for (const auto& [name, value] : score.metrics) {
    w.Key(name.c_str());
    put_number(w, value);
  }
  if (!score.group.empty()) {
    w.Key("group");
    put_string(w, score.group);
  }
  w.EndObject();
  return buf.GetString();
}

std::string aggregate_json(const Aggregate& a) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("suite");
  put_string(w, a.suite);
  w.Key("n_scored");
  w.Uint64(a.n_scored);
  w.Key("n_missing");
  w.Uint64(a.n_missing);
  w.Key("metrics");
  w.StartObject();
  for (const auto& m : a.metrics) {
    w.Key(m.name.c_str());
    put_number(w, m.value);
    w.Key((m.name + "_stderr").c_str());
    put_number(w, m.stderr_);
  }
  w.EndObject();
  if (!a.groups.empty()) {
    w.Key("groups");
    w.StartObject();
    for (const auto& g : a.groups) {
      w.Key(g.name.c_str());
      w.StartObject();
      w.Key("n");
      w.Uint64(g.n);
      w.Key("acc");
      put_number(w, g.acc);
      w.Key("invalid");
      put_number(w, g.invalid);
      w.EndObject();
    }
    w.EndObject();
  }
  w.EndObject();
  return buf.GetString();
}

}  // namespace hrm::tasks
