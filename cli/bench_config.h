// The model a `bench` command measures: --config (a config.json file or a model directory) or a named
// --shape with --vocab, written back as config.json with --write-config so that the transformers
// anchor scripts (scripts/bench_transformers.py, bench_train_transformers.py) build the same model.
#pragma once

#include <fstream>
#include <string>

#include "common/error.h"
#include "runtime/config.h"
#include "runtime/trainer.h"

namespace hrm::cli {

inline ModelConfig bench_model_config(const std::string& shape, int64_t vocab, const std::string& config,
                                      const std::string& write_config) {
  const ModelConfig cfg = config.empty() ? shape_config(shape, vocab) : load_config(config);
  if (!write_config.empty()) {
    std::ofstream out(write_config, std::ios::binary);
    out << hf_config_json(cfg);
    if (!out.flush()) throw Error(cat("--write-config ", write_config, ": cannot write"));
  }
  return cfg;
}

}  // namespace hrm::cli
