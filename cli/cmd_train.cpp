// `hrmbench train`, `hrmbench make-corpus` and `hrmbench pack-stats`: the reference training path on
// the CPU backend or one GPU per process (--backend cuda), the synthetic instruction corpus (with
// optional planted benchmark leaks) it is demonstrated on, and how full the packers fill the token
// budget on a corpus.
//
// train writes into --out: loss.jsonl (one line per step, flushed as it goes), checkpoint/ (the
// latest training state; --resume continues from it bit-exactly) and hf/ (the EMA weights as a
// Hugging Face checkpoint, plus tokenizer.json when one was given). Progress goes to stderr.
// Started by an MPI launcher (`mpirun -np N hrmbench train ...`), every process is one data-parallel
// rank (runtime/dist.h, trainer.h); rank 0 alone prints and writes, and the metrics are global.
// Not for: the training maths (runtime/train.h, optimizer.h) or data parsing (runtime/data.h).
#include <tbb/global_control.h>

#include <rapidjson/document.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <thread>
#include <string>
#include <vector>

#include "cli/bench_config.h"
#include "cli/commands.h"
#include "common/error.h"
#include "runtime/config.h"
#include "runtime/cuda_backend.h"
#include "runtime/data.h"
#include "runtime/dist.h"
#include "runtime/optimizer.h"
#include "runtime/synthetic.h"
#include "runtime/tokenizer.h"
#include "runtime/trainer.h"

namespace hrm::cli {
namespace {

namespace fs = std::filesystem;

// The gradient backend named by --backend: the fp32 CPU reference, or CUDA (bf16 compute; by default
// the fp32 master weights and optimizer state on the GPU too).
std::unique_ptr<TrainBackend> make_train_backend(const std::string& name, const CudaTrainOptions& cuda) {
  if (name == "cpu") return make_cpu_train_backend();
  if (name == "cuda") return make_cuda_train_backend(cuda);
  throw Error(cat("--backend ", name, ": expected cpu or cuda"));
}

struct TrainArgs {
  std::string data, out, shape = "tiny", config, tokenizer, bp_warmup = "step", packing = "multipack";
  std::string backend = "cpu";
  int device = -1;  // -1: the rank's local index (one GPU per process)
  bool host_optimizer = false;
  int64_t steps = 100, batch_tokens = 4096, warmup = kDefaultWarmupSteps, checkpoint_every = 0, export_every = 0,
          log_every = 1;
  int64_t bp_min = 2, bp_max = 5, epochs = 0, accumulate = 1;
  double lr = kDefaultLr, lr_min_ratio = 1.0, weight_decay = kDefaultWeightDecay, beta1 = kDefaultBeta1,
         beta2 = kDefaultBeta2, ema = kDefaultEmaDecay, bp_warmup_ratio = 0.2;
  uint64_t seed = 0;
  int threads = 0;
  bool resume = false, drop_last = false;
  bool steps_given = false;  // --resume keeps the checkpoint's total unless --steps is given
};

std::string duration(double s) {
  char buf[32];
  const long t = std::lround(std::max(0.0, s));
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, t / 60 % 60);
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

// The vocabulary a tokenized corpus was made with: tokenizer_info.json's vocab_size at the corpus root
// (the pipeline writes it there), else the largest token id + 1 (a pass over every token).
int64_t corpus_vocab(const fs::path& data, const TrainCorpus& corpus) {
  for (const fs::path& p : {data / "tokenizer_info.json", data.parent_path() / "tokenizer_info.json"}) {
    if (!fs::is_directory(data) || !fs::exists(p)) continue;
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    rapidjson::Document d;
    d.Parse(ss.str().c_str());
    if (!d.HasParseError() && d.IsObject() && d.HasMember("vocab_size") && d["vocab_size"].IsInt64())
      return d["vocab_size"].GetInt64();
  }
  return std::max<int64_t>(corpus.max_token_id(), 0) + 1;
}

// stderr output of rank 0 only (the others would repeat it).
bool g_quiet = false;
__attribute__((format(printf, 1, 2))) void note(const char* fmt, ...) {
  if (g_quiet) return;
  va_list args;
  va_start(args, fmt);
  std::vfprintf(stderr, fmt, args);
  va_end(args);
}

void run_train(const TrainArgs& a, Communicator& comm) {
  const bool root = comm.rank() == 0;
  g_quiet = !root;
  // Ranks sharing a machine share its cores: by default each takes its part of them.
  int threads = a.threads;
  if (threads <= 0 && comm.local_size() > 1)
    threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / comm.local_size());
  std::optional<tbb::global_control> limit;
  if (threads > 0) limit.emplace(tbb::global_control::max_allowed_parallelism, threads);
  const fs::path out(a.out), ckpt_dir = out / "checkpoint", hf_dir = out / "hf";
  std::optional<Tokenizer> tok;
  if (!a.tokenizer.empty()) tok.emplace(Tokenizer::from_file(a.tokenizer));
  const PromptFormat fmt;
  const TrainCorpus corpus = load_corpus(a.data, tok ? &*tok : nullptr, fmt);
  int64_t tokens_total = 0;
  for (int64_t i = 0; i < corpus.size(); ++i) tokens_total += corpus.packed_length(i);
  note("corpus: %lld samples, %lld tokens (%s)\n", static_cast<long long>(corpus.size()),
       static_cast<long long>(tokens_total), a.data.c_str());
  if (a.accumulate < 1) throw Error(cat("--accumulate must be at least 1, got ", a.accumulate));
  if (a.export_every < 0) throw Error(cat("--export-every must be 0 (off) or a step count, got ", a.export_every));
  const int64_t data_ranks = comm.world_size() * a.accumulate;
  if (data_ranks > 1)
    note("data parallel: %s, %d rank%s x %lld batch%s of --batch-tokens %lld = %lld tokens per step at most%s\n",
         comm.name().c_str(), comm.world_size(), comm.world_size() == 1 ? "" : "s",
         static_cast<long long>(a.accumulate), a.accumulate == 1 ? "" : "es", static_cast<long long>(a.batch_tokens),
         static_cast<long long>(data_ranks * a.batch_tokens),
         threads > 0 ? cat(", ", threads, " thread", threads == 1 ? "" : "s", " per rank").c_str() : "");

