// The reference training loop (DESIGN §6): packed batches → loss and gradients (a TrainBackend) →
// Adam-atan2 + EMA, with the LR and truncated-backprop schedules, a JSONL loss log, checkpoints that
// resume bit-exactly, and the export of the EMA weights as a Hugging Face checkpoint.
//
// A checkpoint is a directory: `state.safetensors` (fp32 weights under their HF names, plus
// `optim.m.*`, `optim.v.*`, `ema.*` and `model.z_L_init`) and `state.json` (step, data position,
// seed, packing, schedules, model config). Data order depends only on (seed, packing, epoch, cursor),
// so nothing else is needed to resume; the CPU backend is deterministic for any thread count, so a
// resumed run equals an uninterrupted one bit for bit. The export (`hf/` under the output directory by default) holds
// config.json + model.safetensors in the released fused layout (`attn.gqkv_proj` = gate,q,k,v rows;
// `mlp.gate_up_proj`), fp32, loadable by hrm::Model::load and transformers. One process is one rank:
// the data-parallel exchange (and with it a world size above 1) waits for the GPU trainer.
// Not for: the gradient maths (train.h), the optimizer maths (optimizer.h), data parsing (data.h).
//
// Example:
//   hrm::Trainer t(cfg, hrm::init_weights(cfg, seed), corpus, opts, hrm::make_cpu_train_backend());
//   while (t.step_count() < opts.steps) t.step();
//   t.export_hf(out / "hf");
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "runtime/config.h"
#include "runtime/data.h"
#include "runtime/model.h"
#include "runtime/optimizer.h"
#include "runtime/train.h"

namespace hrm {

// Named shapes: tiny (tests, CPU runs) and the paper's B / L / XL (DESIGN §2). The vocabulary is the
// tokenizer's size rounded up to a multiple of 256 (the reference's find_multiple, dataset_new.py).
ModelConfig shape_config(const std::string& shape, int64_t vocab_size);
// Vocabulary rounded up the way the reference does.
int64_t padded_vocab(int64_t vocab);
// config.json text for `cfg` as transformers' HrmTextConfig writes it (model_type hrm_text).
std::string hf_config_json(const ModelConfig& cfg);

struct TrainOptions {
  int64_t steps = 100;
  int64_t batch_tokens = 4096;
  uint64_t seed = 0;
  Packing packing = Packing::kMultipack;  // the reference's sampler (data.h)
  bool drop_last = false;                 // the reference drops each epoch's last step (PackerOptions)
  LrSchedule lr;
  AdamAtan2Config optim;
  BpSchedule bp;
};

struct StepStats {
  int64_t step = 0;       // 1-based, after this step
  double loss = 0;
  double accuracy = 0;    // argmax == label over loss tokens
  double lr = 0;
  int64_t bp_steps = 0;
  int64_t tokens = 0;     // packed tokens of the batch
  int64_t loss_tokens = 0;
  int64_t epoch = 0;
  double seconds = 0;     // wall time of the step
};

class Trainer {
 public:
  Trainer(ModelConfig cfg, ModelWeights init, const TrainCorpus& corpus, TrainOptions opts,
          std::unique_ptr<TrainBackend> backend);

  // Resumes from a checkpoint directory written by save_checkpoint. Every hyperparameter comes from the
  // checkpoint; only opts.steps (> 0) may extend the run (it also moves the bp warm-up point, so keep
  // it unchanged to reproduce an uninterrupted run). Throws hrm::Error naming the file when it is
  // missing, belongs to another model shape, or lacks a tensor.
  static Trainer resume(const std::filesystem::path& checkpoint_dir, const TrainCorpus& corpus,
                        TrainOptions opts, std::unique_ptr<TrainBackend> backend);

  StepStats step();
  void save_checkpoint(const std::filesystem::path& dir) const;
  void export_hf(const std::filesystem::path& dir) const;  // the EMA weights (the raw ones if EMA is off)

  int64_t step_count() const { return opt_.steps(); }
  const ModelConfig& config() const { return cfg_; }
  const ModelWeights& weights() const { return w_; }
  const AdamAtan2& optimizer() const { return opt_; }
  const Packer& packer() const { return packer_; }
  const TrainOptions& options() const { return opts_; }

 private:
  ModelConfig cfg_;
  ModelWeights w_;
  ModelWeights grads_;
  TrainOptions opts_;
  AdamAtan2 opt_;
  Packer packer_;
  std::unique_ptr<TrainBackend> backend_;
};

}  // namespace hrm
