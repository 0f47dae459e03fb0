// Helpers shared by the training tests: a small random corpus and small training options.
#pragma once

#include <random>
#include <vector>

#include "runtime/data.h"
#include "runtime/trainer.h"

namespace hrm::test {

// Random instruction/response pairs over a 256-token vocabulary.
inline TrainCorpus random_corpus(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  TrainCorpus c;
  for (int i = 0; i < n; ++i) {
    std::vector<TokenId> inst(2 + rng() % 6), resp(1 + rng() % 6);
    for (auto& t : inst) t = static_cast<TokenId>(rng() % 256);
    for (auto& t : resp) t = static_cast<TokenId>(rng() % 256);
    c.add(inst, resp);
  }
  return c;
}

// Six small steps; bp_steps moves from 2 to 5 half-way (resume and the all-reduce of the embedding's
// gradient, which joins only then, must both get that right).
inline TrainOptions small_train_options() {
  TrainOptions o;
  o.steps = 6;
  o.batch_tokens = 48;
  o.seed = 11;
  o.lr.lr = 1e-3;
  o.lr.warmup_steps = 2;
  o.bp.warmup_ratio = 0.5;
  o.optim.ema_decay = 0.9;
  return o;
}

}  // namespace hrm::test
