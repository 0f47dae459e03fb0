// `hrmbench info` and `hrmbench generate`: inspect a checkpoint and generate text with it.
#include <tbb/global_control.h>

#include <chrono>
#include <fstream>
#include <random>
#include <sstream>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cli/bench_config.h"
#include "cli/commands.h"
#include "common/error.h"
#include "runtime/config.h"
#include "cli/backend_flags.h"
#include "runtime/engine.h"
#include "runtime/model.h"
#include "runtime/optimizer.h"
#include "runtime/trainer.h"
#include "runtime/prompt.h"
#include "runtime/safetensors.h"
#include "runtime/tokenizer.h"

namespace hrm::cli {
namespace {

constexpr size_t kBf16Bytes = 2;

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 4) {
    bytes /= 1024.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", bytes, units[u]);
  return buf;
}

std::vector<TokenId> parse_ids(const std::string& text) {
  std::vector<TokenId> ids;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t comma = std::min(text.find(',', pos), text.size());
    const std::string item = text.substr(pos, comma - pos);
    try {
      size_t used = 0;
      const long v = std::stol(item, &used);
      if (used != item.size() || v < 0 || v > INT32_MAX) throw std::invalid_argument(item);
      ids.push_back(static_cast<TokenId>(v));
    } catch (const std::exception&) {
      throw Error(cat("--prompt-ids: '", item, "' is not a token id (expected comma-separated integers)"));
    }
    pos = comma + 1;
  }
  return ids;
}

std::string join_ids(const std::vector<TokenId>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(ids[i]);
  }
  return out;
}

void run_info(const std::string& dir, bool json) {
  const ModelConfig c = load_config(dir);
  const Checkpoint ckpt = Checkpoint::open(dir);
  std::map<std::string, int64_t> dtype_params;
  int64_t stored = 0;
  size_t stored_bytes = 0;
  for (const std::string& name : ckpt.names()) {
    const TensorView* t = ckpt.find(name);
    dtype_params[std::string(dtype_name(t->dtype))] += t->numel();
    stored += t->numel();
    stored_bytes += t->nbytes;
  }
  const int64_t params = c.parameter_count();
  const int64_t A = c.num_attention_heads * c.head_dim;
  const int64_t kv_bf16 = c.kv_slots() * 2 * A * static_cast<int64_t>(kBf16Bytes);
  const int64_t kv_f32 = kv_bf16 * 2;
  std::string dtypes;
  for (const auto& [name, n] : dtype_params) dtypes += (dtypes.empty() ? "" : "+") + name;
  if (json) {
    std::printf(
        "{\"model\":\"%s\",\"hidden_size\":%ld,\"intermediate_size\":%ld,\"num_attention_heads\":%ld,"
        "\"head_dim\":%ld,\"num_layers_per_stack\":%ld,\"H_cycles\":%ld,\"L_cycles\":%ld,"
        "\"vocab_size\":%ld,\"max_position_embeddings\":%ld,\"parameters\":%ld,\"stored_parameters\":%ld,"
        "\"dtype\":\"%s\",\"checkpoint_bytes\":%zu,\"kv_slots\":%ld,\"kv_bytes_per_token_bf16\":%ld,"
        "\"kv_bytes_per_token_f32\":%ld,\"cpu_weight_bytes_f32\":%ld}\n",
        dir.c_str(), c.hidden_size, c.intermediate_size, c.num_attention_heads, c.head_dim,
        c.num_layers_per_stack, c.H_cycles, c.L_cycles, c.vocab_size, c.max_position_embeddings,
        params, stored, dtypes.c_str(), stored_bytes, c.kv_slots(), kv_bf16, kv_f32, params * 4);
    return;
  }
  std::printf("model              %s\n", dir.c_str());
  std::printf("shape              hidden %ld, %ld heads x %ld, MLP %ld, %ld blocks per stack\n",
              c.hidden_size, c.num_attention_heads, c.head_dim, c.intermediate_size, c.num_layers_per_stack);
  std::printf("recurrence         H_cycles %ld x L_cycles %ld -> %ld stack passes per token\n", c.H_cycles,
              c.L_cycles, c.H_cycles * (c.L_cycles + 1));
  std::printf("vocab / context    %ld / %ld (RoPE theta %g, eps %g, embedding scale %g, prefix_lm %s)\n",
              c.vocab_size, c.max_position_embeddings, c.rope_theta, c.rms_norm_eps, c.embedding_scale,
              c.prefix_lm ? "yes" : "no");
  std::printf("parameters         %ld (%.3f B); checkpoint holds %ld in %s, %s on disk\n", params,
              params / 1e9, stored, dtypes.c_str(), human_bytes(stored_bytes).c_str());
  std::printf("memory             bf16 weights %s; CPU reference (fp32) %s\n",
              human_bytes(params * 2.0).c_str(), human_bytes(params * 4.0).c_str());
  std::printf("KV cache           %ld slots; %ld bytes/token at bf16 (%.1f KB), %ld at fp32\n",
              c.kv_slots(), kv_bf16, kv_bf16 / 1000.0, kv_f32);
  std::printf("                   a full %ld-token context: %s at bf16\n", c.max_position_embeddings,
              human_bytes(kv_bf16 * static_cast<double>(c.max_position_embeddings)).c_str());
}

