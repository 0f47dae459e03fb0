// `hrmbench contam scan|merge|zscore|report` and `hrmbench bench contam`: the command-line face of
// the contamination engine (ngram/contam.h). This file wires benchmark questions (tasks/), the
// model tokenizer (runtime/) and corpus paths to the engine, and owns the output contract of
// docs/CONTAMINATION.md. Not for: n-gram logic (ngram/), scoring (tasks/).
//
// Example:
//   hrmbench contam scan --suites gsm8k,math --corpus data/tokenized --tokenizer tok.json --out contam/
//   hrmbench contam zscore --contam contam/ --samples run/samples/gsm8k.jsonl --suite gsm8k
//   hrmbench contam report --contam contam/ --md contam/report.md --html contam/report.html
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <unordered_set>
#include <vector>

#include <oneapi/tbb/parallel_for.h>
#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "cli/commands.h"
#include "common/error.h"
#include "ngram/contam.h"
#include "reports/html.h"
#include "runtime/tokenizer.h"
#include "tasks/task.h"

namespace hrm::cli {
namespace {

namespace fs = std::filesystem;
using namespace hrm::ngram;
using Clock = std::chrono::steady_clock;
using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

constexpr int kSchemaVersion = 1;
constexpr char kShardDir[] = "shards";
constexpr char kSummaryFile[] = "summary.json";
constexpr char kMatchedNgramsFile[] = "matched_ngrams.jsonl";
constexpr double kPercent = 100.0;
constexpr double kMega = 1e6;
constexpr double kKiB = 1024.0;
constexpr double kMiB = 1024.0 * 1024.0;
// Projection target of DESIGN §5: the HRM-Text corpus is about 40 B tokens.
constexpr double kFullCorpusTokens = 40e9;
// A typical CPU node, for the projection only.
constexpr size_t kNodeCores = 32;
// Histogram: one bar for exactly 0%, then ten 10%-wide bins.
constexpr int kHistBins = 10;
constexpr double kHistWidth = 10.0;
constexpr size_t kReportTopDocs = 20;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(s);
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string default_data_dir() {
  if (const char* shared = std::getenv("HRM_SHARED")) return (fs::path(shared) / "data/benchmarks").string();
  return "../shared/data/benchmarks";
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(cat(path.string(), ": cannot open"));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

rapidjson::Document read_json(const fs::path& path) {
  rapidjson::Document d;
  const std::string text = read_text(path);
  d.Parse(text.c_str(), text.size());
  if (d.HasParseError() || !d.IsObject()) throw Error(cat(path.string(), ": not a JSON object"));
  return d;
}

// Writes to a temporary name and renames, so a crash never leaves a half-written output behind.
void write_file(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) throw Error(cat(tmp.string(), ": cannot write"));
    out << text;
    if (!out) throw Error(cat(tmp.string(), ": write failed"));
  }
  fs::rename(tmp, path);
}

const rapidjson::Value& member(const rapidjson::Value& obj, const char* name, const fs::path& file) {
  const auto it = obj.FindMember(name);
  if (it == obj.MemberEnd()) throw Error(cat(file.string(), ": missing field \"", name, "\""));
  return it->value;
}

// ---------------------------------------------------------------------------------------------
// Settings shared by scan, shards and merge

struct Settings {
  std::string data;
  std::vector<std::string> suites;
  std::string tokenizer;  // empty in word mode
  bool words = false;
  size_t n = kDefaultN;
  std::vector<std::string> corpus;
  std::vector<std::string> text_fields = {"instruction", "response"};
  bool text_lines = false;
  bool cross_documents = false;
  bool prefilter = true;
  size_t max_locations = 4;
  size_t top_docs = 20;

  void write(JsonWriter& w) const {
    w.StartObject();
    w.Key("data"), w.String(data.c_str());
    w.Key("suites"), w.StartArray();
    for (const auto& s : suites) w.String(s.c_str());
    w.EndArray();
    w.Key("mode"), w.String(words ? "words" : "tokens");
    w.Key("tokenizer"), tokenizer.empty() ? w.Null() : w.String(tokenizer.c_str());
    w.Key("n"), w.Uint64(n);
    w.Key("corpus"), w.StartArray();
    for (const auto& c : corpus) w.String(c.c_str());
    w.EndArray();
    w.Key("text_fields"), w.StartArray();
    for (const auto& f : text_fields) w.String(f.c_str());
    w.EndArray();
    w.Key("text_lines"), w.Bool(text_lines);
    w.Key("cross_documents"), w.Bool(cross_documents);
    w.Key("prefilter"), w.Bool(prefilter);
    w.Key("max_locations"), w.Uint64(max_locations);
    w.Key("top_docs"), w.Uint64(top_docs);
    w.EndObject();
  }

  static Settings read(const rapidjson::Value& v, const fs::path& file) {
    Settings s;
    const auto strings = [&](const char* name) {
      std::vector<std::string> out;
      const auto& a = member(v, name, file);
      if (!a.IsArray()) throw Error(cat(file.string(), ": settings.", name, " is not an array"));
      for (const auto& x : a.GetArray()) out.emplace_back(x.GetString());
      return out;
    };
    s.data = member(v, "data", file).GetString();
    s.suites = strings("suites");
    s.words = std::string(member(v, "mode", file).GetString()) == "words";
    const auto& tok = member(v, "tokenizer", file);
    s.tokenizer = tok.IsString() ? tok.GetString() : "";
    s.n = member(v, "n", file).GetUint64();
    s.corpus = strings("corpus");
    s.text_fields = strings("text_fields");
    s.text_lines = member(v, "text_lines", file).GetBool();
    s.cross_documents = member(v, "cross_documents", file).GetBool();
    s.prefilter = member(v, "prefilter", file).GetBool();
    s.max_locations = member(v, "max_locations", file).GetUint64();
    s.top_docs = member(v, "top_docs", file).GetUint64();
    return s;
  }

  std::string json() const {
    rapidjson::StringBuffer b;
    JsonWriter w(b);
    write(w);
    return b.GetString();
  }
};

// The benchmark side: samples of every suite in one index, and the corpus tokenizer to match.
struct Engine {
  Settings settings;
  std::vector<size_t> suite_begin;  // global sample index of each suite's doc_id 0, plus the end
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<WordVocab> vocab;
  std::unique_ptr<NgramIndex> index;
  TextTokenizer tokenize;
  double index_seconds = 0;

