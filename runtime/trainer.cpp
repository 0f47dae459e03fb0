// The training loop, checkpoints and the Hugging Face export (see trainer.h).
#include "runtime/trainer.h"

#include <rapidjson/document.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "common/error.h"
#include "runtime/safetensors.h"
#include "runtime/safetensors_writer.h"

namespace hrm {
namespace {

namespace fs = std::filesystem;

// The reference pads the vocabulary to a multiple of 256 (dataset_new.py, find_multiple).
constexpr int64_t kVocabMultiple = 256;
// DESIGN §2: RoPE θ, RMSNorm ε, H/L cycles and head size of the released models.
constexpr double kRopeTheta = 10000.0;
constexpr double kRmsEps = 1e-6;
constexpr int64_t kHCycles = 2, kLCycles = 3;
constexpr int64_t kHeadDim = 128;
constexpr int64_t kMaxPositions = 4096;
// Token ids of the released tokenizer (DESIGN §2): <|im_start|> is bos, <|box_end|> eos, <|endoftext|> pad.
constexpr int64_t kBosId = 6, kEosId = 11, kPadId = 5;

constexpr const char* kStateFile = "state.safetensors";
constexpr const char* kStateJson = "state.json";

// A JSON number that reads back as the same double, always with a fraction or exponent: transformers'
// strict config classes reject an integer literal (8) for a float field (embedding_scale).
std::string num(double v) {
  std::ostringstream s;
  s << std::setprecision(17) << v;
  std::string out = s.str();
  if (out.find_first_of(".eEn") == std::string::npos) out += ".0";
  return out;
}

void write_text(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) throw Error(cat(path.string(), ": cannot write"));
    out << text;
    if (!out) throw Error(cat(path.string(), ": write failed"));
  }
  fs::rename(tmp, path);
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(cat(path.string(), ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Every tensor of the weights that a checkpoint holds: the trainable ones and z_L_init.
std::vector<std::vector<float>*> all_tensors(ModelWeights& w) {
  std::vector<std::vector<float>*> out;
  for (NamedTensor& t : trainable_tensors(w)) out.push_back(t.data);
  out.push_back(&w.z_L_init);
  return out;
}

// Rank 0's initial weights on every rank, before the optimizer copies them into the EMA.
ModelWeights from_rank0(ModelWeights w, Communicator& comm) {
  if (comm.world_size() == 1) return w;
  for (std::vector<float>* t : all_tensors(w)) broadcast_values(comm, std::span<float>(*t), 0);
  return w;
}

// A 64-bit fingerprint (FNV-style, 8 bytes at a time) to compare the ranks' states; not cryptographic.
class Fingerprint {
 public:
  void add_bytes(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t word;
      std::memcpy(&word, p + i, 8);
      mix(word);
    }
    uint64_t tail = 0;
    if (n > i) std::memcpy(&tail, p + i, n - i);
    mix(tail ^ (static_cast<uint64_t>(n) << 56));
  }
  template <class T>
  void add(const std::vector<T>& v) {
    add_bytes(v.data(), v.size() * sizeof(T));
  }
  void add(std::string_view s) { add_bytes(s.data(), s.size()); }
  void add(int64_t v) { mix(static_cast<uint64_t>(v)); }
  void add(double v) { add_bytes(&v, sizeof v); }
  uint64_t value() const { return h_; }

 private:
  void mix(uint64_t word) {
    h_ = (h_ ^ word) * 0x100000001b3ULL;  // FNV-1a's 64-bit prime
    h_ ^= h_ >> 29;
  }
  uint64_t h_ = 0xcbf29ce484222325ULL;  // FNV-1a's 64-bit offset basis
};

std::vector<float> concat(std::initializer_list<const std::vector<float>*> parts) {
  std::vector<float> out;
  for (const auto* p : parts) out.insert(out.end(), p->begin(), p->end());
  return out;
}

}  // namespace

int64_t padded_vocab(int64_t vocab) { return (vocab + kVocabMultiple - 1) / kVocabMultiple * kVocabMultiple; }

ModelConfig shape_config(const std::string& shape, int64_t vocab_size) {
  ModelConfig c;
  c.H_cycles = kHCycles;
  c.L_cycles = kLCycles;
  c.rope_theta = kRopeTheta;
  c.rms_norm_eps = kRmsEps;
  c.head_dim = kHeadDim;
  c.max_position_embeddings = kMaxPositions;
  c.vocab_size = padded_vocab(vocab_size);
  c.bos_token_id = kBosId;
  c.eos_token_id = kEosId;
  c.eos_token_ids = {kEosId};
  c.pad_token_id = kPadId;
  c.prefix_lm = true;
  c.torch_dtype = "float32";
  // XL, L, B from DESIGN §2. Intermediate sizes of L and B are not given there: the multiple of 256
  // nearest 8/3·hidden, which reproduces XL's 4096 for 1536.
  if (shape == "xl") {
    c.hidden_size = 1536, c.num_attention_heads = 12, c.intermediate_size = 4096, c.num_layers_per_stack = 16;
  } else if (shape == "l") {
    c.hidden_size = 1280, c.num_attention_heads = 10, c.intermediate_size = 3328, c.num_layers_per_stack = 12;
  } else if (shape == "b") {
    c.hidden_size = 1024, c.num_attention_heads = 8, c.intermediate_size = 2816, c.num_layers_per_stack = 6;
  } else if (shape == "tiny") {
    // For CPU runs and tests: the real recurrence (H=2, L=3), small everything else.
    c.hidden_size = 64, c.num_attention_heads = 4, c.head_dim = 16, c.intermediate_size = 176;
    c.num_layers_per_stack = 2;
    c.max_position_embeddings = 1024;
  } else {
    throw Error(cat("unknown model shape '", shape, "' (expected tiny, b, l or xl)"));
  }
  // Embedding init std 1/sqrt(hidden), undone at use (DESIGN §6).
  c.initializer_range = 1.0 / std::sqrt(static_cast<double>(c.hidden_size));
  c.embedding_scale = std::sqrt(static_cast<double>(c.hidden_size));
  return c;
}

std::string hf_config_json(const ModelConfig& c) {
  std::ostringstream o;
  auto opt_id = [](int64_t id) { return id < 0 ? std::string("null") : std::to_string(id); };
  o << "{\n"
    << "  \"architectures\": [\"HrmTextForCausalLM\"],\n"
    << "  \"model_type\": \"hrm_text\",\n"
    << "  \"hidden_size\": " << c.hidden_size << ",\n"
    << "  \"intermediate_size\": " << c.intermediate_size << ",\n"
    << "  \"num_attention_heads\": " << c.num_attention_heads << ",\n"
    << "  \"head_dim\": " << c.head_dim << ",\n"
    << "  \"num_layers_per_stack\": " << c.num_layers_per_stack << ",\n"
    << "  \"num_hidden_layers\": " << c.kv_slots() << ",\n"
    << "  \"H_cycles\": " << c.H_cycles << ",\n"
    << "  \"L_cycles\": " << c.L_cycles << ",\n"
    << "  \"vocab_size\": " << c.vocab_size << ",\n"
    << "  \"max_position_embeddings\": " << c.max_position_embeddings << ",\n"
    << "  \"rms_norm_eps\": " << num(c.rms_norm_eps) << ",\n"
    << "  \"rope_parameters\": {\"rope_theta\": " << num(c.rope_theta) << ", \"rope_type\": \"default\"},\n"
    << "  \"embedding_scale\": " << num(c.embedding_scale) << ",\n"
    << "  \"initializer_range\": " << num(c.initializer_range) << ",\n"
    << "  \"prefix_lm\": " << (c.prefix_lm ? "true" : "false") << ",\n"
    << "  \"attention_bias\": false,\n"
    << "  \"mlp_bias\": false,\n"
    << "  \"hidden_act\": \"silu\",\n"
    << "  \"tie_word_embeddings\": false,\n"
    << "  \"bos_token_id\": " << opt_id(c.bos_token_id) << ",\n"
    << "  \"eos_token_id\": " << opt_id(c.eos_token_id) << ",\n"
    << "  \"pad_token_id\": " << opt_id(c.pad_token_id) << ",\n"
    << "  \"dtype\": \"float32\"\n"
    << "}\n";
  return o.str();
}

Trainer::Trainer(ModelConfig cfg, ModelWeights init, const TrainCorpus& corpus, TrainOptions opts,
                 std::unique_ptr<TrainBackend> backend, Communicator* comm)
    : own_comm_(comm ? nullptr : make_single_process_communicator()),
      comm_(comm ? comm : own_comm_.get()),
      cfg_(std::move(cfg)),
      w_(from_rank0(std::move(init), *comm_)),
      opts_(opts),
      opt_(opts.optim, w_),
      backend_(std::move(backend)) {
  HRM_CHECK(backend_ != nullptr, "Trainer: no training backend given");
  if (opts_.steps <= 0) throw Error(cat("training steps must be positive, got ", opts_.steps));
  if (opts_.accumulate < 1) throw Error(cat("accumulate (micro-batches per step) must be at least 1, got ",
                                            opts_.accumulate));
  // A backend that holds the state keeps its own gradients (TrainBackend::holds_state).
  if (!backend_->holds_state()) {
    grads_ = zeros_like(w_);
    if (opts_.accumulate > 1) micro_grads_ = zeros_like(w_);
  }
  corpus.validate("training corpus", cfg_.vocab_size);
  // One packer per micro-batch: this rank's share of a step that packs like world × accumulate ranks.
  // A sample longer than the model's positions cannot be trained on: skip it like an oversized one.
  packers_.reserve(static_cast<size_t>(opts_.accumulate));
  for (int64_t a = 0; a < opts_.accumulate; ++a)
    packers_.emplace_back(corpus, PackerOptions{.batch_tokens = opts_.batch_tokens,
                                                .seed = opts_.seed,
                                                .max_sample_tokens = cfg_.max_position_embeddings,
                                                .packing = opts_.packing,
                                                .world_size = data_ranks(),
                                                .rank = comm_->rank() * opts_.accumulate + a,
                                                .drop_last = opts_.drop_last});
  // A prepared corpus ends with its last epoch directory, as in the reference (dataset_new.py reads
  // epoch_N for epoch N and fails past the last): say so before training, not when it runs out. (A
  // resumed run has used its first step_count() of these steps, so the total is what must fit.)
  const int64_t available = packers_.front().steps_remaining();
  if (available >= 0 && opts_.steps > available)
    throw Error(cat("the run needs ", opts_.steps, " steps, but the prepared corpus's ", corpus.epoch_orders(),
                    " epoch directories (epoch_0..epoch_", corpus.epoch_orders() - 1, ") pack into ", available,
                    " at ", data_ranks(), " x ", opts_.batch_tokens,
                    " tokens per step, and an epoch is never read twice (the reference's rule): train at most ",
                    available, " steps, or prepare more epochs"));
  check_replicas();
  attach_state();
}

void Trainer::attach_state() {
  if (!backend_->holds_state()) return;
  backend_->load_state(cfg_, w_, opt_, *comm_);
  host_stale_ = false;
}

void Trainer::sync_host() const {
  if (!host_stale_) return;
  backend_->store_state(w_, opt_);
  host_stale_ = false;
}

StepStats Trainer::step() {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  Communicator& comm = *comm_;
  StepStats s;
  // Times a collective (nothing to time with one rank).
  auto collective = [&](auto&& call) {
    if (comm.world_size() == 1) return;
    const auto c0 = Clock::now();
    call();
    s.comm_seconds += std::chrono::duration<double>(Clock::now() - c0).count();
  };
  s.step = opt_.steps() + 1;  // the reference increments the step before using it
  std::vector<PackedBatch> batches;
  for (Packer& p : packers_) batches.push_back(p.next());
  s.epoch = packers_.front().epoch();
  s.bp_steps = opts_.bp.at(s.step, opts_.steps);
  s.lr = opts_.lr.at(s.step);

  // The step's loss-token count over every rank and micro-batch normalises each batch's gradient
  // (lm_head.py divides the summed loss by the label count of the whole global batch).
  std::array<int64_t, 2> counts{0, 0};  // packed tokens, loss tokens
  for (const PackedBatch& b : batches) counts[0] += b.size(), counts[1] += b.loss_tokens();
  collective([&] { comm.all_reduce_sum(std::span<int64_t>(counts)); });
  s.tokens = counts[0];
  s.loss_tokens = counts[1];

  // Micro-batches one after another: the first into grads_, the others into micro_grads_ and added, so
  // that with accumulate = 2 the sum is g0 + g1 exactly as a two-rank all-reduce forms it. A rank can
  // be left an empty batch in an epoch's last step (PackerOptions::drop_last): it adds nothing.
  // A backend that holds the state accumulates into its own gradient instead.
  const bool held = backend_->holds_state();
  if (held) backend_->begin_step();
  else set_zero(grads_);
  bool first = true;
  std::array<double, 1> loss_sum{0};
  std::array<int64_t, 5> flags{0, 0, 0, 0, 0};  // correct, embed, H, L, lm_head reached
  for (const PackedBatch& b : batches) {
    if (b.size() == 0) continue;
    ModelWeights* g = first ? &grads_ : &micro_grads_;
    if (!first && !held) set_zero(micro_grads_);
    const LossResult r = held ? backend_->accumulate(cfg_, b, s.bp_steps, s.loss_tokens)
                              : backend_->forward_backward(cfg_, w_, b, s.bp_steps, g, s.loss_tokens);
    if (!first && !held) {
      std::vector<NamedTensor> into = trainable_tensors(grads_), from = trainable_tensors(micro_grads_);
      for (size_t i = 0; i < into.size(); ++i) {
        float* dst = into[i].data->data();
        const float* src = from[i].data->data();
        for (size_t j = 0; j < into[i].data->size(); ++j) dst[j] += src[j];
      }
    }
    first = false;
    loss_sum[0] += r.loss_sum;
    flags[0] += r.correct;
    flags[1] += r.embed_reached, flags[2] += r.H_reached, flags[3] += r.L_reached, flags[4] += r.lm_head_reached;
  }
  collective([&] {
    comm.all_reduce_sum(std::span<int64_t>(flags));
    comm.all_reduce_sum(std::span<double>(loss_sum));
  });
  LossResult global;  // which tensors any rank reached: the optimizer must skip the same ones everywhere
  global.embed_reached = flags[1] > 0, global.H_reached = flags[2] > 0, global.L_reached = flags[3] > 0;
  global.lm_head_reached = flags[4] > 0;
  const std::vector<char> active = global.active(w_);
  if (held) {
    // The backend all-reduces its gradients (not timed separately) and applies the step.
    backend_->update(opt_.begin_step(s.lr, active), comm);
    host_stale_ = true;
  } else {
    collective([&] {
      // Tensors no rank reached are zero everywhere (the embedding while bp_steps <= H_cycles): skip them.
      std::vector<NamedTensor> gs = trainable_tensors(grads_);
      for (size_t i = 0; i < gs.size(); ++i)
        if (active[i]) comm.all_reduce_sum(std::span<float>(*gs[i].data));
    });
    opt_.step(w_, grads_, s.lr, active);
    backend_->weights_updated();
  }
  s.loss = s.loss_tokens ? loss_sum[0] / static_cast<double>(s.loss_tokens) : 0.0;
  s.accuracy = s.loss_tokens ? static_cast<double>(flags[0]) / static_cast<double>(s.loss_tokens) : 0.0;
  s.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return s;
}

uint64_t Trainer::fingerprint() const {
  sync_host();
  Fingerprint f;
  const TrainOptions& o = opts_;
  for (const int64_t v : {o.steps, o.batch_tokens, static_cast<int64_t>(o.seed), static_cast<int64_t>(o.packing),
                          static_cast<int64_t>(o.drop_last), o.accumulate, o.lr.warmup_steps, o.lr.total_steps,
                          o.bp.min_steps, o.bp.max_steps, static_cast<int64_t>(o.bp.shape)})
    f.add(v);
  for (const double v : {o.lr.lr, o.lr.min_ratio, o.optim.beta1, o.optim.beta2, o.optim.weight_decay,
                         o.optim.ema_decay, o.bp.warmup_ratio})
    f.add(v);
  f.add(hf_config_json(cfg_));
  const Packer& p = packers_.front();
  for (const int64_t v : {p.epoch(), p.cursor(), p.usable(), p.skipped(), opt_.steps()}) f.add(v);
  AdamAtan2& opt = const_cast<AdamAtan2&>(opt_);  // the state accessors are not const
  f.add(opt.tensor_steps());
  for (const std::vector<float>* t : all_tensors(const_cast<ModelWeights&>(w_))) f.add(*t);
  for (const auto* state : {&opt.m(), &opt.v(), &opt.ema()})
    for (const std::vector<float>& t : *state) f.add(t);
  return f.value();
}

void Trainer::check_replicas() const {
  Communicator& comm = *comm_;
  if (comm.world_size() == 1) return;
  const uint64_t mine = fingerprint();
  uint64_t root = mine;
  broadcast_values(comm, std::span<uint64_t>(&root, 1), 0);
  std::array<int64_t, 1> differ{mine != root};
  comm.all_reduce_sum(std::span<int64_t>(differ));
  if (differ[0] > 0)
    throw Error(cat(differ[0], " of ", comm.world_size(), " ranks hold a training state (options, data position, "
                    "weights or optimizer state) different from rank 0's; this is rank ", comm.rank(),
                    mine != root ? " (differs)" : " (agrees)",
                    ". Every rank must run the same command on the same data and checkpoint"));
}

void Trainer::save_checkpoint(const fs::path& dir) const {
  sync_host();
  check_replicas();
  if (comm_->rank() != 0) {
    comm_->barrier();  // returns once rank 0 has written
    return;
  }
  fs::create_directories(dir);
  SafetensorsWriter w;
  ModelWeights& weights = const_cast<ModelWeights&>(w_);  // trainable_tensors hands out mutable views
  std::vector<NamedTensor> ts = trainable_tensors(weights);
  AdamAtan2& opt = const_cast<AdamAtan2&>(opt_);
  for (size_t i = 0; i < ts.size(); ++i) {
    w.add(ts[i].name, DType::kF32, ts[i].shape, *ts[i].data);
    w.add("optim.m." + ts[i].name, DType::kF32, ts[i].shape, opt.m()[i]);
    w.add("optim.v." + ts[i].name, DType::kF32, ts[i].shape, opt.v()[i]);
    if (!opt.ema().empty()) w.add("ema." + ts[i].name, DType::kF32, ts[i].shape, opt.ema()[i]);
  }
  w.add("model.z_L_init", DType::kF32, {cfg_.hidden_size}, w_.z_L_init);
  w.write(dir / kStateFile);
  std::ostringstream j;
  const TrainOptions& o = opts_;
  j << "{\n"
    << "  \"step\": " << opt_.steps() << ",\n"
    << "  \"tensor_steps\": [";
  for (size_t i = 0; i < opt.tensor_steps().size(); ++i) j << (i ? ", " : "") << opt.tensor_steps()[i];
  j << "],\n"
    << "  \"data_epoch\": " << packer().epoch() << ",\n"
    << "  \"data_cursor\": " << packer().cursor() << ",\n"
    << "  \"seed\": " << o.seed << ",\n"
    << "  \"steps\": " << o.steps << ",\n"
    << "  \"batch_tokens\": " << o.batch_tokens << ",\n"
    << "  \"packing\": \"" << packing_name(o.packing) << "\", \"drop_last\": " << (o.drop_last ? "true" : "false")
    << ",\n"
    << "  \"data_ranks\": " << data_ranks() << ", \"world_size\": " << comm_->world_size()
    << ", \"accumulate\": " << o.accumulate << ",\n"
    << "  \"lr\": " << num(o.lr.lr) << ", \"warmup_steps\": " << o.lr.warmup_steps
    << ", \"lr_min_ratio\": " << num(o.lr.min_ratio) << ", \"lr_total_steps\": " << o.lr.total_steps << ",\n"
    << "  \"beta1\": " << num(o.optim.beta1) << ", \"beta2\": " << num(o.optim.beta2)
    << ", \"weight_decay\": " << num(o.optim.weight_decay) << ", \"ema_decay\": " << num(o.optim.ema_decay) << ",\n"
    << "  \"bp_min_steps\": " << o.bp.min_steps << ", \"bp_max_steps\": " << o.bp.max_steps
    << ", \"bp_warmup_ratio\": " << num(o.bp.warmup_ratio) << ", \"bp_warmup\": \""
    << (o.bp.shape == BpWarmup::kStep ? "step" : "linear") << "\",\n"
    << "  \"config\": " << hf_config_json(cfg_) << "}\n";
  write_text(dir / kStateJson, j.str());
  comm_->barrier();
}

Trainer Trainer::resume(const fs::path& dir, const TrainCorpus& corpus, TrainOptions opts,
                        std::unique_ptr<TrainBackend> backend, Communicator* comm) {
  const fs::path json_path = dir / kStateJson;
  const std::string text = read_text(json_path);
  rapidjson::Document d;
  d.Parse(text.c_str(), text.size());
  if (d.HasParseError() || !d.IsObject()) throw Error(cat(json_path.string(), ": not a JSON object"));
  auto get = [&](const char* key) -> const rapidjson::Value& {
    if (!d.HasMember(key)) throw Error(cat(json_path.string(), ": missing field \"", key, "\""));
    return d[key];
  };
  auto i64 = [&](const char* key) {
    const auto& v = get(key);
    if (!v.IsInt64()) throw Error(cat(json_path.string(), ": field \"", key, "\" must be an integer"));
    return v.GetInt64();
  };
  auto dbl = [&](const char* key) {
    const auto& v = get(key);
    if (!v.IsNumber()) throw Error(cat(json_path.string(), ": field \"", key, "\" must be a number"));
    return v.GetDouble();
  };
  // Everything that shapes the run comes from the checkpoint; only the total step count may change.
  TrainOptions o;
  o.steps = opts.steps > 0 ? opts.steps : i64("steps");
  o.seed = static_cast<uint64_t>(get("seed").GetUint64());
  o.batch_tokens = i64("batch_tokens");
  // Checkpoints written before the multipack sampler have no "packing": they packed greedily.
  if (d.HasMember("packing")) {
    const auto& v = d["packing"];
    if (!v.IsString()) throw Error(cat(json_path.string(), ": field \"packing\" must be a string"));
    try {
      o.packing = parse_packing(v.GetString());
    } catch (const Error& e) {
      throw Error(cat(json_path.string(), ": ", e.what()));
    }
  } else {
    o.packing = Packing::kGreedy;
  }
  if (d.HasMember("drop_last")) {
    if (!d["drop_last"].IsBool()) throw Error(cat(json_path.string(), ": field \"drop_last\" must be true or false"));
    o.drop_last = d["drop_last"].GetBool();
  }
  // The batches of a step depend on how many ranks share it (world size × accumulate): resuming with
  // another count would change the rest of the run. Checkpoints from before data parallelism had one.
  o.accumulate = opts.accumulate;
  const int64_t world = comm ? comm->world_size() : 1;
  const int64_t saved_ranks = d.HasMember("data_ranks") ? i64("data_ranks") : 1;
  if (saved_ranks != world * o.accumulate)
    throw Error(cat(json_path.string(), ": written by a run whose steps were split into ", saved_ranks,
                    " batches (world size x --accumulate); this run has ", world, " x ", o.accumulate,
                    ": resume with the same product, e.g. mpirun -np ", saved_ranks, " or --accumulate ",
                    saved_ranks));
  o.lr.lr = dbl("lr");
  o.lr.warmup_steps = i64("warmup_steps");
  o.lr.min_ratio = dbl("lr_min_ratio");
  o.lr.total_steps = opts.steps > 0 && opts.lr.total_steps > 0 ? opts.lr.total_steps : i64("lr_total_steps");
  o.optim.beta1 = dbl("beta1");
  o.optim.beta2 = dbl("beta2");
  o.optim.weight_decay = dbl("weight_decay");
  o.optim.ema_decay = dbl("ema_decay");
  o.bp.min_steps = i64("bp_min_steps");
  o.bp.max_steps = i64("bp_max_steps");
  o.bp.warmup_ratio = dbl("bp_warmup_ratio");
  o.bp.shape = std::string(get("bp_warmup").GetString()) == "step" ? BpWarmup::kStep : BpWarmup::kLinear;
  const auto& cj = get("config");
  if (!cj.IsObject()) throw Error(cat(json_path.string(), ": \"config\" must be an object"));
  // hf_config_json wrote the nested object last: parse that text with the config.json parser.
  const size_t at = text.find("\"config\":");
  ModelConfig cfg = parse_config(std::string_view(text).substr(at + 9, text.rfind('}') - at - 9),
                                 json_path.string() + " (config)");

  const SafetensorsFile st = SafetensorsFile::open(dir / kStateFile);
  auto tensor = [&](const std::string& name, size_t n) {
    const auto it = st.tensors().find(name);
    if (it == st.tensors().end()) throw Error(cat(st.origin(), ": missing tensor '", name, "'"));
    if (it->second.dtype != DType::kF32 || static_cast<size_t>(it->second.numel()) != n)
      throw Error(cat(st.origin(), ": tensor '", name, "' must be f32 with ", n, " elements"));
    return it->second.to_f32();
  };
  ModelWeights w = init_weights(cfg, 0);  // shapes only; every value is overwritten below
  std::vector<NamedTensor> ts = trainable_tensors(w);
  for (NamedTensor& t : ts) *t.data = tensor(t.name, t.data->size());
  w.z_L_init = tensor("model.z_L_init", w.z_L_init.size());
  Trainer tr(std::move(cfg), std::move(w), corpus, o, std::move(backend), comm);
  std::vector<NamedTensor> live = trainable_tensors(tr.w_);
  for (size_t i = 0; i < live.size(); ++i) {
    tr.opt_.m()[i] = tensor("optim.m." + live[i].name, live[i].data->size());
    tr.opt_.v()[i] = tensor("optim.v." + live[i].name, live[i].data->size());
    if (!tr.opt_.ema().empty()) tr.opt_.ema()[i] = tensor("ema." + live[i].name, live[i].data->size());
  }
  tr.opt_.set_steps(i64("step"));
  const auto& ts_json = get("tensor_steps");
  if (!ts_json.IsArray() || ts_json.Size() != tr.opt_.tensor_steps().size())
    throw Error(cat(json_path.string(), ": \"tensor_steps\" must be an array of ", tr.opt_.tensor_steps().size(),
                    " integers"));
  for (rapidjson::SizeType i = 0; i < ts_json.Size(); ++i) {
    if (!ts_json[i].IsInt64()) throw Error(cat(json_path.string(), ": \"tensor_steps\"[", i, "] must be an integer"));
    tr.opt_.tensor_steps()[i] = ts_json[i].GetInt64();
  }
  for (Packer& p : tr.packers_) p.seek(i64("data_epoch"), i64("data_cursor"));
  tr.attach_state();  // again: the moments, EMA and counters were just read
  tr.check_replicas();
  return tr;
}

void Trainer::export_hf(const fs::path& dir) const {
  sync_host();
  check_replicas();
  if (comm_->rank() != 0) {
    comm_->barrier();
    return;
  }
  fs::create_directories(dir);
  const ModelWeights e = opt_.ema_weights(w_);
  const int64_t D = cfg_.hidden_size, A = cfg_.attn_dim(), I = cfg_.intermediate_size, V = cfg_.vocab_size;
  SafetensorsWriter w;
  w.set_metadata("format", "pt");
  w.add("model.embed_tokens.weight", DType::kF32, {V, D}, e.embed);
  w.add("lm_head.weight", DType::kF32, {V, D}, e.lm_head);
  w.add("model.z_L_init", DType::kF32, {D}, e.z_L_init);
  auto stack = [&](const std::vector<BlockWeights>& blocks, const std::string& name) {
    for (size_t i = 0; i < blocks.size(); ++i) {
      const BlockWeights& b = blocks[i];
      const std::string p = cat("model.", name, ".layers.", i, ".");
      // Released fused layout (DESIGN §2): gate, query, key, value row blocks; then gate, up.
      w.add(p + "attn.gqkv_proj.weight", DType::kF32, {4 * A, D}, concat({&b.gate, &b.q, &b.k, &b.v}));
      w.add(p + "attn.o_proj.weight", DType::kF32, {D, A}, b.o);
      w.add(p + "mlp.gate_up_proj.weight", DType::kF32, {2 * I, D}, concat({&b.mlp_gate, &b.up}));
      w.add(p + "mlp.down_proj.weight", DType::kF32, {D, I}, b.down);
    }
  };
  stack(e.H, "H_module");
  stack(e.L, "L_module");
  w.write_checkpoint(dir);
  write_text(dir / "config.json", hf_config_json(cfg_));
  comm_->barrier();
}

}  // namespace hrm