  TrainOptions o;
  o.steps = a.steps;
  o.batch_tokens = a.batch_tokens;
  o.seed = a.seed;
  o.lr.lr = a.lr;
  o.lr.warmup_steps = a.warmup;
  o.lr.min_ratio = a.lr_min_ratio;
  o.lr.total_steps = a.steps;
  o.optim.beta1 = a.beta1;
  o.optim.beta2 = a.beta2;
  o.optim.weight_decay = a.weight_decay;
  o.optim.ema_decay = a.ema;
  o.bp.min_steps = a.bp_min;
  o.bp.max_steps = a.bp_max;
  o.bp.warmup_ratio = a.bp_warmup_ratio;
  if (a.bp_warmup != "step" && a.bp_warmup != "linear")
    throw Error(cat("--bp-warmup must be 'step' (the reference) or 'linear' (DESIGN §6), got '", a.bp_warmup, "'"));
  o.bp.shape = a.bp_warmup == "step" ? BpWarmup::kStep : BpWarmup::kLinear;
  o.packing = parse_packing(a.packing);
  o.drop_last = a.drop_last;
  o.accumulate = a.accumulate;

  // One GPU per process: by default the rank's index on its machine.
  auto make_backend = [&] {
    return make_train_backend(a.backend, {.device = a.device >= 0 ? a.device : comm.local_rank(),
                                          .hold_state = !a.host_optimizer});
  };
  std::unique_ptr<Trainer> t;
  if (a.resume) {
    if (!fs::exists(ckpt_dir / "state.json"))
      throw Error(cat("--resume: no checkpoint at ", ckpt_dir.string()));
    if (!a.steps_given) o.steps = 0;
    t = std::make_unique<Trainer>(Trainer::resume(ckpt_dir, corpus, o, make_backend(), &comm));
    note("resumed at step %lld from %s\n", static_cast<long long>(t->step_count()), ckpt_dir.string().c_str());
  } else {
    ModelConfig cfg;
    if (!a.config.empty()) {
      cfg = load_config(a.config);
    } else {
      const int64_t vocab = tok ? static_cast<int64_t>(tok->vocab_size()) : corpus_vocab(a.data, corpus);
      cfg = shape_config(a.shape, vocab);
    }
    if (a.epochs > 0) {
      if (a.steps_given) throw Error("give --steps or --epochs, not both");
      // The reference sizes the run in epochs (4 in the paper); here an epoch is one pass of the packer.
      // Epochs are shuffled differently and may pack into a step more or less, so each is counted.
      if (corpus.epoch_orders() > 0 && a.epochs > corpus.epoch_orders())
        throw Error(cat("--epochs ", a.epochs, ": the prepared corpus ", a.data, " has ", corpus.epoch_orders(),
                        " epoch directories (epoch_0..epoch_", corpus.epoch_orders() - 1,
                        ") and, like the reference trainer, reads epoch N from epoch_N/; prepare more epochs"));
      const Packer probe(corpus, {.batch_tokens = o.batch_tokens,
                                  .seed = o.seed,
                                  .max_sample_tokens = cfg.max_position_embeddings,
                                  .packing = o.packing,
                                  .world_size = data_ranks,
                                  .drop_last = o.drop_last});
      o.steps = 0;
      for (int64_t e = 0; e < a.epochs; ++e) o.steps += probe.epoch_packing(e).steps;
      o.lr.total_steps = o.steps;
      if (o.steps == 0) throw Error("--epochs: the corpus packs into no step (see --drop-last, --batch-tokens)");
      note("%lld epochs = %lld steps\n", static_cast<long long>(a.epochs), static_cast<long long>(o.steps));
    }
    note("model: hidden %lld, %lld blocks/stack, H %lld x L %lld, vocab %lld, %lld parameters\n",
         static_cast<long long>(cfg.hidden_size), static_cast<long long>(cfg.num_layers_per_stack),
         static_cast<long long>(cfg.H_cycles), static_cast<long long>(cfg.L_cycles),
         static_cast<long long>(cfg.vocab_size), static_cast<long long>(cfg.parameter_count()));
    // Every rank initialises from the same seed; the trainer broadcasts rank 0's weights anyway.
    t = std::make_unique<Trainer>(cfg, init_weights(cfg, a.seed), corpus, o, make_backend(), &comm);
  }
  const Packer& packer = t->packer();
  const EpochPacking ep = packer.epoch_packing(packer.epoch());
  note("packing: %s, %lld steps in epoch %lld, %.2f%% of --batch-tokens %lld filled%s\n",
       packing_name(packer.options().packing), static_cast<long long>(ep.steps),
       static_cast<long long>(packer.epoch()), 100.0 * ep.fill, static_cast<long long>(packer.options().batch_tokens),
       packer.options().drop_last ? cat(", ", ep.dropped, " samples dropped (--drop-last)").c_str() : "");
  if (t->packer().skipped() > 0)
    note("note: %lld samples longer than --batch-tokens %lld are skipped\n",
         static_cast<long long>(t->packer().skipped()), static_cast<long long>(t->options().batch_tokens));

