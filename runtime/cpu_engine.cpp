// Continuous-batching generation on the CPU reference model (see engine.h).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <optional>

#include "common/error.h"
#include "runtime/engine.h"
#include "runtime/model.h"

namespace hrm {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kContext: return "context";
  }
  return "?";
}

int64_t cpu_kv_bytes(const ModelConfig& cfg, int64_t tokens) {
  return tokens * cfg.kv_slots() * 2 * cfg.num_attention_heads * cfg.head_dim * static_cast<int64_t>(sizeof(float));
}

namespace {

int64_t default_kv_budget() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page / 2 : int64_t{8} << 30;
}

class CpuEngine final : public Engine {
 public:
  CpuEngine(const Model& model, EngineOptions options) : model_(model), options_(options) {
    HRM_CHECK(options_.max_batch >= 1, "max_batch must be >= 1");
    if (options_.kv_budget_bytes <= 0) options_.kv_budget_bytes = default_kv_budget();
  }

  void generate(std::span<const GenerationRequest> requests,
                const std::function<void(size_t, GenerationResult)>& on_done) override {
    for (size_t i = 0; i < requests.size(); ++i) validate(requests[i], i);
    std::deque<size_t> waiting;
    for (size_t i = 0; i < requests.size(); ++i) waiting.push_back(i);
    std::vector<Live> live;
    int64_t reserved = 0;  // worst-case KV bytes of the live sequences
    while (!waiting.empty() || !live.empty()) {
      // Admit new prompts into free batch rows while their worst-case caches fit the budget;
      // they are prefilled in this step.
      while (!waiting.empty() && static_cast<int64_t>(live.size()) < options_.max_batch) {
        const size_t idx = waiting.front();
        const GenerationRequest& r = requests[idx];
        const int64_t ctx = context_of(r);
        const int64_t plen = static_cast<int64_t>(r.prompt.size());
        const int64_t budget = std::min(r.max_new_tokens, ctx - plen);
        if (plen >= ctx || budget <= 0) {
          waiting.pop_front();
          on_done(idx, GenerationResult{{}, plen >= ctx ? FinishReason::kContext : FinishReason::kLength});
          continue;
        }
        const int64_t need = cpu_kv_bytes(model_.config(), plen + budget);
        if (reserved + need > options_.kv_budget_bytes) break;  // wait for a sequence to finish
        waiting.pop_front();
        reserved += need;
        live.push_back(Live{idx, model_.new_cache(), Sampler(r.sampling), {}, budget, need, true});
      }
      stats_.peak_live = std::max<int64_t>(stats_.peak_live, static_cast<int64_t>(live.size()));
      if (live.empty()) break;
      std::vector<StepInput> batch;
      batch.reserve(live.size());
      bool any_prefill = false;
      for (Live& s : live) {
        if (s.needs_prefill) {
          const auto& p = requests[s.index].prompt;
          batch.push_back(StepInput{&s.cache, p, static_cast<int64_t>(p.size())});
          stats_.prompt_tokens += static_cast<int64_t>(p.size());
          any_prefill = true;
        } else {
          batch.push_back(StepInput{&s.cache, std::span<const TokenId>(&s.tokens.back(), 1), 0});
        }
      }
      const auto t0 = std::chrono::steady_clock::now();
      auto logits = model_.step(batch);
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      (any_prefill ? stats_.prefill_seconds : stats_.decode_seconds) += dt;
      ++stats_.steps;
      // Sample, then retire finished sequences (their caches are freed with them).
      std::vector<Live> still;
      for (size_t b = 0; b < live.size(); ++b) {
        Live& s = live[b];
        const GenerationRequest& r = requests[s.index];
        s.needs_prefill = false;
        const TokenId tok = s.sampler.next(logits[b]);
        s.tokens.push_back(tok);
        ++stats_.generated_tokens;
        const bool stop = !r.ignore_eos &&
                          std::find(r.stop_ids.begin(), r.stop_ids.end(), tok) != r.stop_ids.end();
        if (stop || static_cast<int64_t>(s.tokens.size()) >= s.budget) {
          FinishReason why = stop ? FinishReason::kStop
                             : s.budget < r.max_new_tokens ? FinishReason::kContext
                                                           : FinishReason::kLength;
          reserved -= s.reserved;
          on_done(s.index, GenerationResult{std::move(s.tokens), why});
        } else {
          still.push_back(std::move(s));
        }
      }
      live = std::move(still);
    }
  }

  const EngineStats& stats() const override { return stats_; }
  std::string name() const override { return "cpu"; }

 private:
  struct Live {
    size_t index;
    KVCache cache;
    Sampler sampler;
    std::vector<TokenId> tokens;
    int64_t budget;
    int64_t reserved;  // worst-case KV bytes held for this sequence
    bool needs_prefill;
  };

  int64_t context_of(const GenerationRequest& r) const {
    return r.context_len > 0 ? r.context_len : model_.config().max_position_embeddings;
  }

  void validate(const GenerationRequest& r, size_t i) const {
    if (r.prompt.empty()) throw Error(cat("request ", i, ": empty prompt"));
    if (r.max_new_tokens < 0) throw Error(cat("request ", i, ": negative max_new_tokens"));
    if (context_of(r) > model_.config().max_position_embeddings)
      throw Error(cat("request ", i, ": context length ", r.context_len,
                      " exceeds the model's max_position_embeddings = ",
                      model_.config().max_position_embeddings));
    const int64_t V = model_.config().vocab_size;
    for (TokenId t : r.prompt)
      if (t < 0 || t >= V)
        throw Error(cat("request ", i, ": prompt token id ", t, " outside the vocabulary [0, ", V, ")"));
    if (!(r.sampling.top_p > 0.f && r.sampling.top_p <= 1.f))
      throw Error(cat("request ", i, ": top_p must be in (0, 1], got ", r.sampling.top_p));
    const int64_t plen = static_cast<int64_t>(r.prompt.size());
    const int64_t tokens = std::min(context_of(r), plen + r.max_new_tokens);
    const int64_t need = cpu_kv_bytes(model_.config(), tokens);
    if (plen < context_of(r) && need > options_.kv_budget_bytes)
      throw Error(cat("request ", i, ": its KV cache needs up to ", need, " bytes (", tokens,
                      " tokens), more than the engine's budget of ", options_.kv_budget_bytes, " bytes"));
  }

  const Model& model_;
  EngineOptions options_;
  EngineStats stats_;
};

}  // namespace

std::unique_ptr<Engine> make_cpu_engine(const Model& model, EngineOptions options) {
  return std::make_unique<CpuEngine>(model, options);
}

}  // namespace hrm
