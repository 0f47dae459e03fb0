// The training computation of HRM-Text (DESIGN §6): loss and gradients of one packed batch.
//
// A packed batch concatenates samples into one token budget in the reference's layout
// (sapientinc/HRM-Text dataset_new.py): inputs are instruction + response[:-1], labels are
// "ignore" for all but the last instruction token, then the response; positions restart at 0 per
// sample and attention never crosses samples. Instruction tokens see each other bidirectionally,
// response tokens are causal (the PrefixLM mask). The loss is the reference's: cross-entropy summed
// over every label of the batch, divided by the number of labels in the batch (a per-batch token
// mean, not a mean of per-sequence means; models/lm_head.py).
//
// Truncated backprop follows models/baselines/hrm_nocarry_bp_warmup.py: with `bp_steps` b,
// H_bp = min(H_cycles, b-1) trailing H invocations and L_bp = b - H_bp trailing L invocations run
// with gradients; the others are evaluated as constants (their outputs are detached), so no gradient
// flows through them to anything, the embedding included. z_L_init never gets a gradient (frozen).
//
// The CPU reference backend computes everything in fp32 (runtime/cpu/). A GPU backend implements
// TrainBackend with the same contract. Not for: the optimizer (optimizer.h), data loading (data.h).
//
// Example:
//   hrm::PackedBatch batch;
//   batch.add_sample(inst_ids, resp_ids);
//   hrm::ModelWeights grads = hrm::zeros_like(weights);
//   hrm::LossResult r = hrm::cpu_forward_backward(cfg, weights, batch, /*bp_steps=*/5, &grads);
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/config.h"
#include "runtime/cpu/backward.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"

namespace hrm {

class AdamAtan2;
struct AdamStep;
class Communicator;

// The label of positions without loss (the reference's IGNORE_LABEL_ID, models/common.py).
inline constexpr int32_t kIgnoreLabel = -100;

struct PackedBatch {
  std::vector<TokenId> tokens;      // inputs, [T]
  std::vector<int32_t> labels;      // [T]; kIgnoreLabel where there is no loss
  std::vector<int64_t> positions;   // [T], restarting at 0 per sample
  std::vector<cpu::SeqSpan> seqs;   // one per sample: rows and the bidirectional prefix length

  // Appends one sample: inputs inst + resp[:-1] (prefix = inst), labels ignore × (|inst|-1) + resp.
  // Throws hrm::Error when inst or resp is empty.
  void add_sample(std::span<const TokenId> inst, std::span<const TokenId> resp);
  int64_t size() const { return static_cast<int64_t>(tokens.size()); }
  int64_t loss_tokens() const;
  // Tokens one sample occupies in a batch (the reference's `inst_len + resp_len - 1`).
  static int64_t packed_length(int64_t inst_len, int64_t resp_len) { return inst_len + resp_len - 1; }
};

// Truncated-backprop schedule (bp_steps over training). The reference moves from bp_min to bp_max
// as a STEP once `warmup_ratio` of the steps are done: bp_min + int(min(1, step/(total*ratio))) *
// (bp_max - bp_min). DESIGN §6 describes a linear growth instead; kLinear gives that.
enum class BpWarmup { kStep, kLinear };
struct BpSchedule {
  int64_t min_steps = 2;       // bp_min_steps of hrm_nocarry_bp_warmup.py
  int64_t max_steps = 5;       // bp_max_steps
  double warmup_ratio = 0.2;   // "over the first 20% of steps" (DESIGN §6)
  BpWarmup shape = BpWarmup::kStep;
  int64_t at(int64_t step, int64_t total_steps) const;
};

// Which stack invocations get gradients for a given bp_steps.
struct BackpropPlan {
  int64_t H_bp = 0, L_bp = 0;
  BackpropPlan(const ModelConfig& cfg, int64_t bp_steps);
  bool L_grad(const ModelConfig& cfg, int64_t k) const { return k >= cfg.H_cycles * cfg.L_cycles - L_bp; }
  bool H_grad(const ModelConfig& cfg, int64_t i) const { return i >= cfg.H_cycles - H_bp; }
  // bp_steps that gives every invocation a gradient (full backprop).
  static int64_t full(const ModelConfig& cfg) { return cfg.H_cycles + cfg.H_cycles * cfg.L_cycles; }
};

struct LossResult {
  double loss = 0;            // mean cross-entropy over the batch's loss tokens
  double loss_sum = 0;        // summed cross-entropy (loss × loss_tokens; what data-parallel ranks add up)
  int64_t loss_tokens = 0;
  int64_t correct = 0;        // loss tokens whose argmax equals the label
  // Which parameter groups lie on the loss's autograd graph (PyTorch would give the others
  // `grad = None`): the embedding only when an H invocation it feeds runs with gradients, etc.
  bool embed_reached = false, lm_head_reached = false, H_reached = false, L_reached = false;
  // Per trainable tensor (trainable_tensors order), for AdamAtan2::step.
  std::vector<char> active(const ModelWeights& w) const;
};

// Weights with the same shapes, all zero (a gradient buffer).
ModelWeights zeros_like(const ModelWeights& w);
void set_zero(ModelWeights& w);

// The trainable tensors under their Hugging Face names (unfused spelling for the blocks), in a fixed
// order; z_L_init is not among them (frozen). Shapes are [out, in] / [V, D].
struct NamedTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float>* data;
};
std::vector<NamedTensor> trainable_tensors(ModelWeights& w);

