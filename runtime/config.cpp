// Parsing and validation of the HRM-Text config.json (see config.h and DESIGN §2).
//
// Field names, defaults and the num_hidden_layers / num_layers_per_stack split follow the
// Transformers class `HrmTextConfig` (transformers/models/hrm_text/configuration_hrm_text.py):
// `save_pretrained` writes only the fields that differ from those defaults, so an absent field must
// mean exactly what it means there. Not for: other model types, or writing config files.

#include "runtime/config.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <fstream>
#include <cmath>
#include <optional>
#include <set>
#include <sstream>

#include "common/error.h"

namespace hrm {
namespace {

using JsonValue = rapidjson::Value;

// Defaults of HrmTextConfig (Transformers 5.23), used when a field is absent from the file.
constexpr int64_t kDefaultVocabSize = 151808;
constexpr int64_t kDefaultHiddenSize = 1536;
constexpr int64_t kDefaultIntermediateSize = 4096;
constexpr int64_t kDefaultNumHiddenLayers = 16;
constexpr int64_t kDefaultNumAttentionHeads = 12;
constexpr int64_t kDefaultHeadDim = 128;
constexpr int64_t kDefaultMaxPositionEmbeddings = 2048;
constexpr int64_t kDefaultHCycles = 2;
constexpr int64_t kDefaultLCycles = 3;
constexpr double kDefaultInitializerRange = 0.02;
constexpr double kDefaultRmsNormEps = 1e-6;
// PreTrainedConfig's default RoPE base when neither rope_parameters nor rope_theta is given.
constexpr double kDefaultRopeTheta = 10000.0;
constexpr std::string_view kModelType = "hrm_text";

std::string_view json_type_name(const JsonValue& v) {
  if (v.IsNull()) return "null";
  if (v.IsBool()) return "a boolean";
  if (v.IsString()) return "a string";
  if (v.IsArray()) return "an array";
  if (v.IsObject()) return "an object";
  if (v.IsInt64() || v.IsUint64()) return "an integer";
  return "a number";
}

// Reads typed fields of one JSON object; every error names the file and the field.
class FieldReader {
 public:
  FieldReader(const JsonValue& obj, std::string_view origin, std::string prefix)
      : obj_(obj), origin_(origin), prefix_(std::move(prefix)) {
    // RapidJSON keeps duplicate keys and returns the first; Python's json keeps the last. Refuse
    // rather than silently disagree with Transformers.
    std::set<std::string_view> seen;
    for (const auto& m : obj_.GetObject()) {
      std::string_view key(m.name.GetString(), m.name.GetStringLength());
      if (!seen.insert(key).second) throw error(key, "appears twice");
    }
  }

  // nullptr when absent; also when null and the Python field is Optional (None == absent).
  const JsonValue* find(std::string_view key, bool nullable) const {
    auto it = obj_.FindMember(rapidjson::StringRef(key.data(), key.size()));
    if (it == obj_.MemberEnd()) return nullptr;
    if (it->value.IsNull() && nullable) return nullptr;
    return &it->value;
  }

  std::optional<int64_t> int_field(std::string_view key, bool nullable = false) const {
    const JsonValue* v = find(key, nullable);
    if (!v) return std::nullopt;
    if (!v->IsInt64()) throw type_error(key, "an integer", *v);
    return v->GetInt64();
  }

  std::optional<double> number_field(std::string_view key, bool nullable = false) const {
    const JsonValue* v = find(key, nullable);
    if (!v) return std::nullopt;
    if (!v->IsNumber()) throw type_error(key, "a number", *v);
    return v->GetDouble();
  }

  std::optional<bool> bool_field(std::string_view key) const {
    const JsonValue* v = find(key, false);
    if (!v) return std::nullopt;
    if (!v->IsBool()) throw type_error(key, "a boolean", *v);
    return v->GetBool();
  }

  std::optional<std::string> string_field(std::string_view key, bool nullable = false) const {
    const JsonValue* v = find(key, nullable);
    if (!v) return std::nullopt;
    if (!v->IsString()) throw type_error(key, "a string", *v);
    return std::string(v->GetString(), v->GetStringLength());
  }