  std::pair<size_t, size_t> suite_doc(size_t sample) const {
    const auto it = std::upper_bound(suite_begin.begin(), suite_begin.end(), sample);
    const auto s = static_cast<size_t>(it - suite_begin.begin()) - 1;
    return {s, sample - suite_begin[s]};
  }
};

std::unique_ptr<Engine> build_engine(const Settings& settings) {
  const auto start = Clock::now();
  auto e = std::make_unique<Engine>();
  e->settings = settings;
  if (settings.words == !settings.tokenizer.empty())
    throw Error("contam: give exactly one of --tokenizer tokenizer.json or --words");
  std::vector<std::string> texts;
  for (const auto& suite : settings.suites) {
    e->suite_begin.push_back(texts.size());
    auto q = tasks::question_texts(suite, settings.data);
    for (auto& t : q) texts.push_back(std::move(t));
  }
  e->suite_begin.push_back(texts.size());
  std::vector<std::vector<Token>> samples(texts.size());
  if (settings.words) {
    e->vocab = std::make_unique<WordVocab>();
    for (size_t i = 0; i < texts.size(); ++i) samples[i] = e->vocab->add_text(texts[i]);
    const WordVocab* vocab = e->vocab.get();
    e->tokenize = [vocab](std::string_view t) { return vocab->encode(t); };
  } else {
    e->tokenizer = std::make_unique<Tokenizer>(Tokenizer::from_file(settings.tokenizer));
    const Tokenizer* tok = e->tokenizer.get();
    e->tokenize = [tok](std::string_view t) {
      const auto ids = tok->encode(t);
      return std::vector<Token>(ids.begin(), ids.end());
    };
    tbb::parallel_for(size_t{0}, texts.size(), [&](size_t i) { samples[i] = e->tokenize(texts[i]); });
  }
  e->index = std::make_unique<NgramIndex>(std::move(samples), IndexOptions{.n = settings.n, .prefilter = settings.prefilter});
  e->index_seconds = seconds_since(start);
  return e;
}

std::vector<std::unique_ptr<CorpusSource>> open_all(const Engine& e) {
  std::vector<std::unique_ptr<CorpusSource>> out;
  for (const auto& p : e.settings.corpus) {
    if (e.settings.words && fs::is_directory(p))
      throw Error(cat(p, ": word mode (--words) reads text (JSONL or plain text), not tokenized directories"));
    // "file.jsonl#question,answer" overrides --text-fields for that file (corpora of different schemas).
    const auto hash = p.rfind('#');
    const bool own_fields = hash != std::string::npos && !fs::exists(p);
    const fs::path path = own_fields ? p.substr(0, hash) : p;
    const auto fields = own_fields ? split_list(p.substr(hash + 1)) : e.settings.text_fields;
    const size_t stream_n = e.settings.cross_documents ? e.settings.n : 0;
    for (auto& s : open_corpus(path, fields, e.settings.text_lines, e.tokenize, stream_n)) out.push_back(std::move(s));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Shard state files

std::string shard_stem(Shard s) { return cat("shard-", s.index, "-of-", s.count); }

Shard parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  try {
    if (slash != std::string::npos) {
      const Shard s{std::stoull(text.substr(0, slash)), std::stoull(text.substr(slash + 1))};
      if (s.count > 0 && s.index < s.count) return s;
    }
  } catch (const std::exception&) {
  }
  throw Error(cat("--shard '", text, "': expected i/N with 0 <= i < N (e.g. 3/16)"));
}

std::string shard_json(const Settings& settings, Shard shard, const ScanState& st, double scan_seconds) {
  rapidjson::StringBuffer b;
  JsonWriter w(b);
  w.StartObject();
  w.Key("schema_version"), w.Int(kSchemaVersion);
  w.Key("settings"), settings.write(w);
  w.Key("shard"), w.StartArray(), w.Uint64(shard.index), w.Uint64(shard.count), w.EndArray();
  w.Key("fingerprint"), w.Uint64(st.fingerprint);
  w.Key("tokens"), w.Uint64(st.tokens);
  w.Key("documents"), w.Uint64(st.documents);
  w.Key("scan_seconds"), w.Double(scan_seconds);
  w.Key("hits"), w.StartArray();
  for (size_t id = 0; id < st.hits.size(); ++id)
    if (st.hits[id]) w.StartArray(), w.Uint64(id), w.Uint64(st.hits[id]), w.EndArray();
  w.EndArray();
  std::vector<uint32_t> ids;
  for (const auto& [id, _] : st.where) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  w.Key("where"), w.StartArray();
  for (uint32_t id : ids) {
    w.StartArray(), w.Uint(id);
    for (const Location& l : st.where.at(id)) w.StartArray(), w.Uint(l.source), w.Uint64(l.doc), w.EndArray();
    w.EndArray();
  }
  w.EndArray();
  w.Key("top_docs"), w.StartArray();
  for (const DocMatches& d : st.top_docs) {
    w.StartArray(), w.Uint(d.where.source), w.Uint64(d.where.doc), w.Uint64(d.matches), w.Uint(d.example_ngram);
    w.EndArray();
  }
  w.EndArray();
  w.EndObject();
  return b.GetString();
}

ScanState read_shard_state(const rapidjson::Document& d, const fs::path& file, size_t num_distinct, const Settings& s) {
  ScanState st;
  st.max_locations = s.max_locations;
  st.max_top_docs = s.top_docs;
  st.fingerprint = member(d, "fingerprint", file).GetUint64();
  st.tokens = member(d, "tokens", file).GetUint64();
  st.documents = member(d, "documents", file).GetUint64();
  st.hits.assign(num_distinct, 0);
  for (const auto& h : member(d, "hits", file).GetArray()) {
    const uint64_t id = h[0].GetUint64();
    if (id >= num_distinct) throw Error(cat(file.string(), ": n-gram id ", id, " out of range"));
    st.hits[id] = h[1].GetUint64();
  }
  for (const auto& w : member(d, "where", file).GetArray()) {
    auto& locs = st.where[w[0].GetUint()];
    for (rapidjson::SizeType i = 1; i < w.Size(); ++i)
      locs.push_back({w[i][0].GetUint(), w[i][1].GetUint64()});
  }
  for (const auto& t : member(d, "top_docs", file).GetArray())
    st.top_docs.push_back({{t[0].GetUint(), t[1].GetUint64()}, t[2].GetUint64(), t[3].GetUint()});
  return st;
}

// ---------------------------------------------------------------------------------------------
// Final outputs: <suite>.jsonl, subsets/, matched_ngrams.jsonl, summary.json

struct Timings {
  double index_seconds = 0;
  double scan_seconds = 0;  // wall time (one scan) or summed over shards
  size_t shards = 1;
};

void write_outputs(const Engine& e, const std::vector<std::string>& source_names,
                   const std::vector<uint64_t>& source_docs, const ScanState& st, const Timings& t, const fs::path& out) {
  const NgramIndex& index = *e.index;
  const auto stats = sample_stats(index, st);
  fs::create_directories(out / "subsets");

  rapidjson::StringBuffer sb;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("schema_version"), w.Int(kSchemaVersion);
  w.Key("settings"), e.settings.write(w);
  w.Key("index"), w.StartObject();
  w.Key("samples"), w.Uint64(index.num_samples());
  w.Key("ngram_positions"), w.Uint64(index.num_positions());
  w.Key("distinct_ngrams"), w.Uint64(index.num_distinct());
  w.Key("memory_bytes"), w.Uint64(index.memory_bytes());
  w.Key("fingerprint"), w.Uint64(index.fingerprint());
  w.EndObject();
  w.Key("corpus"), w.StartObject();
  w.Key("tokens"), w.Uint64(st.tokens);
  w.Key("documents"), w.Uint64(st.documents);
  w.Key("sources"), w.StartArray();
  for (size_t i = 0; i < source_names.size(); ++i) {
    w.StartObject(), w.Key("name"), w.String(source_names[i].c_str()), w.Key("documents"), w.Uint64(source_docs[i]);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();

  w.Key("suites"), w.StartObject();
  for (size_t si = 0; si < e.settings.suites.size(); ++si) {
    const std::string& suite = e.settings.suites[si];
    const size_t b = e.suite_begin[si], end = e.suite_begin[si + 1];
    std::string lines;
    std::map<std::string, std::string> subset_text;
    std::map<std::string, std::pair<size_t, double>> subset_stats;
    size_t matched_samples = 0;
    double sum_c = 0;
    for (size_t s = b; s < end; ++s) {
      const SampleStats& x = stats[s];
      const size_t doc_id = s - b;
      std::vector<Location> locs;
      for (uint32_t id : index.sample_ngrams(s)) {
        const auto it = st.where.find(id);
        if (it != st.where.end()) locs.insert(locs.end(), it->second.begin(), it->second.end());
      }
      std::sort(locs.begin(), locs.end());
      locs.erase(std::unique(locs.begin(), locs.end()), locs.end());
      if (locs.size() > e.settings.max_locations) locs.resize(e.settings.max_locations);
      rapidjson::StringBuffer lb;
      JsonWriter lw(lb);
      lw.StartObject();
      lw.Key("doc_id"), lw.Uint64(doc_id);
      lw.Key("index"), lw.Uint64(doc_id);
      lw.Key("contamination"), lw.Double(x.contamination);
      lw.Key("longest_match"), lw.Uint64(x.longest_match);
      lw.Key("matches"), lw.Uint64(x.matches);
      lw.Key("tokens"), lw.Uint64(x.tokens);
      lw.Key("locations"), lw.StartArray();
      for (const Location& l : locs) lw.StartArray(), lw.Uint(l.source), lw.Uint64(l.doc), lw.EndArray();
      lw.EndArray();
      lw.EndObject();
      lines += lb.GetString();
      lines += '\n';
      matched_samples += x.matches > 0;
      sum_c += x.contamination;
      for (const SubsetInfo& info : subsets()) {
        if (!in_subset(info.subset, x.contamination)) continue;
        subset_text[info.name] += cat(doc_id, "\n");
        auto& [k, c] = subset_stats[info.name];
        ++k;
        c += x.contamination;
      }
    }
    write_file(out / (suite + ".jsonl"), lines);
    for (const SubsetInfo& info : subsets())
      write_file(out / "subsets" / (suite + "." + info.name + ".txt"), subset_text[info.name]);
    w.Key(suite.c_str()), w.StartObject();
    w.Key("samples"), w.Uint64(end - b);
    w.Key("samples_with_matches"), w.Uint64(matched_samples);
    w.Key("mean_contamination"), w.Double(end > b ? sum_c / static_cast<double>(end - b) : 0.0);
    w.Key("subsets"), w.StartObject();
    for (const SubsetInfo& info : subsets()) {
      const auto [k, c] = subset_stats[info.name];
      w.Key(info.name), w.StartObject();
      w.Key("label"), w.String(info.label);
      w.Key("count"), w.Uint64(k);
      w.Key("avg_contamination"), w.Double(k ? c / static_cast<double>(k) : 0.0);
      w.EndObject();
    }
    w.EndObject();
    w.EndObject();
  }
  w.EndObject();

  // Matched n-grams, and the most matched corpus documents.
  std::string matched;
  size_t distinct_matched = 0;
  for (uint32_t id = 0; id < st.hits.size(); ++id) {
    if (!st.hits[id]) continue;
    ++distinct_matched;
    const size_t sample = index.sample_of(id);
    const auto [si, doc_id] = e.suite_doc(sample);
    const auto ids = index.sample_ngrams(sample);
    const auto pos = static_cast<size_t>(std::find(ids.begin(), ids.end(), id) - ids.begin());
    rapidjson::StringBuffer lb;
    JsonWriter lw(lb);
    lw.StartObject();
    lw.Key("ngram"), lw.Uint(id);
    lw.Key("hits"), lw.Uint64(st.hits[id]);
    lw.Key("suite"), lw.String(e.settings.suites[si].c_str());
    lw.Key("doc_id"), lw.Uint64(doc_id);
    lw.Key("position"), lw.Uint64(pos);
    lw.Key("locations"), lw.StartArray();
    if (const auto it = st.where.find(id); it != st.where.end())
      for (const Location& l : it->second) lw.StartArray(), lw.Uint(l.source), lw.Uint64(l.doc), lw.EndArray();
    lw.EndArray();
    lw.EndObject();
    matched += lb.GetString();
    matched += '\n';
  }
  write_file(out / kMatchedNgramsFile, matched);
  w.Key("distinct_ngrams_matched"), w.Uint64(distinct_matched);
  w.Key("top_documents"), w.StartArray();
  for (const DocMatches& d : st.top_docs) {
    const auto [si, doc_id] = e.suite_doc(index.sample_of(d.example_ngram));
    w.StartObject();
    w.Key("source"), w.Uint(d.where.source);
    w.Key("source_name"), w.String(source_names.at(d.where.source).c_str());
    w.Key("doc"), w.Uint64(d.where.doc);
    w.Key("matches"), w.Uint64(d.matches);
    w.Key("example"), w.StartObject(), w.Key("suite"), w.String(e.settings.suites[si].c_str());
    w.Key("doc_id"), w.Uint64(doc_id), w.EndObject();
    w.EndObject();
  }
  w.EndArray();
  // Everything above is a function of the inputs; only this block differs between runs.
  w.Key("timings"), w.StartObject();
  w.Key("index_seconds"), w.Double(t.index_seconds);
  w.Key("scan_seconds"), w.Double(t.scan_seconds);
  w.Key("shards"), w.Uint64(t.shards);
  w.Key("tokens_per_second"), w.Double(t.scan_seconds > 0 ? static_cast<double>(st.tokens) / t.scan_seconds : 0.0);
  w.EndObject();
  w.EndObject();
  write_file(out / kSummaryFile, std::string(sb.GetString()) + "\n");
}

// ---------------------------------------------------------------------------------------------
// scan and merge

struct ScanArgs {
  std::string data = default_data_dir();
  std::string suites = "mmlu,gsm8k,math,drop,arc";
  std::vector<std::string> corpus;
  std::string tokenizer;
  bool words = false;
  size_t n = kDefaultN;
  size_t threads = 0;
  std::string shard;
  std::string out;
  std::string text_fields = "instruction,response";
  bool text_lines = false;
  bool cross_documents = false;
  bool no_prefilter = false;
  size_t max_locations = 4;
  size_t top_docs = 20;
  bool quiet = false;
};

std::pair<std::vector<std::string>, std::vector<uint64_t>> describe(const std::vector<std::unique_ptr<CorpusSource>>& c) {
  std::vector<std::string> names;
  std::vector<uint64_t> docs;
  for (const auto& s : c) names.push_back(s->name()), docs.push_back(s->num_documents());
  return {names, docs};
}

// The settings that decide the benchmark index (shared by `scan` and `index`).
Settings index_settings(const ScanArgs& a) {
  Settings s;
  s.data = fs::absolute(a.data).lexically_normal().string();
  for (const auto& name : split_list(a.suites)) s.suites.push_back(tasks::canonical_suite_name(name));
  if (s.suites.empty()) throw Error("--suites: no suite given");
  s.tokenizer = a.tokenizer.empty() ? "" : fs::absolute(a.tokenizer).lexically_normal().string();
  s.words = a.words;
  s.n = a.n;
  return s;
}

void run_scan(const ScanArgs& a) {
  Settings s = index_settings(a);
  for (const auto& c : a.corpus) s.corpus.push_back(fs::absolute(c).lexically_normal().string());
  s.text_fields = split_list(a.text_fields);
  s.text_lines = a.text_lines;
  s.cross_documents = a.cross_documents;
  s.prefilter = !a.no_prefilter;
  s.max_locations = a.max_locations;
  s.top_docs = a.top_docs;
  const fs::path out = a.out;
  const Shard shard = a.shard.empty() ? Shard{} : parse_shard(a.shard);
  const fs::path marker = out / kShardDir / (shard_stem(shard) + ".done");
  if (!a.shard.empty() && fs::exists(marker)) {
    std::fprintf(stderr, "contam scan: shard %s already complete (%s), skipping\n", a.shard.c_str(), marker.c_str());
    return;
  }
  const auto engine = build_engine(s);
  if (!a.quiet)
    std::fprintf(stderr, "contam scan: indexed %zu samples, %zu distinct %zu-grams (%.1f MB) in %.1f s\n",
                 engine->index->num_samples(), engine->index->num_distinct(), s.n,
                 static_cast<double>(engine->index->memory_bytes()) / kMiB, engine->index_seconds);
  const auto corpus = open_all(*engine);
  const auto start = Clock::now();
  const ScanState st = scan(*engine->index, corpus,
                            {.threads = a.threads, .shard = shard, .progress = !a.quiet, .max_locations = s.max_locations,
                             .max_top_docs = s.top_docs});
  const double secs = seconds_since(start);
  if (!a.quiet)
    std::fprintf(stderr, "contam scan: %llu tokens in %llu documents, %.1f s (%.1f M tokens/s)\n",
                 static_cast<unsigned long long>(st.tokens), static_cast<unsigned long long>(st.documents), secs,
                 secs > 0 ? static_cast<double>(st.tokens) / kMega / secs : 0.0);
  if (a.shard.empty()) {
    const auto [names, docs] = describe(corpus);
    write_outputs(*engine, names, docs, st, {engine->index_seconds, secs, 1}, out);
    return;
  }
  fs::create_directories(out / kShardDir);
  write_file(out / kShardDir / (shard_stem(shard) + ".json"), shard_json(s, shard, st, secs));
  write_file(marker, "done\n");
}

// `contam index`: builds the benchmark index only and prints its size, to check the settings and
// the memory a scan will need before starting a long job.
void run_index(const ScanArgs& a) {
  const Settings s = index_settings(a);
  const auto e = build_engine(s);
  rapidjson::StringBuffer b;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(b);
  w.StartObject();
  w.Key("n"), w.Uint64(s.n);
  w.Key("mode"), w.String(s.words ? "words" : "tokens");
  w.Key("suites"), w.StartObject();
  for (size_t i = 0; i < s.suites.size(); ++i) {
    size_t tokens = 0;
    for (size_t smp = e->suite_begin[i]; smp < e->suite_begin[i + 1]; ++smp) tokens += e->index->sample_tokens(smp).size();
    w.Key(s.suites[i].c_str()), w.StartObject();
    w.Key("samples"), w.Uint64(e->suite_begin[i + 1] - e->suite_begin[i]);
    w.Key("tokens"), w.Uint64(tokens);
    w.EndObject();
  }
  w.EndObject();
  w.Key("ngram_positions"), w.Uint64(e->index->num_positions());
  w.Key("distinct_ngrams"), w.Uint64(e->index->num_distinct());
  w.Key("memory_bytes"), w.Uint64(e->index->memory_bytes());
  w.Key("build_seconds"), w.Double(e->index_seconds);
  w.EndObject();
  std::printf("%s\n", b.GetString());
}

struct MergeArgs {
  std::string out;
};

void run_merge(const MergeArgs& a) {
  const fs::path dir = fs::path(a.out) / kShardDir;
  if (!fs::is_directory(dir)) throw Error(cat(dir.string(), ": no shard directory (run contam scan --shard i/N first)"));
  std::map<uint64_t, fs::path> files;
  uint64_t count = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".json") continue;
    uint64_t i = 0, n = 0;
    if (std::sscanf(e.path().filename().c_str(), "shard-%lu-of-%lu.json", &i, &n) != 2) continue;
    if (count && n != count) throw Error(cat(dir.string(), ": shards of different counts (", count, " and ", n, ")"));
    count = n;
    files[i] = e.path();
  }
  if (!count) throw Error(cat(dir.string(), ": no shard-*-of-*.json files"));
  std::string missing;
  for (uint64_t i = 0; i < count; ++i)
    if (!files.count(i) || !fs::exists(dir / (shard_stem({i, count}) + ".done"))) missing += cat(" ", i);
  if (!missing.empty()) throw Error(cat("contam merge: shards not complete:", missing, " (of ", count, ")"));

  std::unique_ptr<Engine> engine;
  ScanState total;
  Timings t;
  t.shards = count;
  for (uint64_t i = 0; i < count; ++i) {
    const rapidjson::Document d = read_json(files[i]);
    const Settings s = Settings::read(member(d, "settings", files[i]), files[i]);
    if (!engine) {
      engine = build_engine(s);
      t.index_seconds = engine->index_seconds;
    } else if (s.json() != engine->settings.json()) {
      throw Error(cat(files[i].string(), ": settings differ from shard 0's"));
    }
    ScanState st = read_shard_state(d, files[i], engine->index->num_distinct(), s);
    if (st.fingerprint != engine->index->fingerprint())
      throw Error(cat(files[i].string(), ": fingerprint differs from the rebuilt index (benchmark data or tokenizer changed?)"));
    t.scan_seconds += member(d, "scan_seconds", files[i]).GetDouble();
    if (i == 0) {
      total = std::move(st);
    } else {
      total.merge(st);
    }
  }
  const auto corpus = open_all(*engine);
  const auto [names, docs] = describe(corpus);
  write_outputs(*engine, names, docs, total, t, a.out);
  std::fprintf(stderr, "contam merge: %llu shards, %llu tokens -> %s\n", static_cast<unsigned long long>(count),
               static_cast<unsigned long long>(total.tokens), a.out.c_str());
}

// ---------------------------------------------------------------------------------------------
// zscore

struct ZArgs {
  std::string contam;
  std::string samples;
  std::string suite;
  std::string metric = "acc";
  std::string json;
};

std::map<uint64_t, double> read_contamination(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw Error(cat(file.string(), ": cannot open (run contam scan for this suite first)"));
  std::map<uint64_t, double> out;
  std::string line;
  for (size_t no = 1; std::getline(in, line); ++no) {
    if (line.empty()) continue;
    rapidjson::Document d;
    d.Parse(line.c_str(), line.size());
    if (d.HasParseError() || !d.IsObject() || !d.HasMember("doc_id") || !d["doc_id"].IsUint64() ||
        !d.HasMember("contamination") || !d["contamination"].IsNumber())
      throw Error(cat(file.string(), ":", no, ": expected an object with an integer doc_id and a numeric contamination"));
    out[d["doc_id"].GetUint64()] = d["contamination"].GetDouble();
  }
  return out;
}

void write_z_json(JsonWriter& w, const SubsetZ& r) {
  w.StartObject();
  w.Key("subset"), w.String(r.info.name);
  w.Key("label"), w.String(r.info.label);
  w.Key("k"), w.Uint64(r.k);
  w.Key("avg_contamination"), w.Double(r.avg_contamination);
  w.Key("mean"), w.Double(r.mean);
  w.Key("sigma"), w.Double(r.sigma);
  w.Key("sigma_fpc"), w.Double(r.sigma_fpc);
  w.Key("z"), r.z ? w.Double(*r.z) : w.Null();
  w.Key("z_fpc"), r.z_fpc ? w.Double(*r.z_fpc) : w.Null();
  w.EndObject();
}

std::string opt_num(const std::optional<double>& v) { return v ? cat(std::round(*v * kPercent) / kPercent) : "n/a"; }

void run_zscore(const ZArgs& a) {
  const std::string suite = tasks::canonical_suite_name(a.suite);
  const auto contam = read_contamination(fs::path(a.contam) / (suite + ".jsonl"));
  std::ifstream in(a.samples);
  if (!in) throw Error(cat(a.samples, ": cannot open"));
  std::map<uint64_t, double> scores;
  std::string line;
  for (size_t no = 1; std::getline(in, line); ++no) {
    if (line.empty()) continue;
    rapidjson::Document d;
    d.Parse(line.c_str(), line.size());
    const auto where = [&] { return cat(a.samples, ":", no); };
    if (d.HasParseError() || !d.IsObject()) throw Error(cat(where(), ": not a JSON object"));
    if (!d.HasMember("doc_id") || !d["doc_id"].IsUint64()) throw Error(cat(where(), ": missing integer doc_id"));
    if (!d.HasMember(a.metric.c_str())) throw Error(cat(where(), ": missing metric \"", a.metric, "\""));
    const auto& v = d[a.metric.c_str()];
    double x = 0;
    if (v.IsBool()) {
      x = v.GetBool() ? 1.0 : 0.0;
    } else if (v.IsNumber()) {
      x = v.GetDouble();
    } else {
      throw Error(cat(where(), ": metric \"", a.metric, "\" is not a number"));
    }
    const uint64_t id = d["doc_id"].GetUint64();
    if (!contam.count(id)) throw Error(cat(where(), ": doc_id ", id, " is not in the contamination results of ", suite));
    if (!scores.emplace(id, x).second) throw Error(cat(where(), ": doc_id ", id, " given twice"));
  }
  std::vector<double> c, x;
  for (const auto& [id, v] : scores) c.push_back(contam.at(id)), x.push_back(v);
  const ZTest t = contamination_ztest(c, x);
  const size_t unscored = contam.size() - scores.size();

  std::printf("Contamination Z-test: %s, metric %s, %zu scored samples (%zu without a score)\n", suite.c_str(),
              a.metric.c_str(), t.n, unscored);
  std::printf("full set: mean %.4f, s %.4f\n\n", t.mu, t.s);
  std::printf("| subset | avg contamination | samples | mean | Z (s/sqrt(k)) | Z (finite-population) |\n");
  std::printf("|---|---:|---:|---:|---:|---:|\n");
  for (const SubsetZ& r : t.rows)
    std::printf("| %s | %.1f%% | %zu | %.4f | %s | %s |\n", r.info.label, r.avg_contamination, r.k, r.mean,
                opt_num(r.z).c_str(), opt_num(r.z_fpc).c_str());
  std::printf("\nverdict: %s (|Z| > %.0f in all four subsets, published convention)\n",
              t.significant ? "SIGNIFICANT contamination" : "no significant contamination", kZSignificant);
  std::printf("strictly clean (0%%) re-score: %zu samples, mean %.4f (full set %.4f, difference %+.4f)\n",
              t.strictly_clean.k, t.strictly_clean.mean, t.mu, t.strictly_clean.mean - t.mu);
  if (a.json.empty()) return;
  rapidjson::StringBuffer b;
  JsonWriter w(b);
  w.StartObject();
  w.Key("suite"), w.String(suite.c_str());
  w.Key("metric"), w.String(a.metric.c_str());
  w.Key("n"), w.Uint64(t.n);
  w.Key("unscored"), w.Uint64(unscored);
  w.Key("mu"), w.Double(t.mu);
  w.Key("s"), w.Double(t.s);
  w.Key("rows"), w.StartArray();
  for (const SubsetZ& r : t.rows) write_z_json(w, r);
  w.EndArray();
  w.Key("significant"), w.Bool(t.significant);
  w.Key("strictly_clean"), write_z_json(w, t.strictly_clean);
  w.EndObject();
  write_file(a.json, std::string(b.GetString()) + "\n");
}

// ---------------------------------------------------------------------------------------------
// report

struct ReportArgs {
  std::string contam;
  std::string html;
  std::string md;
};

std::string fmt(double v, int digits = 1) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}

