// Next-token selection: greedy (argmax, first index on ties as torch.argmax) or temperature with
// nucleus (top-p) sampling from a per-request seeded generator, so a request's tokens do not depend
// on what else is in its batch. Pure logic, no model: unit-tested on its own.
#pragma once

#include <cstdint>
#include <random>
#include <span>

#include "runtime/tokenizer.h"

namespace hrm {

struct SamplingParams {
  float temperature = 0.0f;  // <= kGreedyBelow means greedy (the reference treats temp < 1e-5 as argmax)
  float top_p = 1.0f;        // (0, 1]
  uint64_t seed = 0;
};

// Temperatures below this are greedy, as in the reference's simple_inference_engine._sample.
inline constexpr float kGreedyBelow = 1e-5f;

class Sampler {
 public:
  explicit Sampler(SamplingParams p) : p_(p), rng_(p.seed) {}
  TokenId next(std::span<const float> logits);

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
};

TokenId argmax(std::span<const float> logits);

// Temperature sampling without nucleus by the inverse CDF of softmax(logits / temperature) in id
// order at the uniform draw u in [0, 1): the first id whose cumulative mass exceeds u. The CUDA
// backend samples this way on the GPU (runtime/cuda/kernels.h sample_rows); this is its host twin.
// Falls back to the argmax when rounding leaves the draw unreached.
TokenId sample_inverse_cdf(std::span<const float> logits, float temperature, float u);

}  // namespace hrm
