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
// `mlp.gate_up_proj`), fp32, loadable by hrm::Model::load and transformers.
//
// Data parallelism (DESIGN §6's 2 nodes × 8 GPUs): with a Communicator of world size W, every rank
// holds the full model and optimizer state; a step packs like W × `accumulate` ranks (one Packer per
// micro-batch, virtual rank rank·accumulate + a), the global loss-token count is all-reduced first,
// every micro-batch's gradient is taken of its summed cross-entropy divided by that GLOBAL count and
// added up, then the gradients (and loss, accuracy, token counts, which tensors were reached) are
// sum-all-reduced, and every rank applies the same Adam-atan2 step — the update one process makes on
// the union of the ranks' batches, up to the order of the fp32 sums. Rank 0's weights are broadcast
// at construction; save_checkpoint and export_hf are collective (every rank calls them, rank 0 writes)
// and first check that every rank holds the same state. A single process with accumulate = N packs
// exactly the global batches of N ranks.
// Not for: the gradient maths (train.h), the optimizer maths (optimizer.h), data parsing (data.h), the
// transport (dist.h).
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
#include <vector>

#include "runtime/config.h"
#include "runtime/data.h"
#include "runtime/dist.h"
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
  // Micro-batches per rank and step, run one after another (gradient accumulation): a step packs like
  // world_size × accumulate ranks of batch_tokens each.
  int64_t accumulate = 1;
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
  int64_t tokens = 0;     // packed tokens of the step (all ranks and micro-batches)
  int64_t loss_tokens = 0;  // the same, loss tokens; loss and accuracy are over these
  int64_t epoch = 0;
  double seconds = 0;     // wall time of the step
  double comm_seconds = 0;  // of which in collectives (with waiting for the slowest rank); 0 with one
};

class Trainer {
 public:
  // `comm` (not owned; null = one process) must outlive the trainer. With several ranks the
  // constructor is collective: rank 0's `init` is broadcast, and the ranks' options are compared.
  Trainer(ModelConfig cfg, ModelWeights init, const TrainCorpus& corpus, TrainOptions opts,
          std::unique_ptr<TrainBackend> backend, Communicator* comm = nullptr);

  // Resumes from a checkpoint directory written by save_checkpoint. Every hyperparameter comes from the
  // checkpoint; only opts.steps (> 0) may extend the run (it also moves the bp warm-up point, so keep
  // it unchanged to reproduce an uninterrupted run), and opts.accumulate is taken as given. Every rank
  // reads the directory (a shared filesystem on several machines). Throws hrm::Error naming the file
  // when it is missing, belongs to another model shape, lacks a tensor, or was written with another
  // number of data-parallel ranks (world_size × accumulate: the batches would differ).
  static Trainer resume(const std::filesystem::path& checkpoint_dir, const TrainCorpus& corpus,
                        TrainOptions opts, std::unique_ptr<TrainBackend> backend, Communicator* comm = nullptr);

  // One optimizer step (collective).
  StepStats step();
  // Collective: every rank calls them, after checking that all ranks hold the same state; rank 0 writes.
  void save_checkpoint(const std::filesystem::path& dir) const;
  void export_hf(const std::filesystem::path& dir) const;  // the EMA weights (the raw ones if EMA is off)
  // Collective: throws hrm::Error on every rank unless every rank holds rank 0's options, data position,
  // weights and optimizer state (compared by a 64-bit fingerprint).
  void check_replicas() const;

  int64_t step_count() const { return opt_.steps(); }
  const ModelConfig& config() const { return cfg_; }
  // The state as of the last step (copied back first from a backend that holds it).
  const ModelWeights& weights() const {
    sync_host();
    return w_;
  }
  const AdamAtan2& optimizer() const {
    sync_host();
    return opt_;
  }
  const Packer& packer() const { return packers_.front(); }  // this rank's first micro-batch
  const TrainOptions& options() const { return opts_; }
  Communicator& communicator() const { return *comm_; }
  int64_t data_ranks() const { return comm_->world_size() * opts_.accumulate; }  // batches per step

 private:
  uint64_t fingerprint() const;
  // With a backend that holds the state (TrainBackend::holds_state): hand it the state, and copy it
  // back into w_ / opt_ when they are stale.
  void attach_state();
  void sync_host() const;

  std::unique_ptr<Communicator> own_comm_;  // the single-process one when none is given
  Communicator* comm_;
  ModelConfig cfg_;
  // w_ and opt_ are the state, or with a backend that holds it, a copy refreshed by sync_host().
  mutable ModelWeights w_;  // before opt_: the EMA starts from the broadcast weights
  ModelWeights grads_, micro_grads_;  // micro_grads_: the 2nd.. micro-batch's (accumulate > 1)
  TrainOptions opts_;
  mutable AdamAtan2 opt_;
  mutable bool host_stale_ = false;  // the backend holds newer weights/moments/EMA than w_ and opt_
  std::vector<Packer> packers_;  // one per micro-batch
  std::unique_ptr<TrainBackend> backend_;
};

}  // namespace hrm
