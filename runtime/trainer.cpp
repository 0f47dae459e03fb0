// The training loop, checkpoints and the Hugging Face export (see trainer.h).
#include "runtime/trainer.h"

#include <rapidjson/document.h>

#include <chrono>
#include <cmath>
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
                 std::unique_ptr<TrainBackend> backend)
    : cfg_(std::move(cfg)),
      w_(std::move(init)),
      grads_(zeros_like(w_)),
      opts_(opts),
      opt_(opts.optim, w_),
      // A sample longer than the model's positions cannot be trained on: skip it like an oversized one.
      packer_(corpus, PackerOptions{.batch_tokens = opts.batch_tokens,
                                    .seed = opts.seed,
                                    .max_sample_tokens = cfg_.max_position_embeddings,
                                    .packing = opts.packing,
                                    .drop_last = opts.drop_last}),
      backend_(std::move(backend)) {
  if (opts_.steps <= 0) throw Error(cat("training steps must be positive, got ", opts_.steps));
  corpus.validate("training corpus", cfg_.vocab_size);
}

StepStats Trainer::step() {
  const auto t0 = std::chrono::steady_clock::now();
  StepStats s;
  s.step = opt_.steps() + 1;  // the reference increments the step before using it
  const PackedBatch batch = packer_.next();
  s.epoch = packer_.epoch();
  s.bp_steps = opts_.bp.at(s.step, opts_.steps);
  s.lr = opts_.lr.at(s.step);
  set_zero(grads_);
  const LossResult r = backend_->forward_backward(cfg_, w_, batch, s.bp_steps, &grads_);
  opt_.step(w_, grads_, s.lr, r.active(w_));
  s.loss = r.loss;
  s.loss_tokens = r.loss_tokens;
  s.accuracy = r.loss_tokens ? static_cast<double>(r.correct) / static_cast<double>(r.loss_tokens) : 0.0;
  s.tokens = batch.size();
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return s;
}

void Trainer::save_checkpoint(const fs::path& dir) const {
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
    << "  \"data_epoch\": " << packer_.epoch() << ",\n"
    << "  \"data_cursor\": " << packer_.cursor() << ",\n"
    << "  \"seed\": " << o.seed << ",\n"
    << "  \"steps\": " << o.steps << ",\n"
    << "  \"batch_tokens\": " << o.batch_tokens << ",\n"
    << "  \"packing\": \"" << packing_name(o.packing) << "\", \"drop_last\": " << (o.drop_last ? "true" : "false")
    << ",\n"
    << "  \"lr\": " << num(o.lr.lr) << ", \"warmup_steps\": " << o.lr.warmup_steps
    << ", \"lr_min_ratio\": " << num(o.lr.min_ratio) << ", \"lr_total_steps\": " << o.lr.total_steps << ",\n"
    << "  \"beta1\": " << num(o.optim.beta1) << ", \"beta2\": " << num(o.optim.beta2)
    << ", \"weight_decay\": " << num(o.optim.weight_decay) << ", \"ema_decay\": " << num(o.optim.ema_decay) << ",\n"
    << "  \"bp_min_steps\": " << o.bp.min_steps << ", \"bp_max_steps\": " << o.bp.max_steps
    << ", \"bp_warmup_ratio\": " << num(o.bp.warmup_ratio) << ", \"bp_warmup\": \""
    << (o.bp.shape == BpWarmup::kStep ? "step" : "linear") << "\",\n"
    << "  \"config\": " << hf_config_json(cfg_) << "}\n";
  write_text(dir / kStateJson, j.str());
}

Trainer Trainer::resume(const fs::path& dir, const TrainCorpus& corpus, TrainOptions opts,
                        std::unique_ptr<TrainBackend> backend) {
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
  Trainer tr(std::move(cfg), std::move(w), corpus, o, std::move(backend));
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
  tr.packer_.seek(i64("data_epoch"), i64("data_cursor"));
  return tr;
}

void Trainer::export_hf(const fs::path& dir) const {
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
}

}  // namespace hrm
