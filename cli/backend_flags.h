// The flags that pick and tune a generation backend, shared by generate, eval run and the benches.
//
// Example:
//   BackendFlags f;
//   add_backend_flags(cmd, f);
//   auto engine = make_engine_for(f.backend, model, f.cuda, f.engine_options(max_batch));
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "runtime/cuda_backend.h"

namespace hrm::cli {

struct BackendFlags {
  std::string backend = "cpu";
  CudaOptions cuda;
  int64_t kv_budget_mib = 0;
  int64_t max_step_tokens = 0;

  EngineOptions engine_options(int64_t max_batch) const {
    return EngineOptions{.max_batch = max_batch, .kv_budget_bytes = kv_budget_mib << 20, .max_step_tokens = max_step_tokens};
  }
};

inline void add_backend_flags(CLI::App* cmd, BackendFlags& f) {
  cmd->add_option("--backend", f.backend, "cpu (fp32 reference) or cuda")->capture_default_str();
  cmd->add_option("--kv-budget-mib", f.kv_budget_mib,
                  "KV-cache memory in MiB (default: cpu half the RAM, cuda what is free on the GPU)");
  cmd->add_option("--max-step-tokens", f.max_step_tokens,
                  "Token rows per engine step (default: cpu unlimited, cuda max(8192, context))");
  cmd->add_flag("--fp8-kv", f.cuda.fp8_kv, "cuda: store the KV cache in fp8 e4m3 (half the memory)");
  cmd->add_option("--page-tokens", f.cuda.page_tokens, "cuda: tokens per KV-cache page")->capture_default_str();
  cmd->add_flag("!--no-cuda-graphs", f.cuda.graphs, "cuda: launch decode steps one kernel at a time");
  cmd->add_option("--device", f.cuda.device, "cuda: GPU index")->capture_default_str();
  cmd->add_flag("--profile", f.cuda.profile,
                "cuda: time every kernel with CUDA events (no graphs) and print where the time went");
}

}  // namespace hrm::cli
