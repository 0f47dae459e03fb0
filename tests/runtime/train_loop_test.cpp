// The training loop: bit-exact resume from a checkpoint, the Hugging Face export loading in
// hrm::Model, and config/shape helpers.
#include "runtime/trainer.h"

#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include <cstring>
#include <fstream>
#include <random>

#include <unistd.h>

#include "common/error.h"
#include "runtime/config.h"
#include "runtime/synthetic.h"
#include "test_util.h"
#include "train_test_util.h"

namespace hrm {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("hrm_train_loop_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}

using test::random_corpus;
TrainOptions small_options() { return test::small_train_options(); }

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(TrainLoop, ResumeIsBitExact) {
  const ModelConfig cfg = shape_config("tiny", 256);
  const TrainCorpus corpus = random_corpus(30, 1);
  const TrainOptions o = small_options();

  Trainer straight(cfg, init_weights(cfg, 5), corpus, o, make_cpu_train_backend());
  std::vector<double> losses;
  for (int i = 0; i < o.steps; ++i) losses.push_back(straight.step().loss);

  const fs::path ckpt = temp_dir("ckpt");
  {
    Trainer first(cfg, init_weights(cfg, 5), corpus, o, make_cpu_train_backend());
    for (int i = 0; i < o.steps / 2; ++i) EXPECT_EQ(first.step().loss, losses[i]);
    first.save_checkpoint(ckpt);
  }
  TrainOptions resume_opts;
  resume_opts.steps = 0;  // keep the checkpoint's
  Trainer second = Trainer::resume(ckpt, corpus, resume_opts, make_cpu_train_backend());
  EXPECT_EQ(second.step_count(), o.steps / 2);
  for (int i = o.steps / 2; i < o.steps; ++i) {
    const StepStats s = second.step();
    EXPECT_EQ(s.loss, losses[i]) << "step " << s.step;
  }
  ModelWeights a = straight.weights(), b = second.weights();
  std::vector<NamedTensor> ta = trainable_tensors(a), tb = trainable_tensors(b);
  for (size_t i = 0; i < ta.size(); ++i) {
    EXPECT_TRUE(bitwise_equal(*ta[i].data, *tb[i].data)) << ta[i].name;
    EXPECT_TRUE(bitwise_equal(const_cast<AdamAtan2&>(straight.optimizer()).m()[i],
                              const_cast<AdamAtan2&>(second.optimizer()).m()[i])) << ta[i].name;
    EXPECT_TRUE(bitwise_equal(const_cast<AdamAtan2&>(straight.optimizer()).v()[i],
                              const_cast<AdamAtan2&>(second.optimizer()).v()[i])) << ta[i].name;
    EXPECT_TRUE(bitwise_equal(const_cast<AdamAtan2&>(straight.optimizer()).ema()[i],
                              const_cast<AdamAtan2&>(second.optimizer()).ema()[i])) << ta[i].name;
  }
  EXPECT_TRUE(bitwise_equal(a.z_L_init, b.z_L_init));
  EXPECT_EQ(straight.packer().cursor(), second.packer().cursor());
  fs::remove_all(ckpt);
}

TEST(TrainLoop, CheckpointRecordsThePacking) {
  const ModelConfig cfg = shape_config("tiny", 256);
  const TrainCorpus corpus = random_corpus(30, 1);
  TrainOptions o = small_options();
  o.packing = Packing::kGreedy;
  o.drop_last = true;
  const fs::path ckpt = temp_dir("packing");
  {
    Trainer t(cfg, init_weights(cfg, 5), corpus, o, make_cpu_train_backend());
    EXPECT_EQ(t.packer().options().packing, Packing::kGreedy);
    t.step();
    t.save_checkpoint(ckpt);
  }
  const std::string json = test::read_text(ckpt / "state.json");
  ASSERT_NE(json.find("\"packing\": \"greedy\", \"drop_last\": true,"), std::string::npos) << json;
  TrainOptions keep;
  keep.steps = 0;
  auto resumed_packing = [&](const std::string& text) {
    std::ofstream(ckpt / "state.json") << text;
    const Trainer r = Trainer::resume(ckpt, corpus, keep, make_cpu_train_backend());
    return std::make_pair(r.packer().options().packing, r.packer().options().drop_last);
  };
  EXPECT_EQ(resumed_packing(json), std::make_pair(Packing::kGreedy, true));
  // Checkpoints from before the multipack sampler have neither field: they packed greedily.
  const size_t at = json.find("  \"packing\"");
  const std::string old = json.substr(0, at) + json.substr(json.find('\n', at) + 1);
  EXPECT_EQ(resumed_packing(old), std::make_pair(Packing::kGreedy, false));
  std::string bad = json;
  bad.replace(bad.find("\"greedy\""), 8, "\"bestfit\"");
  try {
    resumed_packing(bad);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("state.json: packing must be"), std::string::npos) << e.what();
  }
  fs::remove_all(ckpt);
}

TEST(TrainLoop, GradientsIndependentOfThreadCount) {
  // Bit-exact resume across machines relies on this: every reduction has a fixed order.
  const ModelConfig cfg = shape_config("tiny", 256);
  const TrainCorpus corpus = random_corpus(12, 4);
  Packer p(corpus, {.batch_tokens = 96, .seed = 1});
  const PackedBatch batch = p.next();
  const ModelWeights w = init_weights(cfg, 8);
  ModelWeights g_all = zeros_like(w), g_one = zeros_like(w);
  const double l_all = cpu_forward_backward(cfg, w, batch, 5, &g_all).loss;
  double l_one = 0;
  {
    tbb::global_control one(tbb::global_control::max_allowed_parallelism, 1);
    l_one = cpu_forward_backward(cfg, w, batch, 5, &g_one).loss;
  }
  EXPECT_EQ(l_all, l_one);
  std::vector<NamedTensor> a = trainable_tensors(g_all), b = trainable_tensors(g_one);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(bitwise_equal(*a[i].data, *b[i].data)) << a[i].name;
}

TEST(TrainLoop, ExportLoadsAsModelWithEmaWeights) {
  const ModelConfig cfg = shape_config("tiny", 256);
  const TrainCorpus corpus = random_corpus(10, 2);
  Trainer t(cfg, init_weights(cfg, 6), corpus, small_options(), make_cpu_train_backend());
  t.step();
  t.step();
  const fs::path dir = temp_dir("export");
  t.export_hf(dir);
  ASSERT_TRUE(fs::exists(dir / "config.json"));
  ASSERT_TRUE(fs::exists(dir / "model.safetensors"));
  const Model m = Model::load(dir);
  EXPECT_EQ(m.config().hidden_size, cfg.hidden_size);
  EXPECT_EQ(m.config().num_layers_per_stack, cfg.num_layers_per_stack);
  EXPECT_EQ(m.config().embedding_scale, cfg.embedding_scale);
  EXPECT_EQ(m.config().eos_token_id, 11);
  const ModelWeights ema = t.optimizer().ema_weights(t.weights());
  ModelWeights loaded = m.weights(), want = ema;
  std::vector<NamedTensor> tl = trainable_tensors(loaded), tw = trainable_tensors(want);
  for (size_t i = 0; i < tl.size(); ++i) EXPECT_TRUE(bitwise_equal(*tl[i].data, *tw[i].data)) << tl[i].name;
  EXPECT_FALSE(bitwise_equal(*tl[1].data, *trainable_tensors(const_cast<ModelWeights&>(t.weights()))[1].data))
      << "the export must hold the EMA, not the raw weights";
  const std::vector<TokenId> prompt = {6, 40, 41, 7};
  EXPECT_EQ(m.forward_full(prompt, 4).size(), 4u * cfg.vocab_size);
  fs::remove_all(dir);
}

TEST(TrainLoop, ShapesAndConfigRoundTrip) {
  const ModelConfig xl = shape_config("xl", 65536);
  EXPECT_EQ(xl.parameter_count(), 1182795264);  // DESIGN §2
  EXPECT_EQ(xl.kv_slots(), 128);
  EXPECT_EQ(padded_vocab(65000), 65024);
  EXPECT_THROW(shape_config("huge", 10), Error);
  // Floats keep a fraction: transformers' strict HrmTextConfig rejects `"embedding_scale": 8`.
  EXPECT_NE(hf_config_json(shape_config("tiny", 10)).find("\"embedding_scale\": 8.0,"), std::string::npos);
  EXPECT_NE(hf_config_json(shape_config("tiny", 10)).find("\"rope_theta\": 10000.0,"), std::string::npos);
  for (const char* s : {"tiny", "b", "l", "xl"}) {
    const ModelConfig c = shape_config(s, 1000);
    const ModelConfig back = parse_config(hf_config_json(c));
    EXPECT_EQ(back.hidden_size, c.hidden_size) << s;
    EXPECT_EQ(back.intermediate_size, c.intermediate_size) << s;
    EXPECT_EQ(back.num_layers_per_stack, c.num_layers_per_stack) << s;
    EXPECT_EQ(back.vocab_size, 1024) << s;
    EXPECT_EQ(back.embedding_scale, c.embedding_scale) << s;
    EXPECT_EQ(back.head_dim, c.head_dim) << s;
  }
}

TEST(TrainLoop, LossFallsOnSyntheticCorpus) {
  // The demo path end to end at toy scale: synthetic word problems → the prompt format with the test
  // tokenizer → a tiny model with the real recurrence (H=2, L=3) → 16 Adam-atan2 steps. The loss of
  // a fixed held-out batch must fall well below its value at initialisation (ln 8192 ≈ 9.0).
  const Tokenizer tok = Tokenizer::from_file((test::fixtures() / "tokenizer" / "tokenizer.json").string());
  SyntheticOptions so;
  so.n = 300;
  so.seed = 2;
  TrainCorpus corpus, held_out;
  const auto samples = make_synthetic_corpus(so);
  const PromptFormat fmt;
  for (size_t i = 0; i < samples.size(); ++i) {
    std::vector<TokenId> resp = tok.encode(samples[i].response);
    resp.push_back(stop_token(tok, fmt));
    (i < 280 ? corpus : held_out).add(format_prompt(tok, fmt, samples[i].instruction, samples[i].condition), resp);
  }
  PackedBatch eval;
  for (int64_t i = 0; i < held_out.size(); ++i) eval.add_sample(held_out.instruction(i), held_out.response(i));

  const ModelConfig cfg = shape_config("tiny", static_cast<int64_t>(tok.vocab_size()));
  TrainOptions o;
  o.steps = 16;
  o.batch_tokens = 320;
  o.lr.lr = 3e-3;
  o.lr.warmup_steps = 4;
  o.seed = 1;
  Trainer t(cfg, init_weights(cfg, 1), corpus, o, make_cpu_train_backend());
  const double before = cpu_forward_backward(cfg, t.weights(), eval, 2, nullptr).loss;
  double last = 0;
  while (t.step_count() < o.steps) last = t.step().loss;
  const double after = cpu_forward_backward(cfg, t.weights(), eval, 2, nullptr).loss;
  std::printf("held-out loss %.3f -> %.3f after %lld steps (last training batch %.3f)\n", before, after,
              static_cast<long long>(o.steps), last);
  EXPECT_GT(before, 8.5);
  EXPECT_LT(after, before - 3.0);
}

TEST(TrainLoop, ResumeRejectsMissingCheckpoint) {
  const TrainCorpus corpus = random_corpus(3, 3);
  EXPECT_THROW(Trainer::resume(temp_dir("nothing"), corpus, {}, make_cpu_train_backend()), Error);
}

}  // namespace
}  // namespace hrm
