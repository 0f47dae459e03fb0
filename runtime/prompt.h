// The HRM-Text prompt format (DESIGN §2): `<|im_start|>` + condition tokens + text + `<|im_end|>`,
// tokenized as one string so added tokens are matched exactly as the reference does
// (sapientinc/HRM-Text simple_inference_engine.tokenize_prompt); generation stops at `<|box_end|>`.
// The text is `str.strip()`-ed first, as the reference engine does. Not for: few-shot prompt
// construction (tasks/).
//
// Example:
//   hrm::PromptFormat fmt;                          // the data pipeline's defaults
//   auto ids = hrm::format_prompt(tok, fmt, "What is 2+2?", "synth,cot");
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/tokenizer.h"

namespace hrm {

struct PromptFormat {
  std::string boq = "<|im_start|>";  // begin of question
  std::string eoq = "<|im_end|>";    // end of question
  std::string eoa = "<|box_end|>";   // end of answer: the stop token
  // Condition tags → tokens; defaults from the HRM-Text data pipeline (DESIGN §2).
  std::map<std::string, std::string, std::less<>> conditions = {
      {"direct", "<|object_ref_start|>"},
      {"cot", "<|object_ref_end|>"},
      {"noisy", "<|quad_start|>"},
      {"synth", "<|quad_end|>"},
  };
};

// The exact string that is tokenized. `conditions` is a comma-separated tag list ("" for none).
// Throws hrm::Error naming an unknown tag and the known ones.
std::string prompt_string(const PromptFormat& fmt, std::string_view text, std::string_view conditions);
std::vector<TokenId> format_prompt(const Tokenizer& tok, const PromptFormat& fmt, std::string_view text,
                                   std::string_view conditions);
// The stop token's id; throws hrm::Error if the tokenizer lacks it.
TokenId stop_token(const Tokenizer& tok, const PromptFormat& fmt);
// Generated ids → text as the reference does: drop one trailing stop token, decode the rest with
// special tokens kept.
std::string decode_generation(const Tokenizer& tok, std::span<const TokenId> ids, TokenId stop_id);

}  // namespace hrm
