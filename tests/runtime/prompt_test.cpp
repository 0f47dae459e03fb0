// The prompt format against ids made by Hugging Face `tokenizers` (tiny_text fixture), and the
// Python-compatible strip it relies on.
#include "common/error.h"
#include "common/text.h"
#include "runtime/prompt.h"
#include "test_util.h"

namespace hrm {
namespace {

TEST(Prompt, IdsMatchTokenizersOnTheReferenceFormat) {
  const auto dir = test::fixtures() / "models" / "tiny_text";
  const Tokenizer tok = Tokenizer::from_file((dir / "tokenizer.json").string());
  auto doc = test::read_json(dir / "expected.json");
  const PromptFormat fmt;
  for (const auto& c : doc["cases"].GetArray()) {
    EXPECT_EQ(prompt_string(fmt, c["text"].GetString(), c["condition"].GetString()),
              c["prompt_string"].GetString());
    std::vector<TokenId> want;
    for (const auto& v : c["prompt_ids"].GetArray()) want.push_back(v.GetInt());
    EXPECT_EQ(format_prompt(tok, fmt, c["text"].GetString(), c["condition"].GetString()), want);
  }
  EXPECT_EQ(stop_token(tok, fmt), *tok.token_to_id("<|box_end|>"));
}

TEST(Prompt, UnknownConditionNamesTheKnownOnes) {
  try {
    prompt_string(PromptFormat{}, "x", "direct,fast");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown condition 'fast'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("synth"), std::string::npos) << e.what();
  }
}

TEST(Prompt, DecodeDropsOneTrailingStopToken) {
  const Tokenizer tok = Tokenizer::from_file((test::fixtures() / "tokenizer" / "tokenizer.json").string());
  const TokenId stop = *tok.token_to_id("<|box_end|>");
  std::vector<TokenId> ids = tok.encode("hello world");
  const std::string plain = decode_generation(tok, ids, stop);
  ids.push_back(stop);
  EXPECT_EQ(decode_generation(tok, ids, stop), plain);
  ids.push_back(stop);  // only the last one is the terminator; an earlier one is text
  EXPECT_EQ(decode_generation(tok, ids, stop), plain + "<|box_end|>");
}

TEST(PyStrip, MatchesPythonStrWhitespace) {
  EXPECT_EQ(py_strip("  a b \n"), "a b");
  EXPECT_EQ(py_strip("\t\r\x0b\x0c\x1c\x1fx\x1e"), "x");
  EXPECT_EQ(py_strip("\u00a0\u2003x\u3000\u2029"), "x");       // NBSP, EM SPACE, IDEOGRAPHIC SPACE
  EXPECT_EQ(py_strip("\u200bx\u200b"), "\u200bx\u200b");       // ZERO WIDTH SPACE is not whitespace
  EXPECT_EQ(py_strip("\u0085x"), "x");                          // NEL
  EXPECT_EQ(py_strip("   "), "");
  EXPECT_EQ(py_strip("\xff x \xff"), "\xff x \xff");           // invalid UTF-8 stays
}

}  // namespace
}  // namespace hrm