// Bin 0 is exactly 0%; bin i (1..10) is ((i-1)*10%, i*10%].
std::vector<size_t> histogram(const std::map<uint64_t, double>& c) {
  std::vector<size_t> h(kHistBins + 1, 0);
  for (const auto& [_, v] : c) {
    if (v == 0.0) {
      ++h[0];
      continue;
    }
    const int bin = std::clamp(static_cast<int>(std::ceil(v / kHistWidth)), 1, kHistBins);
    ++h[static_cast<size_t>(bin)];
  }
  return h;
}

std::string hist_label(size_t bin) {
  if (bin == 0) return "0%";
  return cat(static_cast<int>((bin - 1) * kHistWidth), "-", static_cast<int>(bin * kHistWidth), "%");
}

std::string svg_histogram(const std::vector<size_t>& h) {
  // Square-root bar heights: the 0% bar is usually orders of magnitude taller than the rest.
  constexpr int kBarW = 44, kGap = 6, kPlotH = 140, kTop = 18, kLabelH = 30;
  const double top = std::sqrt(static_cast<double>(std::max<size_t>(1, *std::max_element(h.begin(), h.end()))));
  const int width = static_cast<int>(h.size()) * (kBarW + kGap) + kGap;
  std::string s = cat("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", width, "\" height=\"", kTop + kPlotH + kLabelH,
                      "\" role=\"img\">");
  for (size_t i = 0; i < h.size(); ++i) {
    const int bh = static_cast<int>(std::round(kPlotH * std::sqrt(static_cast<double>(h[i])) / top));
    const int x = kGap + static_cast<int>(i) * (kBarW + kGap);
    s += cat("<rect x=\"", x, "\" y=\"", kTop + kPlotH - bh, "\" width=\"", kBarW, "\" height=\"", bh, "\" fill=\"",
             i == 0 ? "#4c9a5f" : "#c0504d", "\"/>");
    s += cat("<text x=\"", x + kBarW / 2, "\" y=\"", kTop + kPlotH - bh - 4, "\" font-size=\"10\" text-anchor=\"middle\">",
             h[i], "</text>");
    s += cat("<text x=\"", x + kBarW / 2, "\" y=\"", kTop + kPlotH + 14, "\" font-size=\"10\" text-anchor=\"middle\">",
             hist_label(i), "</text>");
  }
  return s + "</svg>";
}

