// `hrmbench demo`: the whole toolkit end to end on embedded defaults, with no GPU and no downloads.
//
// It makes a synthetic arithmetic benchmark (GSM8K schema) and a synthetic training corpus into which
// some benchmark questions are planted verbatim (the "leak"), trains a tiny HRM-Text model on the
// CPU, evaluates it with the GSM8K protocol, scans the corpus for benchmark n-grams (which must find
// every planted question), runs the contamination Z-test on the model's scores, and writes the HTML
// reports. Each step is the public CLI, run as a child process and printed as the command a user
// would type, so the demo doubles as a walk-through.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "cli/commands.h"
#include "common/error.h"
#include "runtime/synthetic.h"

namespace hrm::cli {

extern const std::string_view kEmbeddedTokenizer;  // embedded_tokenizer.cpp (generated)

namespace {

namespace fs = std::filesystem;

constexpr const char* kMarker = ".hrmbench-demo";  // marks a directory the demo may wipe and rewrite

struct DemoArgs {
  std::string out = "demo";
  int64_t test_items = 60, leaked = 12, copies = 8, train_samples = 3000, steps = 120, batch_tokens = 2048;
  int64_t max_new_tokens = 48;
  double lr = 2e-3;
  uint64_t seed = 7;
  int threads = 0;
};

std::string json_line(std::initializer_list<std::pair<const char*, std::string>> fields) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  for (const auto& [k, v] : fields) {
    w.Key(k);
    w.String(v.c_str(), static_cast<rapidjson::SizeType>(v.size()));
  }
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize()) + "\n";
}

// Runs `hrmbench ARGS...` (this executable) and fails the demo if it fails.
void step(const std::string& title, const std::vector<std::string>& args) {
  std::string shown = "hrmbench";
  for (const auto& a : args) shown += " " + (a.find(' ') == std::string::npos ? a : "'" + a + "'");
  std::fprintf(stderr, "\n== %s\n$ %s\n", title.c_str(), shown.c_str());
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) throw Error("demo: fork failed");
  if (pid == 0) {
    std::vector<char*> argv;
    std::string self = "hrmbench";
    argv.push_back(self.data());
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw Error(cat("demo: step '", title, "' failed"));
}

void prepare_dir(const fs::path& dir) {
  if (fs::exists(dir)) {
    if (!fs::exists(dir / kMarker))
      throw Error(cat(dir.string(), " exists and was not made by `hrmbench demo`; choose another --out"));
    fs::remove_all(dir);
  }
  fs::create_directories(dir / "data" / "gsm8k");
  std::ofstream(dir / kMarker) << "written by hrmbench demo; safe to delete\n";
}

// The synthetic benchmark in the GSM8K schema, and the file of questions to plant.
void write_benchmark(const DemoArgs& a, const fs::path& dir) {
  SyntheticOptions o;
  o.n = a.test_items;
  o.seed = a.seed + 1000;  // a different stream from the training corpus
  const auto items = make_synthetic_corpus(o);
  std::ofstream test(dir / "data" / "gsm8k" / "test.jsonl"), leak(dir / "leak.jsonl");
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& s = items[i];
    test << to_gsm8k_jsonl(s) << "\n";
    if (static_cast<int64_t>(i) < a.leaked) leak << json_line({{"question", s.instruction}, {"response", s.response}});
  }
}

// Checks the scan found every planted question (fully covered: 100% of its tokens in matched
// n-grams); returns the summary. Templated synthetic items share long spans with the corpus too,
// so some unplanted items are partly or even fully covered: reported, not an error.
std::string check_leak(const DemoArgs& a, const fs::path& contam_dir) {
  std::ifstream in(contam_dir / "gsm8k.jsonl");
  std::string line;
  int64_t planted_full = 0, others_full = 0, others_dirty = 0, rows = 0;
  constexpr double kFull = 100.0, kDirty = 80.0;  // DESIGN §5: "Dirty" is >= 80% of tokens covered
  while (std::getline(in, line)) {
    rapidjson::Document d;
    d.Parse(line.c_str());
    if (d.HasParseError() || !d.HasMember("doc_id") || !d.HasMember("contamination"))
      throw Error(cat((contam_dir / "gsm8k.jsonl").string(), ": unexpected line '", line, "'"));
    const int64_t doc = d["doc_id"].GetInt64();
    const double c = d["contamination"].GetDouble();
    ++rows;
    if (doc < a.leaked) {
      planted_full += c >= kFull;
    } else {
      others_full += c >= kFull;
      others_dirty += c >= kDirty;
    }
  }
  if (rows != a.test_items) throw Error(cat("demo: contamination output has ", rows, " rows, expected ", a.test_items));
  if (planted_full != a.leaked)
    throw Error(cat("demo: the scan found only ", planted_full, " of the ", a.leaked, " planted questions"));
  return cat("leak found: all ", a.leaked, " planted questions are 100% covered by matched 13-grams. Of the ",
             a.test_items - a.leaked, " unplanted items, ", others_dirty, " are Dirty (>= 80%) and ", others_full,
             " fully covered: the synthetic problems come from shared templates, whose long common spans\n",
             "count as overlap too (see contamination.html).");
}

