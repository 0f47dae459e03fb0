// HRM-Text on one GPU: bf16 weights, fp32 residual stream, paged KV cache, one batched step at a time.
//
// The same computation as the CPU reference (runtime/model.h) op by op, with these differences, all
// covered by the parity tests in tests/cuda/: GEMM inputs/outputs and the attention's q/k/v/p are
// bf16 (fp32 accumulation); the KV cache is bf16 or fp8 e4m3. Sequences live in a paged cache (pages
// of `page_tokens` tokens, every slot) and take pages only as they grow; close() returns them at once.
// Decode-only steps are replayed from CUDA graphs captured per batch-size bucket.
// Not for: scheduling (engine.cpp) or sampling policy (cuda_engine.cpp picks GPU or host sampling).
//
// Example:
//   hrm::cuda::CudaModel m(cfg, weights, {});
//   m.open(7);
//   std::vector<hrm::cuda::CudaModel::Input> in{{7, prompt, (int64_t)prompt.size()}};
//   auto logits = m.step_logits(in, /*all_logits=*/false);   // [1][V]
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <span>
#include <vector>

#include "runtime/config.h"
#include "runtime/cuda/kernels.h"
#include "runtime/cuda/step_plan.h"
#include "runtime/model.h"

namespace hrm::cuda {

// cudaMalloc'd memory, freed on destruction.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr, o.bytes_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer();
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Pinned host memory, for asynchronous copies.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(size_t bytes);
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept;
  PinnedBuffer(const PinnedBuffer&) = delete;
  ~PinnedBuffer();
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }

 private:
  void* ptr_ = nullptr;
};

// Concatenates fp32 host tensors row-wise and copies them to `dst` as bf16 (round to nearest even);
// synchronous.
void copy_to_device_bf16(std::initializer_list<const std::vector<float>*> parts, bf16* dst);

class CudaModel {
 public:
  struct Options {
    int device = 0;
    KvDtype kv_dtype = KvDtype::kBf16;
    int page_tokens = 16;
    int64_t kv_budget_bytes = 0;  // KV pool size; 0 = most of the memory left after everything else
    int64_t max_step_tokens = 0;  // token rows per step; 0 = max(8192, max_position_embeddings)
    int max_seqs = 256;           // sequences per step
    bool graphs = true;           // CUDA graphs for decode-only steps
    bool profile = false;         // time each kernel with CUDA events (no graphs then)
  };

  using Input = PagedCache::Input;  // {seq, tokens, prefix}: as hrm::StepInput

  CudaModel(const ModelConfig& cfg, const ModelWeights& w, Options options);
  ~CudaModel();
  CudaModel(const CudaModel&) = delete;
  CudaModel& operator=(const CudaModel&) = delete;

  const ModelConfig& config() const { return cfg_; }
  int64_t page_tokens() const { return opt_.page_tokens; }
  int64_t page_bytes() const { return page_bytes_; }
  int64_t pages_total() const { return cache_->pages_total(); }  // the scratch page 0 not counted
  int64_t pages_free() const { return cache_->pages_free(); }
  int64_t max_step_tokens() const { return max_tokens_; }
  int max_seqs() const { return opt_.max_seqs; }
  int64_t weight_bytes() const { return weight_bytes_; }
  int64_t activation_bytes() const { return activation_bytes_; }
  std::string device_name() const { return device_name_; }
  const char* kv_dtype_name() const { return opt_.kv_dtype == KvDtype::kBf16 ? "bf16" : "fp8-e4m3"; }

  void open(uint64_t seq);
  void close(uint64_t seq);  // frees its pages
  int64_t length(uint64_t seq) const;

  // One step; returns per input the logits of its last new token, or of all its new tokens.
  std::vector<std::vector<float>> step_logits(std::span<const Input> inputs, bool all_logits);
  // With Options::profile: milliseconds per kernel kind since construction or reset_profile(),
  // largest first, and the number of launches of each.
  struct ProfileRow {
    std::string kernel;
    double ms = 0;
    int64_t launches = 0;
  };
  std::vector<ProfileRow> profile() const;
  void reset_profile() { profile_.clear(); }

  // One step with sampling on the GPU (see kernels.h sample_rows): next[i] for inputs[i].
  void step_sample(std::span<const Input> inputs, std::span<const float> temperature, std::span<const float> u,
                   std::span<TokenId> next);

 private:
  struct Block {
    DeviceBuffer gqkv, o, gu, down;  // bf16 [4A, D], [D, A], [2I, D], [D, I]
  };
  // A planned step and its decode split count.
  struct Plan : StepPlan {
    int splits = 1;
  };

  Plan prepare(std::span<const Input> inputs, bool all_logits, int pad_to);
  void upload(const Plan& p, bool with_sampling);
  void forward(const Plan& p);
  void sample(const Plan& p);
  void gemm(const bf16* x, int rows, int in, const bf16* w, int out, void* y, bool y_f32, float beta);
  void ensure_logits(int rows);
  int decode_splits(int seqs) const;
  // Runs `launch` between two events when profiling; collect_profile() reads them after a sync.
  template <typename F>
  void timed(const char* kernel, F&& launch);
  void collect_profile();

  ModelConfig cfg_;
  Options opt_;
  std::string device_name_;
  int sm_count_ = 0;
  int64_t D_, A_, I_, V_;
  int64_t max_tokens_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  DeviceBuffer cublas_workspace_;

  // Weights.
  DeviceBuffer embed_, lm_head_, z_L_init_, inv_freq_;  // fp32, bf16, fp32, fp32
  std::vector<Block> L_, H_;
  int64_t weight_bytes_ = 0;

  // Activations, sized for max_tokens_ rows.
  DeviceBuffer x_, zH_, zL_;                    // fp32 [T, D]
  DeviceBuffer normed_, gqkv_, attn_, gu_, mid_;  // bf16 [T, D], [T, 4A], [T, A], [T, 2I], [T, I]
  DeviceBuffer partial_;                          // decode split partials
  DeviceBuffer lm_in_, logits_;                   // bf16 [rows, D], fp32 [rows, V]
  int logits_rows_ = 0;
  int64_t activation_bytes_ = 0;

  // Step metadata: fixed offsets into one device buffer and its pinned host mirror.
  StepLayout meta_{};
  DeviceBuffer meta_dev_;
  PinnedBuffer meta_host_;

  // Paged KV cache: the pool on the GPU, its bookkeeping on the host.
  KvLayout kv_{};
  DeviceBuffer pool_;
  int64_t page_bytes_ = 0;
  std::unique_ptr<PagedCache> cache_;

  // Decode graphs per padded batch size.
  std::map<int, cudaGraphExec_t> graphs_;

  // Profiling: events of the current step (reused), totals per kernel kind.
  std::vector<cudaEvent_t> events_;
  std::vector<const char*> event_kernels_;
  size_t events_used_ = 0;
  std::map<std::string, ProfileRow> profile_;
};

}  // namespace hrm::cuda