void run_report(const ReportArgs& a) {
  const fs::path dir = a.contam;
  const rapidjson::Document sum = read_json(dir / kSummaryFile);
  const auto& settings = member(sum, "settings", dir / kSummaryFile);
  const auto& corpus = member(sum, "corpus", dir / kSummaryFile);
  const auto& suites = member(sum, "suites", dir / kSummaryFile);
  const std::string mode = settings["mode"].GetString();
  const std::string title = "Contamination report";
  std::string md = cat("# ", title, "\n\n");
  std::string html = cat("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>", title,
                         "</title><style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
                         "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:4px 8px;"
                         "text-align:right}th{background:#eee}td:first-child{text-align:left}"
                         ".note{color:#555;font-size:90%}</style></head><body><h1>",
                         title, "</h1>");
  const std::string setup =
      cat(settings["n"].GetUint64(), "-gram ", mode == "words" ? "word" : "token", " overlap",
          mode == "words" ? std::string(" (lower-cased, punctuation stripped)") : cat(" (tokenizer ", settings["tokenizer"].GetString(), ")"),
          "; corpus: ", corpus["tokens"].GetUint64(), " ", mode == "words" ? "words" : "tokens", " in ",
          corpus["documents"].GetUint64(), " documents from ", corpus["sources"].Size(), " source(s)");
  md += setup + "\n\n";
  html += cat("<p>", reports::escape(setup), "</p>");

  std::string table_md =
      "| suite | samples | mean contamination | with matches | strictly clean (0%) | clean (<20%) | not clean (>=20%) | not dirty (<80%) | dirty (>=80%) |\n"
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  std::string table_html =
      "<table><tr><th>suite</th><th>samples</th><th>mean contamination</th><th>with matches</th><th>strictly clean (0%)</th>"
      "<th>clean (&lt;20%)</th><th>not clean (&ge;20%)</th><th>not dirty (&lt;80%)</th><th>dirty (&ge;80%)</th></tr>";
  std::string hist_md, hist_html;
  for (const auto& s : suites.GetObject()) {
    const std::string name = s.name.GetString();
    const auto& v = s.value;
    std::string row_md = cat("| ", name, " | ", v["samples"].GetUint64(), " | ", fmt(v["mean_contamination"].GetDouble()), "% | ",
                             v["samples_with_matches"].GetUint64());
    std::string row_html = cat("<tr><td>", reports::escape(name), "</td><td>", v["samples"].GetUint64(), "</td><td>",
                               fmt(v["mean_contamination"].GetDouble()), "%</td><td>", v["samples_with_matches"].GetUint64(), "</td>");
    for (const SubsetInfo& info : subsets()) {
      const auto& sub = v["subsets"][info.name];
      const std::string cell = cat(sub["count"].GetUint64(), " (avg ", fmt(sub["avg_contamination"].GetDouble()), "%)");
      row_md += " | " + cell;
      row_html += "<td>" + cell + "</td>";
    }
    table_md += row_md + " |\n";
    table_html += row_html + "</tr>";
    const auto h = histogram(read_contamination(dir / (name + ".jsonl")));
    hist_md += cat("\n### ", name, "\n\n| contamination | samples |\n|---|---:|\n");
    for (size_t i = 0; i < h.size(); ++i) hist_md += cat("| ", hist_label(i), " | ", h[i], " |\n");
    hist_html += cat("<h3>", reports::escape(name), "</h3>", svg_histogram(h));
  }
  md += "## Subsets\n\nCounts per subset, with the average contamination of its samples (DESIGN §5 thresholds).\n\n" +
        table_md + "\n## Contamination histograms\n" + hist_md;
  html += "<h2>Subsets</h2><p class=\"note\">Counts per subset, with the average contamination of its samples.</p>" +
          table_html + "</table><h2>Contamination histograms</h2><p class=\"note\">Bar heights are square-root scaled; "
          "numbers are sample counts.</p>" + hist_html;

  const auto& top = member(sum, "top_documents", dir / kSummaryFile);
  md += "\n## Most matched training documents\n\n| # | source | document | matched n-grams | example benchmark item |\n|---:|---|---:|---:|---|\n";
  html += "<h2>Most matched training documents</h2><table><tr><th>#</th><th>source</th><th>document</th><th>matched n-grams</th>"
          "<th>example benchmark item</th></tr>";
  size_t rank = 0;
  for (const auto& d : top.GetArray()) {
    if (++rank > kReportTopDocs) break;
    const std::string src = d["source_name"].GetString();
    const std::string ex = cat(d["example"]["suite"].GetString(), " doc_id ", d["example"]["doc_id"].GetUint64());
    md += cat("| ", rank, " | ", src, " | ", d["doc"].GetUint64(), " | ", d["matches"].GetUint64(), " | ", ex, " |\n");
    html += cat("<tr><td>", rank, "</td><td>", reports::escape(src), "</td><td>", d["doc"].GetUint64(), "</td><td>",
                d["matches"].GetUint64(), "</td><td>", reports::escape(ex), "</td></tr>");
  }
  if (rank == 0) md += "| | (no document matched) | | | |\n";
  html += "</table></body></html>\n";
  if (!a.md.empty()) write_file(a.md, md);
  if (!a.html.empty()) write_file(a.html, html);
  if (a.md.empty() && a.html.empty()) std::fputs(md.c_str(), stdout);
}

