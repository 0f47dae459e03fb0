// `hrmbench tokenize` and `hrmbench bench tokenizer`: run a tokenizer.json from the command line,
// and measure its encoding speed on the benchmark texts.
//
// Not for: batch tokenization of training corpora (that is the contamination engine's job).
//
// Example:
//   hrmbench tokenize --tokenizer tok.json --text "<|im_start|>Hi<|im_end|>" --ids
//   hrmbench bench tokenizer --tokenizer tok.json --data ../shared/data/benchmarks
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "common/error.h"
#include "runtime/tokenizer.h"

namespace hrm::cli {
namespace {

struct TokenizeArgs {
  std::string tokenizer;
  std::string text;
  std::string file;
  std::string decode;
  bool ids = false;
  bool skip_special = false;
};

struct BenchArgs {
  std::string tokenizer;
  std::string data;
  int threads = 1;
  int passes = 2;
};

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(cat(path, ": cannot open"));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<TokenId> parse_id_list(const std::string& text) {
  std::vector<TokenId> ids;
  std::string item;
  // Accept "1,2,3" (what --ids prints) as well as "1 2 3".
  std::string normalized = text;
  std::replace(normalized.begin(), normalized.end(), ',', ' ');
  std::istringstream items(normalized);
  while (items >> item) {
    size_t used = 0;
    long v = -1;
    try {
      v = std::stol(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || v < 0 || v > INT32_MAX)
      throw Error(
          cat("--decode: '", item, "' is not a token id (expected comma-separated integers)"));
    ids.push_back(static_cast<TokenId>(v));
  }
  return ids;
}

void run_tokenize(const TokenizeArgs& a) {
  const Tokenizer tok = Tokenizer::from_file(a.tokenizer);
  if (!a.decode.empty()) {
    std::printf("%s\n", tok.decode(parse_id_list(a.decode), a.skip_special).c_str());
    return;
  }
  const std::string text = a.file.empty() ? a.text : read_all(a.file);
  const std::vector<TokenId> ids = tok.encode(text);
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += a.ids ? "," : " ";
    // Tokens are shown as stored in the vocabulary (ByteLevel-mapped: a space shows as 'Ġ'),
    // as `tokenizers`' Encoding.tokens does.
    out += a.ids ? std::to_string(ids[i]) : tok.id_to_token(ids[i]);
  }
  std::printf("%s\n", out.c_str());
  std::fprintf(stderr, "%zu tokens, %zu bytes\n", ids.size(), text.size());
}

// Appends every string inside `v` (depth-first, document order) to `out`.
void collect_strings(const rapidjson::Value& v, std::vector<std::string>& out) {
  if (v.IsString()) {
    out.emplace_back(v.GetString(), v.GetStringLength());
  } else if (v.IsObject()) {
    for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) collect_strings(it->value, out);
  } else if (v.IsArray()) {
    for (const auto& e : v.GetArray()) collect_strings(e, out);
  }
}

// Every string field of every row of every *.jsonl under `dir`, files in sorted path order.
std::vector<std::string> load_texts(const std::string& dir) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir))
    throw Error(cat(dir, ": not a directory (--data expects the benchmark JSONL folder)"));
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file() && e.path().extension() == ".jsonl") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) throw Error(cat(dir, ": no .jsonl files found"));
  std::vector<std::string> texts;
  for (const auto& f : files) {
    std::ifstream in(f);
    std::string line;
    size_t row = 0;
    while (std::getline(in, line)) {
      rapidjson::Document d;
      d.Parse(line.data(), line.size());
      if (d.HasParseError())
        throw Error(cat(f.string(), ": row ", row, ": malformed JSON at byte ", d.GetErrorOffset(),
                        ": ", rapidjson::GetParseError_En(d.GetParseError())));
      collect_strings(d, texts);
      ++row;
    }
  }
  return texts;
}

std::string default_data_dir() {
  const char* shared = std::getenv("HRM_SHARED");
  return std::string(shared ? shared : "../shared") + "/data/benchmarks";
}

