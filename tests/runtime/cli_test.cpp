// End-to-end tests of `hrmbench info` and `hrmbench generate` on the transformers-made fixtures.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "test_util.h"

namespace hrm {
namespace {

using test::CmdResult;
using test::hrmbench;

std::string join(const rapidjson::Value& arr) {
  std::string s;
  for (const auto& v : arr.GetArray()) {
    if (!s.empty()) s += ',';
    s += std::to_string(v.GetInt());
  }
  return s;
}

TEST(Cli, GeneratePromptIdsMatchesTransformersGreedy) {
  for (const char* name : {"tiny_f32", "tiny_bf16_unfused"}) {
    const auto dir = test::fixtures() / "models" / name;
    auto doc = test::read_json(dir / "expected.json");
    const auto& c = doc["cases"][2];
    const CmdResult r = hrmbench("generate --model " + dir.string() + " --prompt-ids " + join(c["prompt"]) +
                           " --max-new-tokens " + std::to_string(c["greedy"].Size()) +
                           " --ignore-eos --print-ids");
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_EQ(r.out, join(c["greedy"]) + "\n") << name;
  }
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

TEST(Cli, GenerateTextMatchesTransformersAndTokenizers) {
  // tiny_text's tokenizer.json links to the test tokenizer; prompts go through the prompt format,
  // generation stops at <|box_end|>, and the text is decoded as the reference engine does.
  const auto dir = test::fixtures() / "models" / "tiny_text";
  auto doc = test::read_json(dir / "expected.json");
  for (const auto& c : doc["cases"].GetArray()) {
    const std::string args = "generate --model " + dir.string() + " --prompt " +
                             shell_quote(c["text"].GetString()) + " --condition " +
                             c["condition"].GetString() + " --max-new-tokens 16";
    CmdResult r = hrmbench(args);
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_EQ(r.out, std::string(c["generated_text"].GetString()) + "\n");
    r = hrmbench(args + " --print-ids");
    EXPECT_EQ(r.out, join(c["generated_ids"]) + "\n");
  }
}

TEST(Cli, InfoParameterCountEqualsTensorTotal) {
  // `parameters` comes from the config formula, `stored_parameters` from summing tensor sizes.
  for (const char* name : {"tiny_f32", "tiny_bf16_unfused", "tiny_sharded_old_config"}) {
    const CmdResult r = hrmbench("info --json " + (test::fixtures() / "models" / name).string());
    ASSERT_EQ(r.status, 0) << r.out;
    rapidjson::Document d;
    d.Parse(r.out.c_str());
    ASSERT_FALSE(d.HasParseError()) << r.out;
    EXPECT_EQ(d["parameters"].GetInt64(), d["stored_parameters"].GetInt64()) << name;
    // 16 slots x (K and V) x heads*head_dim x 2 bytes for tiny_f32 (2 blocks x 2 H x (3+1) L).
    if (std::string(name) == "tiny_f32") {
      EXPECT_EQ(d["kv_bytes_per_token_bf16"].GetInt64(), 16 * 2 * 32 * 2);
    }
  }
}

TEST(Cli, ClearErrors) {
  CmdResult r = hrmbench("info /nonexistent/model", true);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("/nonexistent/model"), std::string::npos) << r.out;
  const std::string model = (test::fixtures() / "models" / "tiny_f32").string();
  r = hrmbench("generate --model " + model + " --prompt-ids 1,x,3", true);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("'x' is not a token id"), std::string::npos) << r.out;
  r = hrmbench("generate --model " + model + " --prompt hello", true);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("tokenizer"), std::string::npos) << r.out;
  r = hrmbench("generate --model " + model + " --prompt-ids 1,2,3 --context 3", true);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("context"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace hrm