// ---------------------------------------------------------------------------------------------
// bench contam: a synthetic corpus streamed through a realistic index, against a baseline

struct BenchArgs {
  double tokens = 2e9;
  size_t threads = 0;
  size_t samples = 40000;
  size_t sample_len = 120;
  size_t n = kDefaultN;
  double pool_tokens = 64e6;
  double baseline_tokens = 2e8;
  uint64_t seed = 1;
};

// Token ids roughly Zipf-distributed (log-uniform) over a 65,536-entry vocabulary, as in text.
constexpr double kBenchVocab = 65536;
constexpr size_t kMinDocLen = 16, kMaxDocLen = 2048;
// One benchmark slice planted per this many corpus tokens, so matches occur at a realistic rate.
constexpr uint64_t kPlantEvery = 200000;
constexpr uint64_t kPoolSeedSalt = 0x5EED5A17ull;

// The in-memory token pool the synthetic corpus cycles through, cut into documents of random length.
struct SyntheticPool {
  std::vector<Token> tokens;
  std::vector<uint64_t> offsets;  // document d of a pass is tokens[offsets[d], offsets[d+1])

  SyntheticPool(const std::vector<std::vector<Token>>& samples, size_t size, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0, 1);
    tokens.resize(size);
    for (auto& t : tokens) t = static_cast<Token>(std::pow(kBenchVocab, u(rng)) - 1);
    for (size_t at = 0; at + kMaxDocLen < size; at += kPlantEvery) {
      const auto& s = samples[rng() % samples.size()];
      std::copy(s.begin(), s.end(), tokens.begin() + static_cast<std::ptrdiff_t>(at + rng() % kMaxDocLen));
    }
    offsets.push_back(0);
    while (offsets.back() < size)
      offsets.push_back(std::min<uint64_t>(size, offsets.back() + kMinDocLen + rng() % (kMaxDocLen - kMinDocLen)));
  }
};

