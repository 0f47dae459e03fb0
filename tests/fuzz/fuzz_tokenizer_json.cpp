// libFuzzer target: arbitrary bytes as tokenizer.json -> hrm::Tokenizer::from_json, and, when a
// tokenizer loads, a few encodes and decodes with it.
//
// Loading may only ever throw hrm::Error; so may encode() (e.g. a hostile Split regex hitting its
// match limit). Any other exception, crash or sanitizer report is a bug. Input layout: the JSON,
// optionally followed by a line "\n#text\n" and a text to encode (so the fuzzer can vary both).
// Not for: checking encode results (tests/runtime/tokenizer_test.cpp compares with `tokenizers`).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "runtime/tokenizer.h"

namespace {
constexpr std::string_view kTextMarker = "\n#text\n";
// Fixed texts that touch every stage: added tokens, NFC, whitespace runs, multi-byte UTF-8.
constexpr std::string_view kTexts[] = {
    "<|im_start|>Hello, world! It's 42.<|im_end|>",
    "cafe\xCC\x81  \r\n\n  x",
    "\xF0\x9F\x91\x8D \xE6\x97\xA5",
    "",
};
// Ids decoded blindly: around the vocabulary's edges, and negative.
constexpr int kIdsPastEnd = 3;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t marker = input.find(kTextMarker);
  const std::string_view json = input.substr(0, marker);
  const std::string_view extra = marker == std::string_view::npos
                                     ? std::string_view()
                                     : input.substr(marker + kTextMarker.size());
  try {
    const hrm::Tokenizer tok = hrm::Tokenizer::from_json(json, "fuzz.json");
    std::vector<hrm::TokenId> all;
    auto run = [&](std::string_view text) {
      try {
        const std::vector<hrm::TokenId> ids = tok.encode(text);
        for (hrm::TokenId id : ids) {
          if (id < 0 || static_cast<size_t>(id) >= tok.vocab_size())
            __builtin_trap();  // ids must be valid
        }
        all.insert(all.end(), ids.begin(), ids.end());
        (void)tok.decode(ids);
      } catch (const hrm::Error&) {
      }
    };
    for (std::string_view t : kTexts) run(t);
    run(extra);
    (void)tok.decode(all, true);
    std::vector<hrm::TokenId> probe = {-1, 0};
    for (int k = 0; k < kIdsPastEnd; ++k)
      probe.push_back(static_cast<hrm::TokenId>(tok.vocab_size()) - 1 + k);
    (void)tok.decode(probe);
    for (hrm::TokenId id : probe) {
      (void)tok.id_to_token(id);
      (void)tok.is_special(id);
    }
  } catch (const hrm::Error&) {
  }
  return 0;
}
