// The CUDA backend's public entry points, available in every build: without CUDA (HRM_CUDA=OFF) they
// say so (cuda_available() is false; make_cuda_engine throws). Include no CUDA header here.
//
// The backend keeps bf16 weights and an fp32 residual stream on one GPU, a paged KV cache (bf16 or
// fp8 e4m3) sized to the memory left, cuBLAS GEMMs, flash-style PrefixLM attention, GPU sampling
// and CUDA graphs for decode steps (runtime/cuda/). The engine's scheduling is the shared one of
// engine.h. The same GPU code also gives a training backend (make_cuda_train_backend).
//
// Example:
//   std::string why;
//   if (!hrm::cuda_available(&why)) throw hrm::Error(why);
//   auto engine = hrm::make_cuda_engine(model.config(), model.weights(), {}, {.max_batch = 64});
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/error.h"
#include "runtime/config.h"
#include "runtime/engine.h"
#include "runtime/model.h"
#include "runtime/train.h"

namespace hrm {

struct CudaOptions {
  int device = 0;
  bool fp8_kv = false;      // KV cache in fp8 e4m3 (half the memory) instead of bf16
  int page_tokens = 16;     // tokens per KV-cache page
  bool graphs = true;       // replay decode steps from CUDA graphs
  bool profile = false;     // time every kernel with CUDA events (turns graphs off); Engine::profile_report
};

// True when this binary has the CUDA backend and a usable GPU; otherwise `why` says what is missing.
bool cuda_available(std::string* why = nullptr);

// Uploads the weights (converted to bf16) and returns an engine running on the GPU.
std::unique_ptr<Engine> make_cuda_engine(const ModelConfig& cfg, const ModelWeights& weights, CudaOptions cuda,
                                         EngineOptions options);

struct CudaTrainOptions {
  int device = 0;
  // Keep the fp32 master weights, Adam-atan2 moments and EMA on the GPU and update them there
  // (TrainBackend::holds_state), all-reducing gradients with NCCL across ranks; false: the trainer
  // keeps them on the host and the GPU only computes gradients (forward_backward).
  bool hold_state = true;
};

// A training backend on one GPU (runtime/cuda/cuda_train.cpp): the loss and gradients of
// cpu_forward_backward in bf16 compute with fp32 accumulation, fp32 residuals and fp32 gradients.
// Throws hrm::Error when this binary has no CUDA or no GPU is usable.
std::unique_ptr<TrainBackend> make_cuda_train_backend(const CudaTrainOptions& options = {});

// The engine of a backend named on the command line: "cpu" (the reference) or "cuda".
inline std::unique_ptr<Engine> make_engine_for(const std::string& backend, const Model& model, const CudaOptions& cuda,
                                               EngineOptions options) {
  if (backend == "cpu") return make_cpu_engine(model, options);
  if (backend == "cuda") return make_cuda_engine(model.config(), model.weights(), cuda, options);
  throw Error(cat("--backend ", backend, ": expected cpu or cuda"));
}

}  // namespace hrm