// `total` tokens: whole passes over the pool, then the documents of a partial pass that reach it.
class SyntheticCorpus : public CorpusSource {
 public:
  SyntheticCorpus(const SyntheticPool& pool, uint64_t total) : pool_(pool), per_pass_(pool.offsets.size() - 1) {
    const uint64_t size = pool.tokens.size();
    docs_ = total / size * per_pass_;
    docs_ += static_cast<uint64_t>(std::lower_bound(pool.offsets.begin(), pool.offsets.end(), total % size) -
                                   pool.offsets.begin());
  }
  std::string name() const override { return "synthetic"; }
  uint64_t num_documents() const override { return docs_; }
  void read(uint64_t b, uint64_t e, const std::function<void(uint64_t, std::span<const Token>)>& fn) const override {
    for (uint64_t d = b; d < e; ++d) fn(d, doc(d));
  }
  std::span<const Token> doc(uint64_t d) const {
    const uint64_t i = d % per_pass_;
    return {pool_.tokens.data() + pool_.offsets[i], pool_.offsets[i + 1] - pool_.offsets[i]};
  }

 private:
  const SyntheticPool& pool_;
  uint64_t per_pass_ = 0, docs_ = 0;
};

// Process CPU seconds (all threads): on a shared machine, tokens per CPU-second is the per-core
// figure that wall time hides.
double cpu_seconds() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / kMega;
}

