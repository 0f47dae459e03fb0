// Prompt format (see prompt.h).
#include "runtime/prompt.h"

#include "common/error.h"
#include "common/text.h"

namespace hrm {

std::string prompt_string(const PromptFormat& fmt, std::string_view text, std::string_view conditions) {
  std::string out = fmt.boq;
  while (!conditions.empty()) {
    const size_t comma = conditions.find(',');
    const std::string_view tag = conditions.substr(0, comma);
    const auto it = fmt.conditions.find(tag);
    if (it == fmt.conditions.end()) {
      std::string known;
      for (const auto& [name, token] : fmt.conditions) known += (known.empty() ? "" : ", ") + name;
      throw Error(cat("unknown condition '", tag, "' (known: ", known, ")"));
    }
    out += it->second;
    if (comma == std::string_view::npos) break;
    conditions.remove_prefix(comma + 1);
  }
  out += py_strip(text);
  out += fmt.eoq;
  return out;
}

std::vector<TokenId> format_prompt(const Tokenizer& tok, const PromptFormat& fmt, std::string_view text,
                                   std::string_view conditions) {
  for (const std::string* special : {&fmt.boq, &fmt.eoq})
    if (!tok.token_to_id(*special))
      throw Error(cat("tokenizer has no token '", *special, "' needed by the prompt format"));
  return tok.encode(prompt_string(fmt, text, conditions));
}

TokenId stop_token(const Tokenizer& tok, const PromptFormat& fmt) {
  auto id = tok.token_to_id(fmt.eoa);
  if (!id) throw Error(cat("tokenizer has no stop token '", fmt.eoa, "'"));
  return *id;
}

std::string decode_generation(const Tokenizer& tok, std::span<const TokenId> ids, TokenId stop_id) {
  if (!ids.empty() && ids.back() == stop_id) ids = ids.first(ids.size() - 1);
  return tok.decode(ids, /*skip_special=*/false);
}

}  // namespace hrm