struct GenerateArgs {
  std::string model, tokenizer, condition = "direct";
  BackendFlags backend;
  std::vector<std::string> prompts, prompt_ids;
  int64_t max_new_tokens = 256, context = 0, max_batch = 16;
  float temperature = 0, top_p = 1;
  uint64_t seed = 0;
  int threads = 0;
  bool print_ids = false, ignore_eos = false;
};

void run_generate(const GenerateArgs& a) {
  if (a.prompts.empty() == a.prompt_ids.empty())
    throw Error("give either --prompt (one or more) or --prompt-ids (one or more), not both");
  std::optional<tbb::global_control> limit;
  if (a.threads > 0) limit.emplace(tbb::global_control::max_allowed_parallelism, a.threads);

  const auto t_load = std::chrono::steady_clock::now();
  const Model model = Model::load(a.model);
  // A tokenizer is needed for text prompts and for printing text; --prompt-ids works without one.
  std::optional<Tokenizer> tok;
  const std::string tok_path =
      a.tokenizer.empty() ? (std::filesystem::path(a.model) / "tokenizer.json").string() : a.tokenizer;
  if (!a.tokenizer.empty() || std::filesystem::exists(tok_path)) tok = Tokenizer::from_file(tok_path);
  else if (!a.prompts.empty())
    throw Error(cat(tok_path, ": not found; text prompts need a tokenizer (--tokenizer FILE), or use --prompt-ids"));
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();

  PromptFormat fmt;
  std::vector<GenerationRequest> reqs;
  auto base = [&]() {
    GenerationRequest r;
    r.max_new_tokens = a.max_new_tokens;
    r.context_len = a.context;
    r.sampling = SamplingParams{a.temperature, a.top_p, a.seed};
    r.ignore_eos = a.ignore_eos;
    if (tok) r.stop_ids = {stop_token(*tok, fmt)};
    else if (model.config().eos_token_id >= 0)
      r.stop_ids = {static_cast<TokenId>(model.config().eos_token_id)};
    return r;
  };
  for (const std::string& p : a.prompts) {
    GenerationRequest r = base();
    r.prompt = format_prompt(*tok, fmt, p, a.condition);
    reqs.push_back(std::move(r));
  }
  for (const std::string& p : a.prompt_ids) {
    GenerationRequest r = base();
    r.prompt = parse_ids(p);
    reqs.push_back(std::move(r));
  }
  const int64_t ctx = a.context > 0 ? a.context : model.config().max_position_embeddings;
  for (size_t i = 0; i < reqs.size(); ++i)
    if (static_cast<int64_t>(reqs[i].prompt.size()) >= ctx)
      throw Error(cat("prompt ", i, " has ", reqs[i].prompt.size(), " tokens; the context is ", ctx,
                      " tokens (set --context up to max_position_embeddings = ",
                      model.config().max_position_embeddings, ")"));

  auto engine = make_engine_for(a.backend.backend, model, a.backend.cuda, a.backend.engine_options(a.max_batch));
  std::vector<GenerationResult> results(reqs.size());
  const auto t0 = std::chrono::steady_clock::now();
  engine->generate(reqs, [&](size_t i, GenerationResult r) { results[i] = std::move(r); });
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  for (size_t i = 0; i < results.size(); ++i) {
    if (a.print_ids) {
      std::printf("%s\n", join_ids(results[i].tokens).c_str());
    } else if (tok) {
      const TokenId stop = reqs[i].stop_ids.empty() ? -1 : reqs[i].stop_ids[0];
      std::printf("%s%s\n", reqs.size() > 1 ? cat("[", i, "] ").c_str() : "",
                  decode_generation(*tok, results[i].tokens, stop).c_str());
    } else {
      std::printf("%s\n", join_ids(results[i].tokens).c_str());
    }
  }
  const EngineStats& s = engine->stats();
  std::fprintf(stderr,
               "generate: %zu prompt(s), %ld prompt tokens, %ld new tokens in %.2fs "
               "(prefill %.0f tok/s, decode %.1f tok/s; load %.2fs; finish: %s)\n",
               reqs.size(), s.prompt_tokens, s.generated_tokens, secs,
               s.prefill_seconds > 0 ? s.prompt_tokens / s.prefill_seconds : 0.0,
               s.decode_seconds > 0 ? (s.generated_tokens - static_cast<int64_t>(reqs.size())) / s.decode_seconds : 0.0,
               load_s, results.empty() ? "-" : finish_reason_name(results[0].finish));
  if (const std::string report = engine->profile_report(); !report.empty())
    std::fprintf(stderr, "\nKernel time:\n\n%s", report.c_str());
}