double peak_rss_mib() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / kKiB;  // ru_maxrss is in KiB on Linux
}

void run_bench(const BenchArgs& a) {
  const size_t hw = std::max(1u, std::thread::hardware_concurrency());
  const size_t threads = a.threads ? a.threads : hw;
  std::mt19937_64 rng(a.seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<std::vector<Token>> samples(a.samples);
  for (auto& s : samples) {
    s.resize(a.sample_len / 2 + rng() % a.sample_len);
    for (auto& t : s) t = static_cast<Token>(std::pow(kBenchVocab, u(rng)) - 1);
  }
  auto t0 = Clock::now();
  NgramIndex index(samples, {.n = a.n});
  const double build_s = seconds_since(t0);
  NgramIndex plain(samples, {.n = a.n, .prefilter = false});
  const auto total = static_cast<uint64_t>(a.tokens);
  t0 = Clock::now();
  // A different stream from the samples': the same seed would make the pool start with them.
  const SyntheticPool pool(samples, static_cast<size_t>(a.pool_tokens), a.seed ^ kPoolSeedSalt);
  const double gen_s = seconds_since(t0);
  std::printf("bench contam: %zu samples, %zu distinct %zu-grams, index %.1f MiB (built in %.2f s); "
              "synthetic pool %.0f M tokens generated in %.1f s\n",
              index.num_samples(), index.num_distinct(), a.n, static_cast<double>(index.memory_bytes()) / kMiB, build_s,
              a.pool_tokens / kMega, gen_s);

  const auto timed_scan = [&](const NgramIndex& idx, size_t t, uint64_t limit) {
    std::vector<std::unique_ptr<CorpusSource>> c;
    c.push_back(std::make_unique<SyntheticCorpus>(pool, limit));
    const auto start = Clock::now();
    const double cpu0 = cpu_seconds();
    const ScanState st = scan(idx, c, {.threads = t});
    const double s = seconds_since(start), cpu = cpu_seconds() - cpu0;
    uint64_t hits = 0;
    for (uint64_t h : st.hits) hits += h;
    return std::make_tuple(st.tokens, s, hits, cpu);
  };
  std::vector<size_t> counts = {1};
  if (threads > 1) counts.push_back(threads);
  double best_rate = 0, core_rate = 0;
  for (size_t t : counts) {
    const auto [tok, s, hits, cpu] = timed_scan(index, t, total);
    const double rate = static_cast<double>(tok) / s;
    best_rate = std::max(best_rate, rate);
    if (t == 1) core_rate = static_cast<double>(tok) / cpu;
    std::printf("engine  %zu thread(s): %.3g tokens in %.2f s = %.1f M tokens/s wall, %.1f M tokens per CPU-second, "
                "%llu matched windows\n",
                t, static_cast<double>(tok), s, rate / kMega, static_cast<double>(tok) / cpu / kMega,
                static_cast<unsigned long long>(hits));
  }
  const auto base_total = std::min<uint64_t>(total, static_cast<uint64_t>(a.baseline_tokens));
  {
    const auto [tok, s, hits, cpu] = timed_scan(plain, 1, base_total);
    std::printf("engine without prefilter, 1 thread: %.3g tokens in %.2f s = %.1f M tokens/s wall, %.1f M tokens per "
                "CPU-second, %llu matched windows\n",
                static_cast<double>(tok), s, static_cast<double>(tok) / s / kMega, static_cast<double>(tok) / cpu / kMega,
                static_cast<unsigned long long>(hits));
  }
  {
    // The straightforward version: every window hashed with XXH3 and looked up in a std::unordered_set.
    std::unordered_set<uint64_t> set;
    for (const auto& smp : samples)
      for (size_t p = 0; p + a.n <= smp.size(); ++p) set.insert(xxh3_window(smp.data() + p, a.n));
    const SyntheticCorpus c(pool, base_total);
    const auto start = Clock::now();
    const double cpu0 = cpu_seconds();
    uint64_t tok = 0, hits = 0;
    for (uint64_t d = 0; d < c.num_documents(); ++d) {
      const auto doc = c.doc(d);
      tok += doc.size();
      for (size_t p = 0; p + a.n <= doc.size(); ++p) hits += set.count(xxh3_window(doc.data() + p, a.n));
    }
    const double s = seconds_since(start), cpu = cpu_seconds() - cpu0;
    std::printf("baseline unordered_set<uint64_t>, 1 thread: %.3g tokens in %.2f s = %.1f M tokens/s wall, %.1f M tokens "
                "per CPU-second, %llu matched windows\n",
                static_cast<double>(tok), s, static_cast<double>(tok) / s / kMega, static_cast<double>(tok) / cpu / kMega,
                static_cast<unsigned long long>(hits));
  }
  constexpr double kSecondsPerMinute = 60, kSecondsPerHour = 3600;
  std::printf("peak RSS %.0f MiB; projected 40e9-token scan: %.1f min on this machine at the best wall rate; "
              "%.2f core-hours at the 1-thread CPU-second rate (%.1f min on a %zu-core node if it scales linearly)\n",
              peak_rss_mib(), kFullCorpusTokens / best_rate / kSecondsPerMinute,
              kFullCorpusTokens / core_rate / kSecondsPerHour, kFullCorpusTokens / core_rate / kSecondsPerMinute / kNodeCores,
              kNodeCores);
}

}  // namespace

