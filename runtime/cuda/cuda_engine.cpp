// The CUDA backend of the generation engine (see runtime/cuda_backend.h): CudaModel steps, with each
// sequence's next token chosen on the GPU (greedy, or temperature with top_p = 1) or, for nucleus
// sampling, on the host from copied logits. A sequence always uses the same method and its own
// seeded generator, so its tokens do not depend on what else shares its batch.
#include <cstdio>
#include <random>
#include <unordered_map>

#include "common/error.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/cuda_model.h"
#include "runtime/cuda_backend.h"

namespace hrm {
namespace {

class CudaBackend final : public StepBackend {
 public:
  CudaBackend(const ModelConfig& cfg, const ModelWeights& w, const CudaOptions& c, const EngineOptions& e)
      : model_(cfg, w,
               cuda::CudaModel::Options{.device = c.device,
                                        .kv_dtype = c.fp8_kv ? cuda::KvDtype::kFp8E4M3 : cuda::KvDtype::kBf16,
                                        .page_tokens = c.page_tokens,
                                        .kv_budget_bytes = e.kv_budget_bytes,
                                        .max_step_tokens = e.max_step_tokens,
                                        .max_seqs = static_cast<int>(e.max_batch),
                                        .graphs = c.graphs,
                                        .profile = c.profile}) {}

  const ModelConfig& config() const override { return model_.config(); }
  std::string name() const override { return "cuda"; }
  std::string describe() const override {
    auto mib = [](int64_t b) { return b >> 20; };
    return cat("cuda (", model_.device_name(), "): bf16 weights ", mib(model_.weight_bytes()), " MiB, activations ",
               mib(model_.activation_bytes()), " MiB for ", model_.max_step_tokens(), " tokens/step, KV cache ",
               model_.kv_dtype_name(), " ", mib(model_.pages_total() * model_.page_bytes()), " MiB (",
               model_.pages_total(), " pages of ", model_.page_tokens(), " tokens)");
  }
  int64_t kv_bytes(int64_t tokens) const override {
    return (tokens + model_.page_tokens() - 1) / model_.page_tokens() * model_.page_bytes();
  }
  int64_t kv_capacity_bytes() const override { return model_.pages_total() * model_.page_bytes(); }
  int64_t max_step_tokens() const override { return model_.max_step_tokens(); }
  void reset_profile() override { model_.reset_profile(); }
  std::string profile_report() const override {
    const auto rows = model_.profile();
    if (rows.empty()) return "";
    double total = 0;
    for (const auto& r : rows) total += r.ms;
    std::string out = "| kernel | ms | share | launches | us per launch |\n|---|---:|---:|---:|---:|\n";
    char line[256];
    for (const auto& r : rows) {
      std::snprintf(line, sizeof line, "| %s | %.1f | %.1f%% | %ld | %.1f |\n", r.kernel.c_str(), r.ms,
                    100 * r.ms / total, r.launches, 1000 * r.ms / static_cast<double>(r.launches));
      out += line;
    }
    return out;
  }

  void open(uint64_t seq, const SamplingParams& sampling, int64_t) override {
    model_.open(seq);
    seqs_.emplace(seq, Seq{sampling, std::mt19937_64(sampling.seed), Sampler(sampling)});
  }
  void close(uint64_t seq) override {
    model_.close(seq);
    seqs_.erase(seq);
  }

  void step(std::span<const SeqStep> batch, std::span<TokenId> next) override {
    inputs_.clear();
    temperature_.clear();
    u_.clear();
    bool host = false;
    for (const SeqStep& s : batch) {
      inputs_.push_back({s.seq, s.tokens, s.prefill ? static_cast<int64_t>(s.tokens.size()) : 0});
      Seq& q = seqs_.at(s.seq);
      const bool greedy = q.params.temperature < kGreedyBelow;
      host = host || (!greedy && q.params.top_p < 1.f);
      temperature_.push_back(greedy ? 0.f : q.params.temperature);
      u_.push_back(greedy || q.params.top_p < 1.f ? 0.f : static_cast<float>(unit_(q.rng)));
    }
    if (!host) {
      model_.step_sample(inputs_, temperature_, u_, next);
      return;
    }
    const auto logits = model_.step_logits(inputs_, /*all_logits=*/false);
    for (size_t i = 0; i < batch.size(); ++i) {
      Seq& q = seqs_.at(batch[i].seq);
      if (temperature_[i] == 0.f) next[i] = argmax(logits[i]);
      else if (q.params.top_p < 1.f) next[i] = q.sampler.next(logits[i]);
      else next[i] = sample_inverse_cdf(logits[i], temperature_[i], u_[i]);
    }
  }

 private:
  struct Seq {
    SamplingParams params;
    std::mt19937_64 rng;  // draws for GPU-style sampling
    Sampler sampler;      // nucleus sampling on the host
  };
  cuda::CudaModel model_;
  std::unordered_map<uint64_t, Seq> seqs_;
  std::uniform_real_distribution<double> unit_{0.0, 1.0};
  std::vector<cuda::CudaModel::Input> inputs_;
  std::vector<float> temperature_, u_;
};

}  // namespace

bool cuda_available(std::string* why) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    if (why) *why = cat("no usable CUDA device (", err != cudaSuccess ? cudaGetErrorString(err) : "none found", ")");
    (void)cudaGetLastError();
    return false;
  }
  return true;
}

std::unique_ptr<Engine> make_cuda_engine(const ModelConfig& cfg, const ModelWeights& weights, CudaOptions cuda,
                                         EngineOptions options) {
  std::string why;
  if (!cuda_available(&why)) throw Error(cat("--backend cuda: ", why));
  return make_engine(std::make_unique<CudaBackend>(cfg, weights, cuda, options), options);
}

}  // namespace hrm