  Error error(std::string_view key, std::string_view what) const {
    return Error(cat(origin_, ": field '", prefix_, key, "' ", what));
  }
  Error type_error(std::string_view key, std::string_view expected, const JsonValue& got) const {
    return error(key, cat("must be ", expected, ", got ", json_type_name(got)));
  }

 private:
  const JsonValue& obj_;
  std::string_view origin_;
  std::string prefix_;
};

// a*b, or an error naming what overflowed (sizes come from an untrusted file).
int64_t checked_mul(int64_t a, int64_t b, std::string_view origin, std::string_view what) {
  int64_t out = 0;
  if (__builtin_mul_overflow(a, b, &out))
    throw Error(cat(origin, ": ", what, " overflows a 64-bit integer"));
  return out;
}
int64_t checked_add(int64_t a, int64_t b, std::string_view origin, std::string_view what) {
  int64_t out = 0;
  if (__builtin_add_overflow(a, b, &out))
    throw Error(cat(origin, ": ", what, " overflows a 64-bit integer"));
  return out;
}

int64_t require_positive(const FieldReader& r, std::string_view key, int64_t value) {
  if (value <= 0) throw r.error(key, cat("must be positive, got ", value));
  return value;
}

// Token ids are Optional[int] in HrmTextConfig; -1 stands for None. eos may also be a list.
int64_t token_id(const FieldReader& r, std::string_view key, int64_t vocab_size,
                 const JsonValue& v) {
  if (!v.IsInt64()) throw r.type_error(key, "an integer token id", v);
  int64_t id = v.GetInt64();
  if (id < 0 || id >= vocab_size)
    throw r.error(key, cat("must be a token id in [0, ", vocab_size, "), got ", id));
  return id;
}

// Sizes that parameter_count() and kv_slots() multiply together, checked once so that those
// methods can never overflow on a config that parse_config accepted.
void check_products(const ModelConfig& c, std::string_view origin) {
  int64_t attn = checked_mul(c.num_attention_heads, c.head_dim, origin, "num_attention_heads × head_dim");
  int64_t attn_params = checked_mul(checked_mul(4, attn, origin, "attention size"), c.hidden_size,
                                    origin, "attention parameter count");
  int64_t mlp_params = checked_mul(checked_mul(3, c.hidden_size, origin, "MLP size"),
                                   c.intermediate_size, origin, "MLP parameter count");
  int64_t block = checked_add(attn_params, mlp_params, origin, "block parameter count");
  int64_t stacks = checked_mul(checked_mul(2, c.num_layers_per_stack, origin, "block count"), block,
                               origin, "stack parameter count");
  int64_t embed = checked_mul(c.vocab_size, c.hidden_size, origin, "vocab_size × hidden_size");
  int64_t total = checked_add(checked_mul(2, embed, origin, "embedding parameter count"), stacks,
                              origin, "parameter count");
  checked_add(total, c.hidden_size, origin, "parameter count");
  int64_t invocations = checked_mul(c.H_cycles, checked_add(c.L_cycles, 1, origin, "L_cycles + 1"),
                                    origin, "H_cycles × (L_cycles + 1)");
  checked_mul(invocations, c.num_layers_per_stack, origin, "KV slot count");
}

}  // namespace

int64_t ModelConfig::parameter_count() const {
  // Tensor shapes of DESIGN §2 (weights [out, in], no biases, parameterless norms):
  // gqkv_proj [4·A, D] and o_proj [D, A] with A = heads × head_dim; gate_up_proj [2·I, D] and
  // down_proj [D, I]; embed_tokens and lm_head [V, D] (lm_head only when untied); z_L_init [D].
  const int64_t attn = attn_dim();
  const int64_t per_block = 4 * attn * hidden_size + attn * hidden_size + 3 * hidden_size * intermediate_size;
  const int64_t embed = vocab_size * hidden_size;
  const int64_t head = tie_word_embeddings ? 0 : embed;
  constexpr int64_t kStacks = 2;  // H and L
  return embed + head + hidden_size + kStacks * num_layers_per_stack * per_block;
}

ModelConfig parse_config(std::string_view json, std::string_view origin) {
  rapidjson::Document doc;
  // Iterative parsing: deeply nested input must not exhaust the stack.
  doc.Parse<rapidjson::kParseIterativeFlag>(json.data(), json.size());
  if (doc.HasParseError())
    throw Error(cat(origin, ": invalid JSON at byte ", doc.GetErrorOffset(), ": ",
                    rapidjson::GetParseError_En(doc.GetParseError())));
  if (!doc.IsObject()) throw Error(cat(origin, ": expected a JSON object at the top level"));

  FieldReader r(doc, origin, "");
  ModelConfig c;

  std::optional<std::string> model_type = r.string_field("model_type");
  if (!model_type) throw r.error("model_type", cat("is missing, expected \"", kModelType, "\""));
  if (*model_type != kModelType)
    throw r.error("model_type", cat("is \"", *model_type, "\", expected \"", kModelType,
                                    "\" (this toolkit runs HRM-Text models only)"));

  auto positive = [&](std::string_view key, int64_t dflt) {
    return require_positive(r, key, r.int_field(key).value_or(dflt));
  };
  c.vocab_size = positive("vocab_size", kDefaultVocabSize);
  c.hidden_size = positive("hidden_size", kDefaultHiddenSize);
  c.intermediate_size = positive("intermediate_size", kDefaultIntermediateSize);
  c.num_attention_heads = positive("num_attention_heads", kDefaultNumAttentionHeads);
  c.head_dim = positive("head_dim", kDefaultHeadDim);
  c.max_position_embeddings = positive("max_position_embeddings", kDefaultMaxPositionEmbeddings);
  c.H_cycles = positive("H_cycles", kDefaultHCycles);
  c.L_cycles = positive("L_cycles", kDefaultLCycles);

  // HrmTextConfig.validate_architecture.
  if (c.hidden_size % c.num_attention_heads != 0)
    throw r.error("hidden_size", cat("(", c.hidden_size, ") must be a multiple of num_attention_heads (",
                                     c.num_attention_heads, ")"));

  // HrmTextConfig.__post_init__: without num_layers_per_stack, num_hidden_layers is the per-stack
  // block count (first construction or a legacy file); with it, num_hidden_layers is the inflated
  // KV-slot count blocks × H_cycles × (L_cycles + 1).
  const int64_t num_hidden_layers = positive("num_hidden_layers", kDefaultNumHiddenLayers);
  if (std::optional<int64_t> per_stack = r.int_field("num_layers_per_stack", /*nullable=*/true)) {
    c.num_layers_per_stack = require_positive(r, "num_layers_per_stack", *per_stack);
    int64_t invocations = checked_mul(c.H_cycles, checked_add(c.L_cycles, 1, origin, "L_cycles + 1"),
                                      origin, "H_cycles × (L_cycles + 1)");
    int64_t slots = checked_mul(invocations, c.num_layers_per_stack, origin, "KV slot count");
    if (slots != num_hidden_layers)
      throw r.error("num_hidden_layers",
                    cat("is ", num_hidden_layers, ", expected num_layers_per_stack × H_cycles × (L_cycles + 1) = ",
                        c.num_layers_per_stack, " × ", c.H_cycles, " × ", c.L_cycles + 1, " = ", slots));
  } else {
    c.num_layers_per_stack = num_hidden_layers;
  }

  c.rms_norm_eps = r.number_field("rms_norm_eps").value_or(kDefaultRmsNormEps);
  if (!(c.rms_norm_eps > 0)) throw r.error("rms_norm_eps", cat("must be > 0, got ", c.rms_norm_eps));

  // `interval(min=0.0, max=1.0)` in HrmTextConfig.
  c.initializer_range = r.number_field("initializer_range").value_or(kDefaultInitializerRange);
  if (!(c.initializer_range >= 0 && c.initializer_range <= 1))
    throw r.error("initializer_range", cat("must be in [0, 1], got ", c.initializer_range));

  if (std::optional<double> scale = r.number_field("embedding_scale", /*nullable=*/true)) {
    c.embedding_scale = *scale;
  } else {
    if (c.initializer_range == 0)
      throw r.error("embedding_scale", "is absent and initializer_range is 0, so 1/initializer_range is undefined");
    c.embedding_scale = 1.0 / c.initializer_range;
  }
  if (!std::isfinite(c.embedding_scale))
    throw r.error("embedding_scale", cat("must be finite, got ", c.embedding_scale));

  // RoPE: rope_parameters.rope_theta (Transformers ≥ 5), else the older top-level rope_theta.
  c.rope_theta = kDefaultRopeTheta;
  if (std::optional<double> theta = r.number_field("rope_theta", /*nullable=*/true)) c.rope_theta = *theta;
  if (const JsonValue* rope = r.find("rope_parameters", /*nullable=*/true)) {
    if (!rope->IsObject()) throw r.type_error("rope_parameters", "an object", *rope);
    FieldReader rp(*rope, origin, "rope_parameters.");
    if (std::optional<std::string> type = rp.string_field("rope_type")) {
      // The runtime implements plain RoPE only (DESIGN §2); scaled variants would silently differ.
      if (*type != "default")
        throw rp.error("rope_type", cat("is \"", *type, "\", only \"default\" is supported"));
    }
    if (std::optional<double> theta = rp.number_field("rope_theta")) c.rope_theta = *theta;
  }
  if (!(c.rope_theta > 0)) throw r.error("rope_theta", cat("must be > 0, got ", c.rope_theta));

  c.prefix_lm = r.bool_field("prefix_lm").value_or(true);
  c.tie_word_embeddings = r.bool_field("tie_word_embeddings").value_or(false);

  // What the runtime implements (DESIGN §2): SiLU MLP, no biases anywhere.
  if (std::optional<std::string> act = r.string_field("hidden_act"); act && *act != "silu")
    throw r.error("hidden_act", cat("is \"", *act, "\", only \"silu\" is supported"));
  for (std::string_view key : {"attention_bias", "mlp_bias"})
    if (r.bool_field(key).value_or(false)) throw r.error(key, "is true, but HRM-Text has no biases");

  if (const JsonValue* v = r.find("bos_token_id", true)) c.bos_token_id = token_id(r, "bos_token_id", c.vocab_size, *v);
  if (const JsonValue* v = r.find("pad_token_id", true)) c.pad_token_id = token_id(r, "pad_token_id", c.vocab_size, *v);
  if (const JsonValue* v = r.find("eos_token_id", true)) {
    if (v->IsArray()) {
      for (const JsonValue& e : v->GetArray()) c.eos_token_ids.push_back(token_id(r, "eos_token_id", c.vocab_size, e));
    } else {
      c.eos_token_ids.push_back(token_id(r, "eos_token_id", c.vocab_size, *v));
    }
    if (!c.eos_token_ids.empty()) c.eos_token_id = c.eos_token_ids.front();
  }

  // Transformers 5 writes "dtype"; older files "torch_dtype".
  if (std::optional<std::string> dt = r.string_field("dtype", true)) {
    c.torch_dtype = *dt;
  } else if (std::optional<std::string> tdt = r.string_field("torch_dtype", true)) {
    c.torch_dtype = *tdt;
  }

  check_products(c, origin);
  return c;
}

ModelConfig load_config(const std::filesystem::path& model_dir) {
  namespace fs = std::filesystem;
  const bool file = fs::is_regular_file(model_dir) || (!fs::exists(model_dir) && model_dir.extension() == ".json");
  const fs::path path = file ? model_dir : model_dir / "config.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(cat(path.string(), ": cannot open (expected the model's config.json)"));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw Error(cat(path.string(), ": read error"));
  return parse_config(text.str(), path.string());
}

}  // namespace hrm
