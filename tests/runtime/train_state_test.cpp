// The protocol of a training backend that keeps the training state itself (TrainBackend::holds_state:
// the CUDA backend keeps weights, moments and EMA in GPU memory), checked on the CPU: a test backend
// that holds the state in its own host memory and computes with the CPU reference must give the
// trainer's own path bit for bit — every step's metrics, the weights, moments, EMA and step counters,
// the checkpoint bytes, and a resume.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <unistd.h>

#include "common/error.h"
#include "runtime/dist.h"
#include "runtime/optimizer.h"
#include "runtime/train.h"
#include "runtime/trainer.h"
#include "train_test_util.h"

namespace hrm {
namespace {

namespace fs = std::filesystem;

class HostStateBackend final : public TrainBackend {
 public:
  std::string name() const override { return "host-state"; }
  bool holds_state() const override { return true; }
  LossResult forward_backward(const ModelConfig&, const ModelWeights&, const PackedBatch&, int64_t, ModelWeights*,
                              int64_t) override {
    throw Error("host-state backend: forward_backward called although it holds the state");
  }
  void load_state(const ModelConfig&, const ModelWeights& w, const AdamAtan2& opt, Communicator&) override {
    w_ = w, m_ = opt.m(), v_ = opt.v(), ema_ = opt.ema();
    grads_ = zeros_like(w), micro_ = zeros_like(w);
  }
  void begin_step() override {
    set_zero(grads_);
    first_ = true;
  }
  LossResult accumulate(const ModelConfig& cfg, const PackedBatch& batch, int64_t bp, int64_t grad_tokens) override {
    ModelWeights* g = first_ ? &grads_ : &micro_;
    if (!first_) set_zero(micro_);
    const LossResult r = cpu_forward_backward(cfg, w_, batch, bp, g, grad_tokens);
    if (!first_) {
      std::vector<NamedTensor> into = trainable_tensors(grads_), from = trainable_tensors(micro_);
      for (size_t i = 0; i < into.size(); ++i)
        for (size_t j = 0; j < into[i].data->size(); ++j) (*into[i].data)[j] += (*from[i].data)[j];
    }
    first_ = false;
    return r;
  }
  void update(const AdamStep& s, Communicator& comm) override {
    std::vector<NamedTensor> ps = trainable_tensors(w_), gs = trainable_tensors(grads_);
    for (size_t i = 0; i < ps.size(); ++i) {
      if (!s.active[i]) continue;
      if (comm.world_size() > 1) comm.all_reduce_sum(std::span<float>(*gs[i].data));
      adam_atan2_update(ps[i].data->data(), gs[i].data->data(), m_[i].data(), v_[i].data(),
                        s.ema ? ema_[i].data() : nullptr, ps[i].data->size(), s, i);
    }
    ++updates;
  }
  void store_state(ModelWeights& w, AdamAtan2& opt) override {
    w = w_, opt.m() = m_, opt.v() = v_;
    if (!opt.ema().empty()) opt.ema() = ema_;
    ++stores;
  }
  int updates = 0, stores = 0;