struct BenchArgs {
  std::string shape = "tiny", config, write_config;
  BackendFlags backend;
  int64_t vocab = 65536, prompt_len = 128, decode_steps = 16;
  std::vector<int64_t> batches = {1, 8, 32};
  int threads = 0;
  uint64_t seed = 0;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Throughput of a model shape with random weights, through the generation engine of the chosen
// backend: per batch size, one step prefills every prompt, then `decode_steps` steps decode one
// token per sequence (--ignore-eos). A batch size of 0 means the most sequences the KV cache holds.
void run_bench(const BenchArgs& a) {
  std::optional<tbb::global_control> limit;
  if (a.threads > 0) limit.emplace(tbb::global_control::max_allowed_parallelism, a.threads);
  const ModelConfig cfg = bench_model_config(a.shape, a.vocab, a.config, a.write_config);
  const std::string name = a.config.empty() ? a.shape : a.config;
  const int64_t seq_tokens = a.prompt_len + a.decode_steps + 1;
  if (seq_tokens > cfg.max_position_embeddings)
    throw Error(cat("--prompt-len + --decode-steps exceed max_position_embeddings = ", cfg.max_position_embeddings));
  auto t0 = std::chrono::steady_clock::now();
  const Model model(cfg, init_weights(cfg, a.seed));
  std::fprintf(stderr, "bench: %s, %.3f B parameters, random weights in %.1f s\n", name.c_str(),
               cfg.parameter_count() / 1e9, seconds_since(t0));
  // One engine for every batch size (for CUDA: one weight upload, one KV pool), allowed as many
  // sequences as the widest batch asked for; its KV budget decides what 0 (= most) means.
  int64_t widest = 1;
  for (int64_t b : a.batches) widest = std::max(widest, b);
  const bool want_most = std::find(a.batches.begin(), a.batches.end(), 0) != a.batches.end();
  auto engine = make_engine_for(a.backend.backend, model, a.backend.cuda,
                                a.backend.engine_options(want_most ? 4096 : widest));
  const int64_t most = engine->max_sequences(seq_tokens);
  std::fprintf(stderr, "bench: %s; %ld sequences of %ld tokens fit\n", engine->describe().c_str(), most, seq_tokens);
  std::mt19937 rng(static_cast<uint32_t>(a.seed));
  std::uniform_int_distribution<TokenId> tok(14, static_cast<TokenId>(cfg.vocab_size - 1));
  std::printf("| shape | backend | batch | prefill tok/s | decode tok/s | ms per decode step |\n");
  std::printf("|---|---|---:|---:|---:|---:|\n");
  for (int64_t batch : a.batches) {
    if (batch == 0) batch = std::min<int64_t>(most, 4096);
    if (batch < 1) throw Error(cat("bench: not even one sequence of ", seq_tokens, " tokens fits the KV cache"));
    std::vector<GenerationRequest> reqs(batch);
    for (auto& r : reqs) {
      r.prompt.resize(a.prompt_len);
      for (auto& t : r.prompt) t = tok(rng);
      r.max_new_tokens = a.decode_steps + 1;  // the first token comes out of the prefill step
      r.ignore_eos = true;
    }
    // Warm-up at the same batch size (kernel selection, CUDA graph capture), then the timed run;
    // stats() counts the last call only.
    engine->generate(reqs, [](size_t, GenerationResult) {});
    engine->generate(reqs, [](size_t, GenerationResult) {});
    const EngineStats& s = engine->stats();
    const int64_t decoded = s.generated_tokens - batch, decode_steps = s.steps - 1;
    std::printf("| %s | %s | %ld | %.0f | %.1f | %.2f |\n", name.c_str(), engine->name().c_str(), batch,
                s.prefill_seconds > 0 ? s.prompt_tokens / s.prefill_seconds : 0.0,
                s.decode_seconds > 0 ? decoded / s.decode_seconds : 0.0,
                decode_steps > 0 ? 1000 * s.decode_seconds / static_cast<double>(decode_steps) : 0.0);
    if (const std::string report = engine->profile_report(); !report.empty())
      std::printf("\nKernel time of the timed pass at batch %ld:\n\n%s\n", batch, report.c_str());
    std::fflush(stdout);
  }
}

}  // namespace

