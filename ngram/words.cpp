// Word mode, after GPT-3's 13-gram overlap method: lower-case, drop ASCII punctuation, split on
// whitespace; words become ids through a vocabulary of the benchmark's own words, so matching is
// exact and needs no tokenizer. Non-ASCII bytes are kept as word characters (no Unicode case folding).
// Not for: model tokenization.
#include "ngram/contam.h"

namespace hrm::ngram {
namespace {

bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_ascii_punct(unsigned char c) {
  return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') || (c >= '{' && c <= '~');
}
constexpr unsigned char kCaseBit = 'a' - 'A';

template <class F>
void for_each_word(std::string_view text, F&& f) {
  std::string word;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (is_space(c)) {
      if (!word.empty()) f(word);
      word.clear();
    } else if (!is_ascii_punct(c)) {
      word.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c | kCaseBit : c));
    }
  }
  if (!word.empty()) f(word);
}

}  // namespace

std::vector<std::string> split_words(std::string_view text) {
  std::vector<std::string> out;
  for_each_word(text, [&](const std::string& w) { out.push_back(w); });
  return out;
}

size_t WordVocab::Hash::operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }

std::vector<Token> WordVocab::add_text(std::string_view text) {
  std::vector<Token> out;
  for_each_word(text, [&](const std::string& w) {
    auto [it, fresh] = ids_.try_emplace(w, static_cast<Token>(ids_.size() + 1));
    out.push_back(it->second);
  });
  return out;
}

std::vector<Token> WordVocab::encode(std::string_view text) const {
  std::vector<Token> out;
  for_each_word(text, [&](const std::string& w) {
    const auto it = ids_.find(std::string_view(w));
    out.push_back(it == ids_.end() ? kUnknownWord : it->second);
  });
  return out;
}

}  // namespace hrm::ngram
