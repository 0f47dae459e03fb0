// Tests of runtime/config.{h,cpp}: config.json files written by Transformers' HrmTextConfig (made by
// scripts/make_checkpoint_fixture.py) must resolve to the values Transformers resolves them to
// (tests/fixtures/config/expected.json), and every malformed field must be refused by name.

#include "runtime/config.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "common/error.h"

namespace {

std::filesystem::path fixtures() {
  // HRM_FIXTURES is set by tests/CMakeLists.txt; fall back to HRM_SOURCE_DIR, then the cwd.
  if (const char* dir = std::getenv("HRM_FIXTURES")) return std::filesystem::path(dir);
  if (const char* src = std::getenv("HRM_SOURCE_DIR")) return std::filesystem::path(src) / "tests" / "fixtures";
  return std::filesystem::path("tests/fixtures");
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "cannot open " << path;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A small valid config with one field's raw JSON text set (replacing the base value if any).
std::string config_with(const std::string& key, const std::string& raw_value) {
  std::map<std::string, std::string> fields = {
      {"model_type", "\"hrm_text\""}, {"hidden_size", "64"}, {"num_attention_heads", "4"},
      {"head_dim", "16"}, {"vocab_size", "256"}, {"intermediate_size", "96"}, {"num_hidden_layers", "2"}};
  fields[key] = raw_value;
  std::string json = "{";
  for (const auto& [k, v] : fields) json += (json.size() > 1 ? ", \"" : "\"") + k + "\": " + v;
  return json + "}";
}

// Expects parse_config to throw an hrm::Error whose message contains every needle.
void expect_error(const std::string& json, std::initializer_list<std::string> needles) {
  try {
    hrm::parse_config(json, "cfg.json");
    ADD_FAILURE() << "accepted: " << json;
  } catch (const hrm::Error& e) {
    std::string msg = e.what();
    for (const std::string& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  }
}

TEST(Config, MatchesTransformersOnEveryFixture) {
  rapidjson::Document expected;
  expected.Parse(read_text(fixtures() / "config" / "expected.json").c_str());
  ASSERT_TRUE(expected.IsObject());
  int checked = 0;
  for (const auto& entry : expected.GetObject()) {
    const std::string name = entry.name.GetString();
    SCOPED_TRACE(name);
    const rapidjson::Value& want = entry.value;
    hrm::ModelConfig c = hrm::parse_config(read_text(fixtures() / "config" / name), name);
    EXPECT_EQ(c.hidden_size, want["hidden_size"].GetInt64());
    EXPECT_EQ(c.intermediate_size, want["intermediate_size"].GetInt64());
    EXPECT_EQ(c.num_attention_heads, want["num_attention_heads"].GetInt64());
    EXPECT_EQ(c.head_dim, want["head_dim"].GetInt64());
    EXPECT_EQ(c.num_layers_per_stack, want["num_layers_per_stack"].GetInt64());
    EXPECT_EQ(c.kv_slots(), want["num_hidden_layers"].GetInt64());
    EXPECT_EQ(c.H_cycles, want["H_cycles"].GetInt64());
    EXPECT_EQ(c.L_cycles, want["L_cycles"].GetInt64());
    EXPECT_EQ(c.vocab_size, want["vocab_size"].GetInt64());
    EXPECT_EQ(c.max_position_embeddings, want["max_position_embeddings"].GetInt64());
    EXPECT_DOUBLE_EQ(c.rms_norm_eps, want["rms_norm_eps"].GetDouble());
    EXPECT_DOUBLE_EQ(c.rope_theta, want["rope_theta"].GetDouble());
    EXPECT_DOUBLE_EQ(c.embedding_scale, want["embedding_scale"].GetDouble());
    EXPECT_DOUBLE_EQ(c.initializer_range, want["initializer_range"].GetDouble());
    EXPECT_EQ(c.prefix_lm, want["prefix_lm"].GetBool());
    EXPECT_EQ(c.bos_token_id, want["bos_token_id"].GetInt64());
    EXPECT_EQ(c.pad_token_id, want["pad_token_id"].GetInt64());
    std::vector<int64_t> eos;
    for (const auto& e : want["eos_token_ids"].GetArray()) eos.push_back(e.GetInt64());
    EXPECT_EQ(c.eos_token_ids, eos);
    EXPECT_EQ(c.eos_token_id, eos.empty() ? -1 : eos.front());
    EXPECT_EQ(c.torch_dtype, want["torch_dtype"].GetString());
    EXPECT_EQ(c.parameter_count(), want["parameter_count"].GetInt64());
    ++checked;
  }
  EXPECT_EQ(checked, 5);
}

TEST(Config, XlHasThePublishedParameterCountAndSlots) {
  // load_config reads <dir>/config.json; give it the Transformers-written XL file under that name.
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "hrm_config_test_xl";
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(fixtures() / "config" / "xl.json", dir / "config.json",
                             std::filesystem::copy_options::overwrite_existing);
  hrm::ModelConfig c = hrm::load_config(dir);
  std::filesystem::remove_all(dir);
  EXPECT_EQ(c.parameter_count(), 1'182'795'264);  // DESIGN §2
  EXPECT_EQ(c.kv_slots(), 128);
  EXPECT_EQ(c.attn_dim(), c.hidden_size);
}

TEST(Config, LoadConfigNamesTheMissingFile) {
  try {
    hrm::load_config(fixtures() / "no_such_dir");
    FAIL() << "no error";
  } catch (const hrm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no_such_dir/config.json"), std::string::npos) << e.what();
  }
}

TEST(Config, RefusesOtherModelTypes) {
  expect_error(R"({"model_type": "llama", "hidden_size": 64})", {"cfg.json", "model_type", "llama", "hrm_text"});
  expect_error(R"({"hidden_size": 64})", {"model_type", "missing"});
}

TEST(Config, RefusesWrongFieldTypesByName) {
  expect_error(config_with("hidden_size", "\"1536\""), {"cfg.json", "'hidden_size'", "integer", "string"});
  expect_error(config_with("hidden_size", "1536.0"), {"'hidden_size'", "integer", "number"});
  expect_error(config_with("H_cycles", "null"), {"'H_cycles'", "integer", "null"});
  expect_error(config_with("rms_norm_eps", "\"1e-6\""), {"'rms_norm_eps'", "number"});
  expect_error(config_with("prefix_lm", "1"), {"'prefix_lm'", "boolean"});
  expect_error(config_with("rope_parameters", "[1]"), {"'rope_parameters'", "object"});
  expect_error(config_with("rope_parameters", R"({"rope_theta": "big"})"), {"'rope_parameters.rope_theta'", "number"});
  expect_error(config_with("eos_token_id", R"([2, "x"])"), {"'eos_token_id'", "integer"});
  expect_error(config_with("dtype", "5"), {"'dtype'", "string"});
}

TEST(Config, RefusesNonPositiveSizesAndBadValues) {
  expect_error(config_with("intermediate_size", "0"), {"'intermediate_size'", "positive"});
  expect_error(config_with("L_cycles", "-1"), {"'L_cycles'", "positive"});
  expect_error(config_with("rms_norm_eps", "0"), {"'rms_norm_eps'", "> 0"});
  expect_error(config_with("rms_norm_eps", "-1e-6"), {"'rms_norm_eps'", "> 0"});
  expect_error(config_with("initializer_range", "1.5"), {"'initializer_range'", "[0, 1]"});
  expect_error(config_with("initializer_range", "0"), {"'embedding_scale'", "initializer_range"});
  expect_error(config_with("rope_theta", "-5"), {"'rope_theta'", "> 0"});
  expect_error(config_with("eos_token_id", "256"), {"'eos_token_id'", "[0, 256)"});
  expect_error(config_with("pad_token_id", "-3"), {"'pad_token_id'"});
  expect_error(config_with("hidden_act", "\"gelu\""), {"'hidden_act'", "gelu", "silu"});
  expect_error(config_with("mlp_bias", "true"), {"'mlp_bias'", "bias"});
  expect_error(config_with("rope_parameters", R"({"rope_type": "yarn", "rope_theta": 1e4})"),
               {"'rope_parameters.rope_type'", "yarn"});
}

TEST(Config, RequiresHiddenSizeDivisibleByHeads) {
  // HrmTextConfig.validate_architecture.
  expect_error(config_with("num_attention_heads", "5"), {"'hidden_size'", "multiple", "num_attention_heads"});
}

TEST(Config, InflatedLayerCountMustAgree) {
  // 2 blocks × H_cycles 2 × (L_cycles 3 + 1) = 16 slots; 2 blocks × ... ≠ 2.
  expect_error(config_with("num_layers_per_stack", "2"), {"'num_hidden_layers'", "is 2", "16"});
  hrm::ModelConfig c = hrm::parse_config(R"({"model_type": "hrm_text", "num_hidden_layers": 16,
                                             "num_layers_per_stack": 2})");
  EXPECT_EQ(c.num_layers_per_stack, 2);
  EXPECT_EQ(c.kv_slots(), 16);
  // null num_layers_per_stack is Python's None: num_hidden_layers is the per-stack count.
  c = hrm::parse_config(R"({"model_type": "hrm_text", "num_hidden_layers": 5, "num_layers_per_stack": null})");
  EXPECT_EQ(c.num_layers_per_stack, 5);
}

TEST(Config, RopeParametersWinOverTopLevelRopeTheta) {
  hrm::ModelConfig c = hrm::parse_config(
      R"({"model_type": "hrm_text", "rope_theta": 5.0, "rope_parameters": {"rope_theta": 7.0, "rope_type": "default"}})");
  EXPECT_DOUBLE_EQ(c.rope_theta, 7.0);
}

TEST(Config, RefusesIntegerOverflow) {
  expect_error(config_with("vocab_size", "9223372036854775807"), {"cfg.json", "overflow"});
  expect_error(config_with("vocab_size", "99999999999999999999"), {"'vocab_size'", "integer"});
  expect_error(R"({"model_type": "hrm_text", "H_cycles": 4611686018427387904, "num_hidden_layers": 1,
                   "num_layers_per_stack": 1})",
               {"overflow"});
}

TEST(Config, RefusesBrokenJson) {
  expect_error("{\"model_type\": \"hrm_text\",", {"cfg.json", "invalid JSON"});
  expect_error("[1, 2]", {"cfg.json", "object"});
  expect_error(R"({"model_type": "hrm_text", "hidden_size": 64, "hidden_size": 128})", {"'hidden_size'", "twice"});
  expect_error(std::string(100000, '[') , {"cfg.json"});
}

}  // namespace