void add_model_commands(CLI::App& app, CLI::App& bench) {
  auto* bm = bench.add_subcommand("model", "Prefill/decode throughput of a model shape with random weights");
  auto b = std::make_shared<BenchArgs>();
  bm->add_option("--shape", b->shape, "tiny, b, l or xl (DESIGN §2)")->capture_default_str();
  bm->add_option("--config", b->config, "config.json (file or model directory) instead of --shape");
  bm->add_option("--vocab", b->vocab, "Vocabulary size for --shape")->capture_default_str();
  bm->add_option("--prompt-len", b->prompt_len, "Prompt tokens per sequence")->capture_default_str();
  bm->add_option("--decode-steps", b->decode_steps, "Decode steps timed per batch size")->capture_default_str();
  bm->add_option("--batches", b->batches, "Batch sizes (0: the most the KV cache holds)")->delimiter(',')->capture_default_str();
  bm->add_option("--threads", b->threads, "CPU threads (default: all)");
  add_backend_flags(bm, b->backend);
  bm->add_option("--seed", b->seed, "Weight seed")->capture_default_str();
  bm->add_option("--write-config", b->write_config,
                 "Also write the shape's config.json to FILE (for scripts/bench_transformers.py --config)");
  bm->callback([b] { run_bench(*b); });

  auto* info = app.add_subcommand("info", "Show a checkpoint's configuration, size, memory and KV-cache cost");
  auto dir = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  info->add_option("model_dir", *dir, "Hugging Face model directory (config.json + safetensors)")->required();
  info->add_flag("--json", *json, "Print one JSON object instead of text");
  info->callback([dir, json] { run_info(*dir, *json); });

  auto* gen = app.add_subcommand("generate", "Generate text (or token ids) from a checkpoint");
  auto a = std::make_shared<GenerateArgs>();
  gen->add_option("--model", a->model, "Model directory")->required();
  gen->add_option("--prompt", a->prompts, "Prompt text (repeat for a batch); wrapped in the prompt format");
  gen->add_option("--prompt-ids", a->prompt_ids,
                  "Comma-separated token ids fed as-is as the bidirectional prefix (repeat for a batch)");
  gen->add_option("--tokenizer", a->tokenizer, "tokenizer.json (default: MODEL/tokenizer.json)");
  gen->add_option("--condition", a->condition, "Comma-separated condition tags (direct, cot, synth, noisy)")->capture_default_str();
  gen->add_option("--max-new-tokens", a->max_new_tokens, "Maximum tokens to generate")->capture_default_str();
  gen->add_option("--context", a->context, "Context length (default: max_position_embeddings)");
  gen->add_option("--temperature", a->temperature, "0 = greedy")->capture_default_str();
  gen->add_option("--top-p", a->top_p, "Nucleus sampling mass")->capture_default_str();
  gen->add_option("--seed", a->seed, "Sampling seed")->capture_default_str();
  gen->add_option("--max-batch", a->max_batch, "Sequences decoded together")->capture_default_str();
  gen->add_option("--threads", a->threads, "CPU threads (default: all)");
  add_backend_flags(gen, a->backend);
  gen->add_flag("--print-ids", a->print_ids, "Print generated ids, comma-separated, one line per prompt");
  gen->add_flag("--ignore-eos", a->ignore_eos, "Do not stop at the stop token");
  gen->callback([a] { run_generate(*a); });
}

}  // namespace hrm::cli