  // Rank 0 writes the log (and, inside the trainer, the checkpoint and the export).
  std::ofstream log;
  if (root) {
    fs::create_directories(out);
    log.open(out / "loss.jsonl", a.resume ? std::ios::app : std::ios::trunc);
    if (!log) throw Error(cat((out / "loss.jsonl").string(), ": cannot write"));
  }
  const int64_t total = t->options().steps;
  // EMA weights every --export-every steps, each a checkpoint `hrmbench run` and transformers load.
  // Written under a temporary name and renamed, so exports/step_N/ is whole whenever it exists (an
  // evaluation may watch the directory while training goes on). `from`: an export already written
  // (the final one) to copy instead of exporting again.
  const auto export_snapshot = [&](int64_t step, const fs::path& from) {
    const fs::path dir = out / "exports" / cat("step_", step), tmp = out / "exports" / cat(".step_", step, ".partial");
    if (root) fs::remove_all(tmp);
    if (from.empty()) {
      t->export_hf(tmp);
    } else if (root) {
      fs::create_directories(tmp.parent_path());
      fs::copy(from, tmp, fs::copy_options::recursive);
    }
    if (!root) return;
    if (!a.tokenizer.empty()) fs::copy_file(a.tokenizer, tmp / "tokenizer.json", fs::copy_options::overwrite_existing);
    fs::remove_all(dir);
    fs::rename(tmp, dir);
  };
  double elapsed = 0;
  int64_t done_tokens = 0, done_steps = 0;
  while (t->step_count() < total) {
    const StepStats s = t->step();
    elapsed += s.seconds;
    done_tokens += s.tokens;
    ++done_steps;
    const double tps = elapsed > 0 ? static_cast<double>(done_tokens) / elapsed : 0.0;
    char line[512];
    std::snprintf(line, sizeof line,
                  "{\"step\": %lld, \"loss\": %.6f, \"accuracy\": %.4f, \"lr\": %.6g, \"bp_steps\": %lld, "
                  "\"tokens\": %lld, \"loss_tokens\": %lld, \"epoch\": %lld, \"seconds\": %.3f, \"comm_seconds\": %.4f, "
                  "\"tokens_per_s\": %.1f}",
                  static_cast<long long>(s.step), s.loss, s.accuracy, s.lr, static_cast<long long>(s.bp_steps),
                  static_cast<long long>(s.tokens), static_cast<long long>(s.loss_tokens),
                  static_cast<long long>(s.epoch), s.seconds, s.comm_seconds, tps);
    if (root) {
      log << line << "\n";
      log.flush();
    }
    if (a.log_every > 0 && (s.step % a.log_every == 0 || s.step == total)) {
      const double eta = static_cast<double>(total - s.step) * elapsed / static_cast<double>(done_steps);
      note("step %lld/%lld  loss %.4f  acc %.3f  lr %.3g  bp %lld  %.0f tok/s  ETA %s\n",
           static_cast<long long>(s.step), static_cast<long long>(total), s.loss, s.accuracy, s.lr,
           static_cast<long long>(s.bp_steps), tps, duration(eta).c_str());
    }
    if (a.checkpoint_every > 0 && s.step % a.checkpoint_every == 0 && s.step < total) t->save_checkpoint(ckpt_dir);
    if (a.export_every > 0 && s.step % a.export_every == 0 && s.step < total) export_snapshot(s.step, {});
  }
  t->save_checkpoint(ckpt_dir);
  t->export_hf(hf_dir);
  if (root && !a.tokenizer.empty())
    fs::copy_file(a.tokenizer, hf_dir / "tokenizer.json", fs::copy_options::overwrite_existing);
  if (a.export_every > 0) export_snapshot(t->step_count(), hf_dir);  // the last step's too, whatever N divides
  note("done: %lld steps; checkpoint %s; EMA weights exported to %s\n", static_cast<long long>(t->step_count()),
       ckpt_dir.string().c_str(), hf_dir.string().c_str());
}

// One process, or one rank of an MPI job. An error on one rank ends the whole job: the other ranks may
// be waiting for it inside a collective.
void run_train(const TrainArgs& a) {
  const std::unique_ptr<Communicator> comm = make_communicator();
  if (comm->world_size() == 1) return run_train(a, *comm);
  try {
    run_train(a, *comm);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error (rank %d of %d): %s\n", comm->rank(), comm->world_size(), e.what());
    std::fflush(stderr);
    comm->abort(1);
  }
}

struct CorpusArgs {
  std::string out, leak, condition = "synth,cot", tokenized, tokenizer;
  int64_t n = 1000, leak_count = 0;
  int difficulty = kMaxDifficulty;
  uint64_t seed = 0;
};

void run_make_corpus(const CorpusArgs& a) {
  SyntheticOptions o;
  o.n = a.n;
  o.seed = a.seed;
  o.difficulty = a.difficulty;
  o.condition = a.condition;
  o.leak_count = a.leak_count;
  if (!a.leak.empty()) o.leaks = read_leak_questions(a.leak);
  if (a.leak.empty() && a.leak_count > 0) throw Error("--leak-count needs --leak FILE.jsonl");
  if (!a.leak.empty() && a.leak_count == 0) o.leak_count = static_cast<int64_t>(o.leaks.size());
  const auto samples = make_synthetic_corpus(o);
  std::ofstream out(a.out, std::ios::binary);
  if (!out) throw Error(cat(a.out, ": cannot write"));
  int64_t leaked = 0;
  for (const auto& s : samples) {
    out << to_jsonl(s) << "\n";
    leaked += s.leaked;
  }
  if (!out) throw Error(cat(a.out, ": write failed"));
  if (!a.tokenized.empty()) {
    // The same tokens the trainer sees, in the pipeline's format, for `contam` and `train --data DIR`.
    const Tokenizer tok = Tokenizer::from_file(a.tokenizer);
    const PromptFormat fmt;
    TrainCorpus corpus;
    for (const auto& s : samples) add_text_sample(corpus, tok, fmt, s.instruction, s.response, s.condition);
    write_tokenized_corpus(a.tokenized, corpus);
    std::ofstream info(fs::path(a.tokenized) / "tokenizer_info.json");
    info << "{\"vocab_size\": " << tok.vocab_size() << "}\n";
    std::fprintf(stderr, "wrote %lld tokens to %s\n", static_cast<long long>(corpus.num_tokens()),
                 a.tokenized.c_str());
  }
  std::fprintf(stderr, "wrote %zu samples (%lld planted leaks) to %s\n", samples.size(),
               static_cast<long long>(leaked), a.out.c_str());
}

struct PackStatsArgs {
  std::string data, tokenizer;
  int64_t batch_tokens = 4096, epochs = 1;
  std::vector<int64_t> world_sizes = {1, 2, 4, 8, 16};
  uint64_t seed = 0;
  bool drop_last = false;
};

// One line per (packing, world size): steps per epoch, samples dropped and the fraction of the budget
// filled, summed over the epochs asked for.
void run_pack_stats(const PackStatsArgs& a) {
  std::optional<Tokenizer> tok;
  if (!a.tokenizer.empty()) tok.emplace(Tokenizer::from_file(a.tokenizer));
  const TrainCorpus corpus = load_corpus(a.data, tok ? &*tok : nullptr, PromptFormat{});
  int64_t tokens = 0;
  for (int64_t i = 0; i < corpus.size(); ++i) tokens += corpus.packed_length(i);
  std::printf("corpus: %lld samples, %lld packed tokens; --batch-tokens %lld per rank, %lld epoch(s), seed %llu%s\n",
              static_cast<long long>(corpus.size()), static_cast<long long>(tokens),
              static_cast<long long>(a.batch_tokens), static_cast<long long>(a.epochs),
              static_cast<unsigned long long>(a.seed), a.drop_last ? ", drop-last" : "");
  std::printf("%-10s %6s %12s %9s %8s\n", "packing", "ranks", "steps/epoch", "dropped", "fill");
  for (const Packing packing : {Packing::kGreedy, Packing::kMultipack}) {
    for (const int64_t world : a.world_sizes) {
      const Packer p(corpus, {.batch_tokens = a.batch_tokens,
                              .seed = a.seed,
                              .packing = packing,
                              .world_size = world,
                              .drop_last = a.drop_last});
      int64_t steps = 0, dropped = 0, packed = 0;
      for (int64_t e = 0; e < a.epochs; ++e) {
        const EpochPacking ep = p.epoch_packing(e);
        steps += ep.steps;
        dropped += ep.dropped;
        packed += ep.tokens;
      }
      const double slots = static_cast<double>(steps) * static_cast<double>(world * a.batch_tokens);
      std::printf("%-10s %6lld %12.1f %9.1f %7.2f%%\n", packing_name(packing), static_cast<long long>(world),
                  static_cast<double>(steps) / static_cast<double>(a.epochs),
                  static_cast<double>(dropped) / static_cast<double>(a.epochs),
                  steps ? 100.0 * static_cast<double>(packed) / slots : 0.0);
    }
  }
}

struct BenchTrainArgs {
  std::string shape = "tiny", config, backend = "cpu", write_config;
  int64_t vocab = 65536, batch_tokens = 4096, sample_tokens = 512, bp_steps = 5, steps = 3, warmup = 1;
  double prompt_ratio = 0.5, peak_tflops = 0;
  int device = 0, threads = 0;
  bool host_optimizer = false;
  uint64_t seed = 0;
};

// Training throughput of a model shape with random weights: one packed batch of equal random samples
// (prompt share --prompt-ratio), timed through the backend's forward/backward and the host optimizer
// step, after --warmup untimed steps. Model FLOPs as train_flops counts them; MFU against
// --peak-tflops (e.g. 989 for an H100 SXM's dense bf16).
void run_bench_train(const BenchTrainArgs& a) {
  std::optional<tbb::global_control> limit;
  if (a.threads > 0) limit.emplace(tbb::global_control::max_allowed_parallelism, a.threads);
  const ModelConfig cfg = bench_model_config(a.shape, a.vocab, a.config, a.write_config);
  const std::string name = a.config.empty() ? a.shape : a.config;
  if (a.sample_tokens < 2 || a.sample_tokens > cfg.max_position_embeddings)
    throw Error(cat("--sample-tokens ", a.sample_tokens, ": expected 2 .. max_position_embeddings = ",
                    cfg.max_position_embeddings));
  if (a.sample_tokens > a.batch_tokens)
    throw Error(cat("--sample-tokens ", a.sample_tokens, " exceeds --batch-tokens ", a.batch_tokens));
  if (!(a.prompt_ratio > 0 && a.prompt_ratio < 1)) throw Error("--prompt-ratio must lie strictly between 0 and 1");
  if (a.steps < 1 || a.warmup < 0) throw Error("--steps must be >= 1 and --warmup >= 0");
  const auto t0 = std::chrono::steady_clock::now();
  ModelWeights w = init_weights(cfg, a.seed);
  ModelWeights grads = zeros_like(w);
  AdamAtan2 opt(AdamAtan2Config{}, w);
  const std::unique_ptr<TrainBackend> backend =
      make_train_backend(a.backend, {.device = a.device, .hold_state = !a.host_optimizer});
  std::fprintf(stderr, "bench train: %s, %.3f B parameters, %s backend, set up in %.1f s\n", name.c_str(),
               static_cast<double>(cfg.parameter_count()) / 1e9, backend->name().c_str(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());

  std::mt19937_64 rng(a.seed);
  std::uniform_int_distribution<TokenId> tok(14, static_cast<TokenId>(cfg.vocab_size - 1));
  const int64_t inst_len = std::clamp<int64_t>(std::llround(a.sample_tokens * a.prompt_ratio), 1, a.sample_tokens - 1);
  PackedBatch batch;
  while (batch.size() + a.sample_tokens <= a.batch_tokens) {
    std::vector<TokenId> inst(inst_len), resp(a.sample_tokens + 1 - inst_len);  // packed length sample_tokens
    for (auto& t : inst) t = tok(rng);
    for (auto& t : resp) t = tok(rng);
    batch.add_sample(inst, resp);
  }
  const TrainFlops flops = train_flops(cfg, batch, a.bp_steps);
  // As the trainer drives it: a backend that holds the state updates it itself (TrainBackend).
  const std::unique_ptr<Communicator> one = make_single_process_communicator();
  const bool held = backend->holds_state();
  if (held) backend->load_state(cfg, w, opt, *one);
  double fb_s = 0, opt_s = 0, loss = 0;
  for (int64_t i = 0; i < a.warmup + a.steps; ++i) {
    const auto s0 = std::chrono::steady_clock::now();
    LossResult r;
    if (held) {
      backend->begin_step();
      r = backend->accumulate(cfg, batch, a.bp_steps, 0);
    } else {
      set_zero(grads);
      r = backend->forward_backward(cfg, w, batch, a.bp_steps, &grads, 0);
    }
    const auto s1 = std::chrono::steady_clock::now();
    if (held) {
      backend->update(opt.begin_step(1e-4, r.active(w)), *one);
    } else {
      opt.step(w, grads, 1e-4, r.active(w));
      backend->weights_updated();
    }
    const auto s2 = std::chrono::steady_clock::now();
    const double fb = std::chrono::duration<double>(s1 - s0).count(), os = std::chrono::duration<double>(s2 - s1).count();
    std::fprintf(stderr, "bench train: %s step %lld/%lld  loss %.4f  fwd+bwd %.3f s  optimizer %.3f s\n",
                 i < a.warmup ? "warm-up" : "timed", static_cast<long long>(i + 1),
                 static_cast<long long>(a.warmup + a.steps), r.loss, fb, os);
    if (i >= a.warmup) fb_s += fb, opt_s += os, loss = r.loss;
  }
  const double n = static_cast<double>(a.steps), step_s = (fb_s + opt_s) / n;
  const double tflops = flops.total() / step_s / 1e12;
  std::printf("| shape | backend | batch tokens | bp steps | fwd+bwd ms | optimizer ms | tokens/s | model TFLOP/step "
              "| TFLOP/s | MFU |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  std::printf("| %s | %s | %lld | %lld | %.1f | %.1f | %.0f | %.4g | %.4g | %s |\n", name.c_str(),
              backend->name().c_str(), static_cast<long long>(batch.size()), static_cast<long long>(a.bp_steps),
              1000 * fb_s / n, 1000 * opt_s / n, static_cast<double>(batch.size()) / step_s, flops.total() / 1e12,
              tflops, a.peak_tflops > 0 ? cat(std::lround(1000 * tflops / a.peak_tflops) / 10.0, "%").c_str() : "-");
  std::fprintf(stderr, "bench train: last loss %.4f (random tokens: it stays near ln(vocab) = %.2f)\n", loss,
               std::log(static_cast<double>(cfg.vocab_size)));
}

void add_bench_train(CLI::App& bench) {
  auto a = std::make_shared<BenchTrainArgs>();
  auto* bt = bench.add_subcommand("train", "Training throughput (tokens/s, MFU) of a model shape with random weights");
  bt->add_option("--shape", a->shape, "tiny, b, l or xl (DESIGN §2)")->capture_default_str();
  bt->add_option("--config", a->config, "config.json (file or model directory) instead of --shape");
  bt->add_option("--vocab", a->vocab, "Vocabulary size for --shape")->capture_default_str();
  bt->add_option("--backend", a->backend, "cpu or cuda")->capture_default_str();
  bt->add_option("--device", a->device, "GPU index for --backend cuda")->capture_default_str();
  bt->add_flag("--host-optimizer", a->host_optimizer,
               "--backend cuda: keep weights and optimizer on the host (the GPU computes gradients only)");
  bt->add_option("--batch-tokens", a->batch_tokens, "Token budget of the packed batch (per GPU)")->capture_default_str();
  bt->add_option("--sample-tokens", a->sample_tokens, "Packed length of each sample")->capture_default_str();
  bt->add_option("--prompt-ratio", a->prompt_ratio, "Share of each sample that is prompt (bidirectional)")
      ->capture_default_str();
  bt->add_option("--bp-steps", a->bp_steps, "Truncated-backprop steps (the reference ends at 5)")->capture_default_str();
  bt->add_option("--steps", a->steps, "Timed steps")->capture_default_str();
  bt->add_option("--warmup", a->warmup, "Untimed steps first")->capture_default_str();
  bt->add_option("--peak-tflops", a->peak_tflops, "The device's peak dense TFLOP/s, for MFU (H100 SXM bf16: 989)");
  bt->add_option("--threads", a->threads, "CPU threads (default: all)");
  bt->add_option("--seed", a->seed, "Weight and data seed")->capture_default_str();
  bt->add_option("--write-config", a->write_config,
                 "Also write the shape's config.json to FILE (for scripts/bench_train_transformers.py --config)");
  bt->callback([a] { run_bench_train(*a); });
}

}  // namespace

void add_train_commands(CLI::App& app) {
  add_bench_train(*app.get_subcommand("bench"));  // main.cpp adds `bench` first
  auto a = std::make_shared<TrainArgs>();
  auto* tr = app.add_subcommand("train", "Train an HRM-Text model with the reference recipe (CPU or one GPU "
                                                  "per process; data-parallel under mpirun)");
  tr->add_option("--data", a->data, "Training JSONL {instruction,response,condition} or tokenized directory")->required();
  tr->add_option("--out", a->out, "Output directory: loss.jsonl, checkpoint/, hf/")->required();
  tr->add_option("--shape", a->shape, "Model shape: tiny, b, l or xl")->capture_default_str();
  tr->add_option("--config", a->config, "config.json (file or model directory) instead of --shape");
  tr->add_option("--tokenizer", a->tokenizer, "tokenizer.json (required for JSONL data)");
  auto* steps = tr->add_option("--steps", a->steps, "Optimizer steps in all (with --resume: default the checkpoint's)")
                    ->capture_default_str();
  tr->add_option("--epochs", a->epochs, "Size the run in passes over the corpus instead of --steps");
  tr->add_option("--batch-tokens", a->batch_tokens, "Token budget of one packed batch")->capture_default_str();
  tr->add_option("--packing", a->packing, "multipack (the reference's sampler) or greedy")->capture_default_str();
  tr->add_flag("--drop-last", a->drop_last, "Drop each epoch's last step, as the reference does");
  tr->add_option("--lr", a->lr, "Peak learning rate")->capture_default_str();
  tr->add_option("--warmup", a->warmup, "Linear LR warm-up steps")->capture_default_str();
  tr->add_option("--lr-min-ratio", a->lr_min_ratio, "1 = constant after warm-up; < 1 = cosine to lr*ratio")->capture_default_str();
  tr->add_option("--weight-decay", a->weight_decay, "Decoupled weight decay")->capture_default_str();
  tr->add_option("--beta1", a->beta1, "Adam-atan2 beta1")->capture_default_str();
  tr->add_option("--beta2", a->beta2, "Adam-atan2 beta2")->capture_default_str();
  tr->add_option("--ema", a->ema, "EMA decay of the weights (0 = off)")->capture_default_str();
  tr->add_option("--bp-min", a->bp_min, "Truncated-backprop steps at the start")->capture_default_str();
  tr->add_option("--bp-max", a->bp_max, "Truncated-backprop steps after warm-up")->capture_default_str();
  tr->add_option("--bp-warmup-ratio", a->bp_warmup_ratio, "Fraction of steps before bp reaches --bp-max")->capture_default_str();
  tr->add_option("--bp-warmup", a->bp_warmup, "step (reference) or linear (DESIGN §6)")->capture_default_str();
  tr->add_option("--seed", a->seed, "Initialisation and data-order seed")->capture_default_str();
  tr->add_option("--checkpoint-every", a->checkpoint_every, "Save a checkpoint every N steps (0 = at the end only)")->capture_default_str();
  tr->add_option("--export-every", a->export_every,
                 "Also export the EMA weights every N steps and at the end, to OUT/exports/step_N (0 = off)")
      ->capture_default_str();
  tr->add_option("--log-every", a->log_every, "Progress line on stderr every N steps")->capture_default_str();
  tr->add_option("--accumulate", a->accumulate,
                 "Micro-batches per rank and step (gradient accumulation): one process with N packs like N ranks")
      ->capture_default_str();
  tr->add_option("--backend", a->backend, "cpu (the fp32 reference) or cuda (bf16 compute, fp32 master weights)")
      ->capture_default_str();
  tr->add_option("--device", a->device, "GPU index for --backend cuda (default: the rank's index on its machine)");
  tr->add_flag("--host-optimizer", a->host_optimizer,
               "--backend cuda: keep the fp32 weights and Adam-atan2 on the host; the GPU computes gradients only");
  tr->add_option("--threads", a->threads, "CPU threads per process (default: the machine's cores / ranks on it)");
  tr->add_flag("--resume", a->resume, "Continue from OUT/checkpoint");
  tr->callback([a, steps] {
    a->steps_given = steps->count() > 0;
    run_train(*a);
  });

  auto c = std::make_shared<CorpusArgs>();
  auto* mc = app.add_subcommand("make-corpus", "Write a synthetic arithmetic instruction corpus (JSONL)");
  mc->add_option("--out", c->out, "Output JSONL")->required();
  mc->add_option("--n", c->n, "Word problems to generate")->capture_default_str();
  mc->add_option("--seed", c->seed, "Seed")->capture_default_str();
  mc->add_option("--difficulty", c->difficulty,
                 "1: one +/- below 10; 2: two steps up to 20; 3: the multi-step word problems")
      ->capture_default_str();
  mc->add_option("--condition", c->condition, "Condition tags of every sample")->capture_default_str();
  mc->add_option("--leak", c->leak, "Benchmark-style JSONL whose questions are planted verbatim");
  mc->add_option("--leak-count", c->leak_count, "Planted copies in all (default: one per question)");
  auto* tokenized = mc->add_option("--tokenized", c->tokenized,
                                   "Also write the corpus tokenized (tokens.npy + index .npy files) to this directory");
  mc->add_option("--tokenizer", c->tokenizer, "tokenizer.json for --tokenized")->needs(tokenized);
  tokenized->needs("--tokenizer");
  mc->callback([c] { run_make_corpus(*c); });

  auto ps = std::make_shared<PackStatsArgs>();
  auto* st = app.add_subcommand("pack-stats", "How full greedy and multipack packing fill the token budget");
  st->add_option("--data", ps->data, "Training JSONL or tokenized directory")->required();
  st->add_option("--tokenizer", ps->tokenizer, "tokenizer.json (required for JSONL data)");
  st->add_option("--batch-tokens", ps->batch_tokens, "Token budget of one rank's batch")->capture_default_str();
  st->add_option("--world-sizes", ps->world_sizes, "Data-parallel ranks to try")->delimiter(',')->capture_default_str();
  st->add_option("--epochs", ps->epochs, "Epochs (shuffles) to sum over")->capture_default_str()->check(CLI::PositiveNumber);
  st->add_option("--seed", ps->seed, "Data-order seed")->capture_default_str();
  st->add_flag("--drop-last", ps->drop_last, "Drop each epoch's last step, as the reference does");
  st->callback([ps] { run_pack_stats(*ps); });
}

}  // namespace hrm::cli