void add_contam_commands(CLI::App& app, CLI::App& bench) {
  auto* contam = app.add_subcommand("contam", "Benchmark contamination: n-gram overlap scan, subsets, Z-test, report");
  contam->require_subcommand(1);

  auto sa = std::make_shared<ScanArgs>();
  auto* scan_cmd = contam->add_subcommand("scan", "Scan a training corpus for benchmark n-gram overlap");
  scan_cmd->add_option("--data", sa->data, "Benchmark data directory")->capture_default_str();
  scan_cmd->add_option("--suites", sa->suites, "Comma-separated suites")->capture_default_str();
  scan_cmd->add_option("--corpus", sa->corpus, "Tokenized dir(s), JSONL (FILE.jsonl#f1,f2 picks its fields) or text files")->required()->expected(1, -1);
  auto* tok_opt = scan_cmd->add_option("--tokenizer", sa->tokenizer, "tokenizer.json (token mode)");
  auto* words_opt = scan_cmd->add_flag("--words", sa->words, "Word mode (no tokenizer; GPT-3 style words)");
  tok_opt->excludes(words_opt);
  scan_cmd->add_option("--n", sa->n, "n-gram length")->capture_default_str();
  scan_cmd->add_option("--threads", sa->threads, "Threads (0 = all cores)")->capture_default_str();
  scan_cmd->add_option("--shard", sa->shard, "Scan only shard i of N (i/N); writes OUT/shards/");
  scan_cmd->add_option("--out", sa->out, "Output directory")->required();
  scan_cmd->add_option("--text-fields", sa->text_fields, "JSONL fields that make a document")->capture_default_str();
  scan_cmd->add_flag("--text-lines", sa->text_lines, "Plain text: one document per line (default: per file)");
  scan_cmd->add_flag("--cross-documents", sa->cross_documents,
                    "Tokenized dirs as one token stream: n-grams may cross instruction/response pairs");
  scan_cmd->add_flag("--no-prefilter", sa->no_prefilter, "Disable the Bloom prefilter (for comparison)");
  scan_cmd->add_option("--max-locations", sa->max_locations, "Corpus locations kept per n-gram")->capture_default_str();
  scan_cmd->add_option("--top-docs", sa->top_docs, "Most matched corpus documents kept")->capture_default_str();
  scan_cmd->add_flag("--quiet", sa->quiet, "No progress on stderr");
  scan_cmd->callback([sa] { run_scan(*sa); });

  auto ia = std::make_shared<ScanArgs>();
  auto* index_cmd = contam->add_subcommand("index", "Build the benchmark n-gram index only and print its size");
  index_cmd->add_option("--data", ia->data, "Benchmark data directory")->capture_default_str();
  index_cmd->add_option("--suites", ia->suites, "Comma-separated suites")->capture_default_str();
  index_cmd->add_option("--tokenizer", ia->tokenizer, "tokenizer.json (token mode)");
  index_cmd->add_flag("--words", ia->words, "Word mode");
  index_cmd->add_option("--n", ia->n, "n-gram length")->capture_default_str();
  index_cmd->callback([ia] { run_index(*ia); });

  auto ma = std::make_shared<MergeArgs>();
  auto* merge_cmd = contam->add_subcommand("merge", "Merge completed shards of OUT/shards into the final outputs");
  merge_cmd->add_option("--out", ma->out, "The --out directory the shards were written to")->required();
  merge_cmd->callback([ma] { run_merge(*ma); });

  auto za = std::make_shared<ZArgs>();
  auto* z_cmd = contam->add_subcommand("zscore", "Four-subset Z-test (DESIGN §5) and the strictly clean re-score");
  z_cmd->add_option("--contam", za->contam, "Output directory of contam scan")->required();
  z_cmd->add_option("--samples", za->samples, "Per-sample scores (JSONL with doc_id and the metric)")->required();
  z_cmd->add_option("--suite", za->suite, "Suite")->required();
  z_cmd->add_option("--metric", za->metric, "Metric field")->capture_default_str();
  z_cmd->add_option("--json", za->json, "Also write the result as JSON to this file");
  z_cmd->callback([za] { run_zscore(*za); });

  auto ra = std::make_shared<ReportArgs>();
  auto* r_cmd = contam->add_subcommand("report", "Markdown and self-contained HTML report of a scan");
  r_cmd->add_option("--contam", ra->contam, "Output directory of contam scan")->required();
  r_cmd->add_option("--html", ra->html, "Write HTML here");
  r_cmd->add_option("--md", ra->md, "Write Markdown here (neither: Markdown on stdout)");
  r_cmd->callback([ra] { run_report(*ra); });

  auto ba = std::make_shared<BenchArgs>();
  auto* b_cmd = bench.add_subcommand("contam", "Scan throughput on a synthetic corpus vs an unordered_set baseline");
  b_cmd->add_option("--tokens", ba->tokens, "Corpus tokens to scan")->capture_default_str();
  b_cmd->add_option("--threads", ba->threads, "Threads for the parallel run (0 = all cores)")->capture_default_str();
  b_cmd->add_option("--samples", ba->samples, "Synthetic benchmark samples")->capture_default_str();
  b_cmd->add_option("--sample-len", ba->sample_len, "Mean sample length (tokens)")->capture_default_str();
  b_cmd->add_option("--n", ba->n, "n-gram length")->capture_default_str();
  b_cmd->add_option("--pool-tokens", ba->pool_tokens, "Distinct synthetic tokens generated in memory")->capture_default_str();
  b_cmd->add_option("--baseline-tokens", ba->baseline_tokens, "Tokens for the single-threaded comparisons")->capture_default_str();
  b_cmd->add_option("--seed", ba->seed, "PRNG seed")->capture_default_str();
  b_cmd->callback([ba] { run_bench(*ba); });
}

}  // namespace hrm::cli
