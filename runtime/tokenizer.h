// The HRM-Text tokenizer: a Hugging Face `tokenizers` BPE tokenizer.json, reproduced exactly.
//
// Supports what HRM-Text's tokenizer.json uses: added/special tokens matched in the raw text before
// anything else (never split), an NFC normalizer, a Split pre-tokenizer with a regex (behaviour
// "Isolated"), a ByteLevel pre-tokenizer (GPT-2 byte<->unicode map, no prefix space, no regex), BPE
// with merges, and the ByteLevel decoder. Anything else in the file is refused with a clear error
// rather than silently ignored. Not for: training tokenizers, or other tokenizer families.
//
// Example:
//   auto tok = hrm::Tokenizer::from_file("model/tokenizer.json");
//   std::vector<hrm::TokenId> ids = tok.encode("<|im_start|>What is 2+2?<|im_end|>");
//   std::string text = tok.decode(ids);
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hrm {

using TokenId = int32_t;

class Tokenizer {
 public:
  // Throws hrm::Error naming the file and the field on anything unreadable or unsupported.
  static Tokenizer from_file(const std::string& path);
  // `origin` names the source in error messages (a path, or "<memory>").
  static Tokenizer from_json(std::string_view json, std::string_view origin = "<memory>");

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Same ids as `tokenizers`' Tokenizer.encode(text, add_special_tokens=False).ids. Throws
  // hrm::Error if `text` is not valid UTF-8. Safe to call from many threads on one Tokenizer
  // (the BPE word cache is sharded behind mutexes). See docs/TOKENIZER.md.
  std::vector<TokenId> encode(std::string_view text) const;
  // Same text as `tokenizers`' decode(ids, skip_special_tokens=skip_special).
  std::string decode(std::span<const TokenId> ids, bool skip_special = false) const;

  std::optional<TokenId> token_to_id(std::string_view token) const;
  // The token's string as stored in the vocabulary (ByteLevel-mapped), or "" if out of range.
  std::string id_to_token(TokenId id) const;
  // Number of ids (vocabulary plus added tokens): max id + 1.
  size_t vocab_size() const;
  bool is_special(TokenId id) const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Unicode NFC normalisation of UTF-8 text (utf8proc); exposed for tests and the contamination
// engine.
std::string nfc(std::string_view text);

}  // namespace hrm