void run_bench(const BenchArgs& a) {
  if (a.threads < 1) throw Error("--threads: expected at least 1");
  if (a.passes < 1) throw Error("--passes: expected at least 1");
  using Clock = std::chrono::steady_clock;
  const auto t_load = Clock::now();
  const Tokenizer tok = Tokenizer::from_file(a.tokenizer);
  const double load_s = std::chrono::duration<double>(Clock::now() - t_load).count();
  const std::string data = a.data.empty() ? default_data_dir() : a.data;
  const std::vector<std::string> texts = load_texts(data);
  size_t bytes = 0;
  for (const auto& t : texts) bytes += t.size();
  const double mb = static_cast<double>(bytes) / 1e6;
  std::printf("tokenizer %s: vocab %zu, loaded in %.3f s\n", a.tokenizer.c_str(), tok.vocab_size(),
              load_s);
  std::printf("data %s: %zu texts, %.2f MB\n", data.c_str(), texts.size(), mb);
  tbb::global_control threads(tbb::global_control::max_allowed_parallelism,
                              static_cast<size_t>(a.threads));
  for (int pass = 0; pass < a.passes; ++pass) {
    std::vector<size_t> counts(texts.size());
    const auto t0 = Clock::now();
    const std::clock_t cpu0 = std::clock();
    if (a.threads == 1) {
      for (size_t i = 0; i < texts.size(); ++i) counts[i] = tok.encode(texts[i]).size();
    } else {
      tbb::parallel_for(size_t{0}, texts.size(),
                        [&](size_t i) { counts[i] = tok.encode(texts[i]).size(); });
    }
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    const double cpu_s = static_cast<double>(std::clock() - cpu0) / CLOCKS_PER_SEC;
    size_t tokens = 0;
    for (size_t c : counts) tokens += c;
    // The first pass starts with an empty BPE word cache; later passes show the warm cache.
    // CPU time is printed too: on a shared machine it is the steadier of the two.
    std::printf(
        "encode pass %d (%s cache), %d thread%s: %zu tokens in %.3f s = %.2f MB/s, %.0f tokens/s "
        "(cpu %.3f s)\n",
        pass + 1, pass == 0 ? "cold" : "warm", a.threads, a.threads == 1 ? "" : "s", tokens, s,
        mb / s, static_cast<double>(tokens) / s, cpu_s);
  }
}

}  // namespace

void add_tokenizer_commands(CLI::App& app, CLI::App& bench) {
  auto t = std::make_shared<TokenizeArgs>();
  auto* tokenize =
      app.add_subcommand("tokenize", "Encode text (or decode ids) with a tokenizer.json");
  tokenize->add_option("--tokenizer", t->tokenizer, "tokenizer.json (Hugging Face format)")
      ->required();
  auto* text = tokenize->add_option("--text", t->text, "Text to encode");
  auto* file = tokenize->add_option("--file", t->file, "File whose whole content is encoded");
  auto* decode =
      tokenize->add_option("--decode", t->decode, "Comma-separated ids to decode instead");
  text->excludes(file)->excludes(decode);
  file->excludes(decode);
  tokenize->add_flag("--ids", t->ids, "Print comma-separated ids instead of tokens");
  tokenize->add_flag("--skip-special", t->skip_special, "With --decode: leave out special tokens");
  tokenize->callback([t, text, file, decode] {
    if (text->count() + file->count() + decode->count() == 0)
      throw Error("tokenize: give one of --text, --file or --decode");
    run_tokenize(*t);
  });

  auto b = std::make_shared<BenchArgs>();
  auto* tb = bench.add_subcommand("tokenizer",
                                  "Encoding speed on every string of the benchmark JSONL files");
  tb->add_option("--tokenizer", b->tokenizer, "tokenizer.json")->required();
  tb->add_option("--data", b->data,
                 "Folder of *.jsonl files (default: $HRM_SHARED/data/benchmarks or ../shared/...)");
  tb->add_option("--threads", b->threads, "Encoding threads (1 = the single-threaded figure)")
      ->capture_default_str();
  tb->add_option("--passes", b->passes, "Passes over the data (pass 1 has a cold cache)")
      ->capture_default_str();
  tb->callback([b] { run_bench(*b); });
}

}  // namespace hrm::cli
