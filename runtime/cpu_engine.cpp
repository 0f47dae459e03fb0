// The CPU reference backend of the generation engine: one KVCache and one Sampler per sequence,
// steps run by Model::step (see engine.h).
#include <unistd.h>

#include <unordered_map>

#include "common/error.h"
#include "runtime/engine.h"
#include "runtime/model.h"

namespace hrm {

int64_t cpu_kv_bytes(const ModelConfig& cfg, int64_t tokens) {
  return tokens * cfg.kv_slots() * 2 * cfg.num_attention_heads * cfg.head_dim * static_cast<int64_t>(sizeof(float));
}

namespace {

int64_t default_kv_budget() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page / 2 : int64_t{8} << 30;
}

class CpuBackend final : public StepBackend {
 public:
  CpuBackend(const Model& model, int64_t kv_budget)
      : model_(model), budget_(kv_budget > 0 ? kv_budget : default_kv_budget()) {}

  const ModelConfig& config() const override { return model_.config(); }
  std::string name() const override { return "cpu"; }
  std::string describe() const override {
    return cat("cpu (fp32 reference), KV-cache budget ", budget_ >> 20, " MiB of host memory");
  }
  int64_t kv_bytes(int64_t tokens) const override { return cpu_kv_bytes(model_.config(), tokens); }
  int64_t kv_capacity_bytes() const override { return budget_; }
  int64_t max_step_tokens() const override { return 0; }

  void open(uint64_t seq, const SamplingParams& sampling, int64_t) override {
    seqs_.emplace(seq, Seq{model_.new_cache(), Sampler(sampling)});
  }
  void close(uint64_t seq) override { seqs_.erase(seq); }

  void step(std::span<const SeqStep> batch, std::span<TokenId> next) override {
    std::vector<StepInput> inputs;
    inputs.reserve(batch.size());
    for (const SeqStep& s : batch) {
      auto it = seqs_.find(s.seq);
      HRM_CHECK(it != seqs_.end(), "step over sequence ", s.seq, " that is not open");
      inputs.push_back(StepInput{&it->second.cache, s.tokens,
                                 s.prefill ? static_cast<int64_t>(s.tokens.size()) : 0});
    }
    auto logits = model_.step(inputs);
    for (size_t b = 0; b < batch.size(); ++b) next[b] = seqs_.at(batch[b].seq).sampler.next(logits[b]);
  }

 private:
  struct Seq {
    KVCache cache;
    Sampler sampler;
  };
  const Model& model_;
  int64_t budget_;
  std::unordered_map<uint64_t, Seq> seqs_;
};

}  // namespace

std::unique_ptr<Engine> make_cpu_engine(const Model& model, EngineOptions options) {
  return make_engine(std::make_unique<CpuBackend>(model, options.kv_budget_bytes), options);
}

}  // namespace hrm
