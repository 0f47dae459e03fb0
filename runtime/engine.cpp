// The continuous-batching scheduler shared by every backend (see engine.h).
#include "runtime/engine.h"

#include <algorithm>
#include <chrono>
#include <deque>

#include "common/error.h"

namespace hrm {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kContext: return "context";
  }
  return "?";
}

namespace {

class Scheduler final : public Engine {
 public:
  Scheduler(std::unique_ptr<StepBackend> backend, EngineOptions options)
      : backend_(std::move(backend)), options_(options) {
    HRM_CHECK(options_.max_batch >= 1, "max_batch must be >= 1");
    const int64_t limit = backend_->max_step_tokens();
    if (options_.max_step_tokens <= 0 || (limit > 0 && options_.max_step_tokens > limit))
      options_.max_step_tokens = limit;
    HRM_CHECK(options_.max_step_tokens <= 0 || options_.max_step_tokens >= options_.max_batch,
              "max_step_tokens (", options_.max_step_tokens, ") must be at least max_batch (",
              options_.max_batch, ")");
  }

  void generate(std::span<const GenerationRequest> requests,
                const std::function<void(size_t, GenerationResult)>& on_done) override {
    for (size_t i = 0; i < requests.size(); ++i) validate(requests[i], i);
    stats_ = {};
    backend_->reset_profile();
    std::deque<size_t> waiting;
    for (size_t i = 0; i < requests.size(); ++i) waiting.push_back(i);
    std::vector<Live> live;
    int64_t reserved = 0;  // worst-case KV bytes of the live sequences
    const int64_t capacity = backend_->kv_capacity_bytes();
    const int64_t row_limit = options_.max_step_tokens;
    std::vector<SeqStep> batch;
    std::vector<TokenId> next;
    while (!waiting.empty() || !live.empty()) {
      // Admit new prompts into free batch rows while their worst-case caches fit the budget and their
      // rows fit the step; they are prefilled in this step.
      int64_t rows = static_cast<int64_t>(live.size());
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
        const int64_t need = backend_->kv_bytes(plen + budget);
        if (reserved + need > capacity) break;  // wait for a sequence to finish
        if (row_limit > 0 && rows + plen > row_limit) break;  // prefill it in a later step
        waiting.pop_front();
        reserved += need;
        rows += plen;
        const uint64_t seq = next_seq_++;
        backend_->open(seq, r.sampling, plen + budget);
        live.push_back(Live{idx, seq, {}, budget, need, true});
      }
      stats_.peak_live = std::max<int64_t>(stats_.peak_live, static_cast<int64_t>(live.size()));
      if (live.empty()) break;
      batch.clear();
      bool any_prefill = false;
      for (const Live& s : live) {
        if (s.needs_prefill) {
          const auto& p = requests[s.index].prompt;
          batch.push_back(SeqStep{s.seq, p, true});
          stats_.prompt_tokens += static_cast<int64_t>(p.size());
          any_prefill = true;
        } else {
          batch.push_back(SeqStep{s.seq, std::span<const TokenId>(&s.tokens.back(), 1), false});
        }
      }
      next.assign(batch.size(), 0);
      const auto t0 = std::chrono::steady_clock::now();
      backend_->step(batch, next);
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      (any_prefill ? stats_.prefill_seconds : stats_.decode_seconds) += dt;
      ++stats_.steps;
      // Append the new tokens, then retire finished sequences (their caches are freed at once).
      std::vector<Live> still;
      still.reserve(live.size());
      for (size_t b = 0; b < live.size(); ++b) {
        Live& s = live[b];
        const GenerationRequest& r = requests[s.index];
        s.needs_prefill = false;
        const TokenId tok = next[b];
        s.tokens.push_back(tok);
        ++stats_.generated_tokens;
        const bool stop = !r.ignore_eos &&
                          std::find(r.stop_ids.begin(), r.stop_ids.end(), tok) != r.stop_ids.end();
        if (stop || static_cast<int64_t>(s.tokens.size()) >= s.budget) {
          FinishReason why = stop ? FinishReason::kStop
                             : s.budget < r.max_new_tokens ? FinishReason::kContext
                                                           : FinishReason::kLength;
          reserved -= s.reserved;
          backend_->close(s.seq);
          on_done(s.index, GenerationResult{std::move(s.tokens), why});
        } else {
          still.push_back(std::move(s));
        }
      }
      live = std::move(still);
    }
  }

  const EngineStats& stats() const override { return stats_; }
  std::string name() const override { return backend_->name(); }
  std::string describe() const override { return backend_->describe(); }
  std::string profile_report() const override { return backend_->profile_report(); }
  int64_t max_sequences(int64_t tokens) const override {
    return backend_->kv_capacity_bytes() / std::max<int64_t>(backend_->kv_bytes(tokens), 1);
  }

 private:
  struct Live {
    size_t index;
    uint64_t seq;
    std::vector<TokenId> tokens;
    int64_t budget;
    int64_t reserved;  // worst-case KV bytes held for this sequence
    bool needs_prefill;
  };

  int64_t context_of(const GenerationRequest& r) const {
    return r.context_len > 0 ? r.context_len : backend_->config().max_position_embeddings;
  }

  void validate(const GenerationRequest& r, size_t i) const {
    const ModelConfig& cfg = backend_->config();
    if (r.prompt.empty()) throw Error(cat("request ", i, ": empty prompt"));
    if (r.max_new_tokens < 0) throw Error(cat("request ", i, ": negative max_new_tokens"));
    if (context_of(r) > cfg.max_position_embeddings)
      throw Error(cat("request ", i, ": context length ", r.context_len,
                      " exceeds the model's max_position_embeddings = ", cfg.max_position_embeddings));
    const int64_t V = cfg.vocab_size;
    for (TokenId t : r.prompt)
      if (t < 0 || t >= V)
        throw Error(cat("request ", i, ": prompt token id ", t, " outside the vocabulary [0, ", V, ")"));
    if (!(r.sampling.top_p > 0.f && r.sampling.top_p <= 1.f))
      throw Error(cat("request ", i, ": top_p must be in (0, 1], got ", r.sampling.top_p));
    const int64_t plen = static_cast<int64_t>(r.prompt.size());
    if (plen >= context_of(r)) return;  // finishes at once with kContext
    const int64_t tokens = std::min(context_of(r), plen + r.max_new_tokens);
    const int64_t need = backend_->kv_bytes(tokens);
    if (need > backend_->kv_capacity_bytes())
      throw Error(cat("request ", i, ": its KV cache needs up to ", need, " bytes (", tokens,
                      " tokens), more than the engine's budget of ", backend_->kv_capacity_bytes(),
                      " bytes"));
    if (options_.max_step_tokens > 0 && plen > options_.max_step_tokens)
      throw Error(cat("request ", i, ": its prompt of ", plen, " tokens exceeds the ", options_.max_step_tokens,
                      " token rows one step may hold (a PrefixLM prompt is prefilled in one step)"));
  }

  std::unique_ptr<StepBackend> backend_;
  EngineOptions options_;
  EngineStats stats_;
  uint64_t next_seq_ = 0;
};

}  // namespace

std::unique_ptr<Engine> make_engine(std::unique_ptr<StepBackend> backend, EngineOptions options) {
  HRM_CHECK(backend != nullptr, "make_engine: no backend");
  return std::make_unique<Scheduler>(std::move(backend), options);
}

}  // namespace hrm
