// The generation engine: the runtime's interface to the harness (eval/) and the CLI.
//
// A request is a token prompt (the whole bidirectional prefix, prompt format already applied) plus
// its own generation settings. The engine batches requests (continuous batching: new prompts are
// prefilled in the same step as others decode), and hands each result back as soon as it finishes.
// Budget rule (the reference's simple_inference_engine): a prompt of >= context_len tokens yields an
// empty generation (finish kContext); otherwise at most min(max_new_tokens, context_len - prompt)
// tokens are generated. Not for: prompt formatting (prompt.h) or scoring.
//
// The scheduling (admission, batching, stop rules, budgets) is one loop for every backend
// (engine.cpp); a backend only runs steps and owns its KV caches (StepBackend below: the CPU reference
// in cpu_engine.cpp, the CUDA backend in cuda/cuda_engine.cpp).
//
// Example:
//   auto engine = hrm::make_cpu_engine(model, {.max_batch = 16});
//   engine->generate(requests, [&](size_t i, hrm::GenerationResult r) { ... });
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/config.h"
#include "runtime/sampling.h"
#include "runtime/tokenizer.h"

namespace hrm {

class Model;

struct GenerationRequest {
  std::vector<TokenId> prompt;
  int64_t max_new_tokens = 256;
  int64_t context_len = 0;  // 0: the model's max_position_embeddings
  SamplingParams sampling;
  std::vector<TokenId> stop_ids;  // generation ends after emitting one of these (kept in `tokens`)
  bool ignore_eos = false;        // keep going through stop ids (benchmarks with fixed lengths)
};

enum class FinishReason { kStop, kLength, kContext };
const char* finish_reason_name(FinishReason r);

struct GenerationResult {
  std::vector<TokenId> tokens;  // generated ids; ends with the stop id when finish == kStop
  FinishReason finish = FinishReason::kLength;
};

struct EngineOptions {
  int64_t max_batch = 16;  // sequences decoded together
  // KV-cache memory the engine may hold. A request is admitted only when its worst-case cache
  // (prompt + budget tokens) fits next to the live ones, so a long run never runs out of memory;
  // 0 = half of the machine's physical memory.
  // On the CUDA backend the paged cache pool is allocated at this size; 0 = what fits in free GPU
  // memory after the weights and activations.
  int64_t kv_budget_bytes = 0;
  // Most token rows in one step (prompts being prefilled plus one per decoding sequence); 0 = the
  // backend's limit. A prompt is never split across steps: under PrefixLM every prompt token attends
  // to every other, so a chunked prefill would change the result.
  int64_t max_step_tokens = 0;
};

// Worst-case KV-cache bytes of a request on the CPU backend (fp32 keys and values in every slot).
int64_t cpu_kv_bytes(const ModelConfig& cfg, int64_t tokens);

struct EngineStats {
  int64_t prompt_tokens = 0, generated_tokens = 0, steps = 0;
  int64_t peak_live = 0;  // most sequences in one step
  double prefill_seconds = 0, decode_seconds = 0;  // steps with any prefill count as prefill
};

class Engine {
 public:
  virtual ~Engine() = default;
  // Runs every request; `on_done(index, result)` is called once per request as it finishes
  // (from the calling thread). Throws hrm::Error on invalid requests before doing any work.
  virtual void generate(std::span<const GenerationRequest> requests,
                        const std::function<void(size_t, GenerationResult)>& on_done) = 0;
  // Counters of the most recent generate() call (each call starts them from zero).
  virtual const EngineStats& stats() const = 0;
  virtual std::string name() const = 0;
  // The backend and its memory in one line (device, weights, KV-cache pool).
  virtual std::string describe() const = 0;
  // How many sequences of `tokens` tokens each fit in the KV-cache budget at once.
  virtual int64_t max_sequences(int64_t tokens) const = 0;
  // Where the time of the most recent generate() call went, per kernel, as a Markdown table ("" when
  // the backend does not profile).
  virtual std::string profile_report() const = 0;
};

// One sequence's share of a backend step: its whole prompt (prefill) or its last generated token.
struct SeqStep {
  uint64_t seq = 0;
  std::span<const TokenId> tokens;
  bool prefill = false;
};

// What a backend provides to the engine's scheduler.
class StepBackend {
 public:
  virtual ~StepBackend() = default;
  virtual const ModelConfig& config() const = 0;
  virtual std::string name() const = 0;
  virtual std::string describe() const { return name(); }
  virtual std::string profile_report() const { return ""; }
  // Called as generate() starts: per-call counters (the profile) begin again.
  virtual void reset_profile() {}
  // The most KV-cache bytes a sequence of `tokens` tokens can hold (admission control reserves this).
  virtual int64_t kv_bytes(int64_t tokens) const = 0;
  // The KV-cache bytes the engine may reserve in all.
  virtual int64_t kv_capacity_bytes() const = 0;
  // Most token rows in one step; 0 = no limit.
  virtual int64_t max_step_tokens() const = 0;
  // Starts sequence `seq` (ids are unique among live sequences) with its sampling settings; it will
  // hold at most `max_tokens` tokens.
  virtual void open(uint64_t seq, const SamplingParams& sampling, int64_t max_tokens) = 0;
  // Ends a sequence and frees its cache at once.
  virtual void close(uint64_t seq) = 0;
  // Runs one step over open sequences (ragged; each sequence at most once) and writes the next token
  // of each into next[i].
  virtual void step(std::span<const SeqStep> batch, std::span<TokenId> next) = 0;
};

// The continuous-batching engine over any backend.
std::unique_ptr<Engine> make_engine(std::unique_ptr<StepBackend> backend, EngineOptions options = {});

std::unique_ptr<Engine> make_cpu_engine(const Model& model, EngineOptions options = {});

}  // namespace hrm