 private:
  ModelWeights w_, grads_, micro_;
  std::vector<std::vector<float>> m_, v_, ema_;
  bool first_ = true;
};

ModelConfig state_test_config() { return shape_config("tiny", 256); }

void expect_same_state(const Trainer& a, const Trainer& b) {
  ModelWeights wa = a.weights(), wb = b.weights();
  const std::vector<NamedTensor> ta = trainable_tensors(wa), tb = trainable_tensors(wb);
  for (size_t i = 0; i < ta.size(); ++i) EXPECT_EQ(*ta[i].data, *tb[i].data) << ta[i].name;
  const AdamAtan2& oa = a.optimizer();
  const AdamAtan2& ob = b.optimizer();
  EXPECT_EQ(oa.m(), ob.m());
  EXPECT_EQ(oa.v(), ob.v());
  EXPECT_EQ(oa.ema(), ob.ema());
  EXPECT_EQ(oa.steps(), ob.steps());
  EXPECT_EQ(const_cast<AdamAtan2&>(oa).tensor_steps(), const_cast<AdamAtan2&>(ob).tensor_steps());
}

TEST(HeldState, TrainerMatchesItsOwnPathBitwise) {
  const ModelConfig cfg = state_test_config();
  const TrainCorpus corpus = test::random_corpus(60, 21);
  for (int64_t accumulate : {1, 2}) {
    TrainOptions o = test::small_train_options();
    o.accumulate = accumulate;
    auto held = std::make_unique<HostStateBackend>();
    HostStateBackend* hb = held.get();
    Trainer ref(cfg, init_weights(cfg, 5), corpus, o, make_cpu_train_backend());
    Trainer tr(cfg, init_weights(cfg, 5), corpus, o, std::move(held));
    for (int64_t s = 0; s < o.steps; ++s) {
      const StepStats a = ref.step(), b = tr.step();
      EXPECT_EQ(a.loss, b.loss) << "accumulate " << accumulate << " step " << a.step;
      EXPECT_EQ(a.accuracy, b.accuracy);
      EXPECT_EQ(a.tokens, b.tokens);
      EXPECT_EQ(a.loss_tokens, b.loss_tokens);
      EXPECT_EQ(a.bp_steps, b.bp_steps);
    }
    EXPECT_EQ(hb->updates, o.steps);
    expect_same_state(ref, tr);
    EXPECT_GE(hb->stores, 1) << "the trainer read its stale copy";
  }
}

std::string bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

TEST(HeldState, CheckpointsAndResumeMatchBitwise) {
  const fs::path dir = fs::temp_directory_path() / ("hrm_held_state_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const ModelConfig cfg = state_test_config();
  const TrainCorpus corpus = test::random_corpus(60, 22);
  const TrainOptions o = test::small_train_options();
  Trainer ref(cfg, init_weights(cfg, 6), corpus, o, make_cpu_train_backend());
  Trainer tr(cfg, init_weights(cfg, 6), corpus, o, std::make_unique<HostStateBackend>());
  for (int s = 0; s < 3; ++s) ref.step(), tr.step();
  ref.save_checkpoint(dir / "ref");
  tr.save_checkpoint(dir / "held");
  EXPECT_TRUE(bytes(dir / "ref" / "state.safetensors") == bytes(dir / "held" / "state.safetensors"))
      << "the checkpoints' tensors differ";
  EXPECT_TRUE(bytes(dir / "ref" / "state.json") == bytes(dir / "held" / "state.json")) << "state.json differs";
  // Resume the held-state trainer from its checkpoint; the rest of the run equals the uninterrupted one.
  TrainOptions keep;
  keep.steps = 0;  // the checkpoint's
  Trainer resumed = Trainer::resume(dir / "held", corpus, keep, std::make_unique<HostStateBackend>());
  expect_same_state(ref, resumed);
  while (ref.step_count() < o.steps) {
    const StepStats a = ref.step(), b = resumed.step();
    EXPECT_EQ(a.loss, b.loss) << "step " << a.step;
  }
  expect_same_state(ref, resumed);
  ref.export_hf(dir / "ref_hf");
  resumed.export_hf(dir / "held_hf");
  EXPECT_TRUE(bytes(dir / "ref_hf" / "model.safetensors") == bytes(dir / "held_hf" / "model.safetensors"))
      << "the exports differ";
  fs::remove_all(dir);
}

TEST(HeldState, BackendsWithoutStateRefuseTheProtocol) {
  const std::unique_ptr<TrainBackend> cpu = make_cpu_train_backend();
  EXPECT_FALSE(cpu->holds_state());
  try {
    cpu->begin_step();
    FAIL() << "begin_step accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'cpu' keeps no training state"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace hrm