void run_demo(const DemoArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path dir = a.out;
  prepare_dir(dir);
  std::ofstream(dir / "tokenizer.json", std::ios::binary)
      .write(kEmbeddedTokenizer.data(), static_cast<std::streamsize>(kEmbeddedTokenizer.size()));
  write_benchmark(a, dir);
  std::fprintf(stderr, "demo: %ld synthetic GSM8K-style test items in %s; %ld of them will be planted in the corpus\n",
               a.test_items, (dir / "data").c_str(), a.leaked);
  const std::string d = dir.string();
  const std::vector<std::string> threads = a.threads > 0 ? std::vector<std::string>{"--threads", std::to_string(a.threads)}
                                                         : std::vector<std::string>{};
  step("1/6 training corpus with a planted leak",
       {"make-corpus", "--out", d + "/corpus.jsonl", "--n", std::to_string(a.train_samples), "--seed",
        std::to_string(a.seed), "--leak", d + "/leak.jsonl", "--leak-count", std::to_string(a.leaked * a.copies)});
  std::vector<std::string> train = {"train", "--data", d + "/corpus.jsonl", "--tokenizer", d + "/tokenizer.json",
                                    "--shape", "tiny", "--steps", std::to_string(a.steps), "--batch-tokens",
                                    std::to_string(a.batch_tokens), "--lr", std::to_string(a.lr), "--warmup",
                                    std::to_string(std::max<int64_t>(1, a.steps / 10)), "--ema", "0.9",
                                    "--seed", std::to_string(a.seed), "--log-every", "5", "--out", d + "/train"};
  train.insert(train.end(), threads.begin(), threads.end());
  step("2/6 train a tiny HRM-Text on the CPU", train);
  step("3/6 evaluate with the GSM8K protocol",
       {"run", "--model", d + "/train/hf", "--data", d + "/data", "--suites", "gsm8k", "--max-new-tokens",
        std::to_string(a.max_new_tokens), "--out", d + "/run"});
  step("4/6 scan the corpus for benchmark 13-grams",
       {"contam", "scan", "--data", d + "/data", "--suites", "gsm8k", "--corpus", d + "/corpus.jsonl",
        "--tokenizer", d + "/tokenizer.json", "--n", "13", "--out", d + "/contam"});
  const std::string leak = check_leak(a, dir / "contam");
  step("5/6 does contamination change the scores? (four-subset Z-test)",
       {"contam", "zscore", "--contam", d + "/contam", "--samples", d + "/run/samples/gsm8k.jsonl", "--suite",
        "gsm8k", "--json", d + "/zscore.json"});
  step("6/6 reports", {"report", d + "/run", "--html", d + "/report.html", "--md", d + "/report.md"});
  step("6/6 reports", {"contam", "report", "--contam", d + "/contam", "--html", d + "/contamination.html",
                       "--md", d + "/contamination.md"});
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("\ndemo finished in %.0f s\n%s\n", secs, leak.c_str());
  std::printf("  model      %s/train/hf (loss log %s/train/loss.jsonl)\n", d.c_str(), d.c_str());
  std::printf("  results    %s/run/results.json\n", d.c_str());
  std::printf("  reports    %s/report.html, %s/contamination.html\n", d.c_str(), d.c_str());
}

}  // namespace

void add_demo_commands(CLI::App& app) {
  auto* demo = app.add_subcommand(
      "demo", "The whole pipeline on embedded defaults: synthetic corpus with a planted leak, CPU training, "
              "evaluation, contamination scan, reports (no GPU, no downloads)");
  auto a = std::make_shared<DemoArgs>();
  demo->add_option("--out", a->out, "Output directory (rewritten if made by an earlier demo)")->capture_default_str();
  demo->add_option("--steps", a->steps, "Training steps")->capture_default_str();
  demo->add_option("--batch-tokens", a->batch_tokens, "Tokens per training batch")->capture_default_str();
  demo->add_option("--train-samples", a->train_samples, "Synthetic training problems")->capture_default_str();
  demo->add_option("--test-items", a->test_items, "Synthetic benchmark items")->capture_default_str();
  demo->add_option("--leaked", a->leaked, "Benchmark items planted in the corpus")->capture_default_str();
  demo->add_option("--copies", a->copies, "Copies of each planted item")->capture_default_str();
  demo->add_option("--max-new-tokens", a->max_new_tokens, "Generation budget per item")->capture_default_str();
  demo->add_option("--lr", a->lr, "Peak learning rate")->capture_default_str();
  demo->add_option("--seed", a->seed, "Seed of everything")->capture_default_str();
  demo->add_option("--threads", a->threads, "CPU threads for training (default: all)");
  demo->callback([a] { run_demo(*a); });
}

}  // namespace hrm::cli