// Checks a packed batch against the model before any backend computes on it: non-empty, arrays of one
// length, positions below max_position_embeddings, token ids and labels in the vocabulary, and
// grad_tokens (when non-zero) no smaller than the batch's loss tokens. Returns the rows that carry a
// label, in order. Throws hrm::Error saying which value is wrong.
std::vector<int64_t> checked_loss_rows(const ModelConfig& cfg, const PackedBatch& batch, int64_t grad_tokens);

// Loss and, when `grads` is non-null, gradients ADDED into `grads` (zero them first) for one
// packed batch on the CPU reference backend, with truncated backprop of `bp_steps` (≥ 1).
// The gradient is that of the summed cross-entropy divided by `grad_tokens`: 0 means this batch's
// own loss tokens (the per-batch token mean); a data-parallel step passes the loss tokens of the whole
// global step (all ranks, all micro-batches), so that the batches' gradients add up to the gradient
// of the global step's token mean — the same update one process would make on the union.
LossResult cpu_forward_backward(const ModelConfig& cfg, const ModelWeights& w, const PackedBatch& batch,
                                int64_t bp_steps, ModelWeights* grads, int64_t grad_tokens = 0);

// Model FLOPs of one training step on `batch` (a multiply-add counts 2), the usual convention for
// MFU: every stack invocation's forward (the projections, and attention over exactly the keys each
// query sees under the PrefixLM mask), the lm_head on the loss rows, and twice the forward of what the
// backward differentiates (the last bp_steps invocations and the lm_head). Recomputation,
// normalisation and elementwise work are not counted.
struct TrainFlops {
  double forward = 0, backward = 0;
  double total() const { return forward + backward; }
};
TrainFlops train_flops(const ModelConfig& cfg, const PackedBatch& batch, int64_t bp_steps);

// The interface a training backend implements (CPU reference today; CUDA later). It owns no weights:
// the trainer passes the fp32 master weights and a gradient buffer each step.
class TrainBackend {
 public:
  virtual ~TrainBackend() = default;
  virtual std::string name() const = 0;
  // As cpu_forward_backward, `grad_tokens` included. A backend may keep its own copy of the weights
  // (the CUDA one keeps bf16 copies on the GPU): it refreshes it when `w` is at another address than on
  // the last call, or after weights_updated(). Objects are told apart by address only, so whoever
  // changes the weights in place, or passes new weights that may sit where the old ones were (a
  // destroyed object's storage reused), calls weights_updated() first.
  virtual LossResult forward_backward(const ModelConfig& cfg, const ModelWeights& w, const PackedBatch& batch,
                                      int64_t bp_steps, ModelWeights* grads, int64_t grad_tokens) = 0;
  // The weights passed to forward_backward have changed in place (the trainer calls it after each
  // optimizer step).
  virtual void weights_updated() {}

  // ---- Optional: the backend keeps the training state itself ----
  // A backend whose holds_state() is true keeps its own copy of the fp32 master weights, the
  // Adam-atan2 moments and the EMA (the CUDA backend: in GPU memory, so a step moves no weights or
  // gradients across PCIe), and the trainer drives it with these calls instead of forward_backward
  // and its own optimizer:
  //   load_state(cfg, w, opt, comm)   when the state is created or read from a checkpoint;
  //   each step: begin_step(), accumulate(...) per micro-batch (the gradient of the summed loss /
  //     grad_tokens, added up over the step's micro-batches), then update(step, comm): sum-all-reduce
  //     the gradients of the step's active tensors over the ranks, then apply `step` (computed by the
  //     trainer's AdamAtan2::begin_step, which keeps the step counters) to weights, moments and EMA;
  //   store_state(w, opt): copy weights, moments and EMA back, before anyone reads them.
  // The defaults throw: a backend that keeps no state is driven through forward_backward.
  virtual bool holds_state() const { return false; }
  virtual void load_state(const ModelConfig& cfg, const ModelWeights& w, const AdamAtan2& opt, Communicator& comm);
  virtual void begin_step();
  virtual LossResult accumulate(const ModelConfig& cfg, const PackedBatch& batch, int64_t bp_steps,
                                int64_t grad_tokens);
  virtual void update(const AdamStep& step, Communicator& comm);
  virtual void store_state(ModelWeights& w, AdamAtan2& opt);
};
std::unique_ptr<TrainBackend> make_cpu_train_backend();

}  // namespace hrm
