// Loading and running a Hugging Face tokenizer.json (BPE, byte-level) exactly as `tokenizers` does.
//
// The pipeline of `tokenizers`' encode(text, add_special_tokens=False), step by step:
//   1. added tokens are found in the raw text (leftmost, then longest) and emitted as their ids;
//   2. each piece between them is normalized (NFC), and added tokens marked `normalized` are
//      found in it the same way;
//   3. the Split regex cuts it into pre-tokens (matches and the gaps between them, "Isolated");
//   4. ByteLevel maps the bytes of each pre-token to the GPT-2 alphabet (implicit here: BPE
//      symbols are bytes, looked up through that alphabet);
//   5. BPE merges each pre-token's symbols by merge rank, lowest first, leftmost on ties.
// Not for: other models (WordPiece, Unigram), offsets, padding/truncation, or training.
#include "runtime/tokenizer.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <queue>
#include <sstream>
#include <unordered_map>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <utf8proc.h>

#include "common/error.h"
#include "runtime/tokenizer_utf8.h"

namespace hrm {
namespace {

// Ids at or above this are refused: real vocabularies are far smaller (HRM-Text: 65,536), and a
// dense id table of this size still fits comfortably in memory.
constexpr int64_t kMaxTokenId = int64_t{1} << 24;
// The BPE result cache: words up to this many bytes are cached (longer ones are rare and would
// only churn it), in shards so that threads encoding at once rarely wait for each other.
constexpr size_t kMaxCachedWordBytes = 128;
constexpr size_t kCacheShards = 16;
// Slots per shard: tables start small (one prompt should not allocate megabytes), double when
// half full, and are emptied once the largest size is half full. Powers of two.
constexpr size_t kCacheShardFirstSlots = size_t{1} << 8;
constexpr size_t kCacheShardMaxSlots = size_t{1} << 15;
constexpr int kCacheShardShift = 48;
// PCRE2 limits: a hostile Split regex from a tokenizer.json must fail, not hang.
constexpr uint32_t kRegexMatchLimit = 10'000'000;
// JIT stack for very long whitespace runs, created only when the default 32 KiB is too small.
constexpr size_t kJitStackStart = 32 * 1024;
constexpr size_t kJitStackMax = 64 * 1024 * 1024;

// Nested normalizer Sequences beyond this are refused (real files use one level at most).
constexpr int kMaxSequenceDepth = 8;

// ByteLevel with use_regex=true splits with GPT-2's pattern (tokenizers' byte_level.rs).
constexpr char kGpt2Regex[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <class V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

struct PcreCodeDeleter {
  void operator()(pcre2_code* c) const { pcre2_code_free(c); }
};
struct PcreMatchDataDeleter {
  void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};
struct PcreContextDeleter {
  void operator()(pcre2_match_context* c) const { pcre2_match_context_free(c); }
};
struct PcreJitStackDeleter {
  void operator()(pcre2_jit_stack* s) const { pcre2_jit_stack_free(s); }
};

// Small accessors that name the field on error. `where` is "<origin>: <json path>".
const rapidjson::Value& member(const rapidjson::Value& obj, const char* name,
                               const std::string& where) {
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd()) throw Error(cat(where, ": missing field '", name, "'"));
  return it->value;
}
const rapidjson::Value* optional_member(const rapidjson::Value& obj, const char* name) {
  auto it = obj.FindMember(name);
  return it == obj.MemberEnd() || it->value.IsNull() ? nullptr : &it->value;
}
std::string get_string(const rapidjson::Value& v, const std::string& where) {
  if (!v.IsString()) throw Error(cat(where, ": expected a string"));
  return std::string(v.GetString(), v.GetStringLength());
}
bool get_bool(const rapidjson::Value& obj, const char* name, bool fallback,
              const std::string& where) {
  const rapidjson::Value* v = optional_member(obj, name);
  if (!v) return fallback;
  if (!v->IsBool()) throw Error(cat(where, ".", name, ": expected true or false"));
  return v->GetBool();
}
std::string type_of(const rapidjson::Value& obj, const std::string& where) {
  if (!obj.IsObject()) throw Error(cat(where, ": expected an object"));
  return get_string(member(obj, "type", where), where + ".type");
}
TokenId get_id(const rapidjson::Value& v, const std::string& where) {
  if (!v.IsInt64() || v.GetInt64() < 0 || v.GetInt64() >= kMaxTokenId)
    throw Error(cat(where, ": expected a token id in [0, ", kMaxTokenId, ")"));
  return static_cast<TokenId>(v.GetInt64());
}

// The byte that the alphabet character at s[i] stands for (advancing i past it), or -1 if that
// character is not in the GPT-2 byte alphabet. The alphabet lies below U+0200, so only one- and
// two-byte sequences can be in it.
int32_t alphabet_byte(std::string_view s, size_t& i) {
  const auto& alphabet = tok::byte_alphabet();
  const size_t n = tok::utf8_sequence_length(s, i);
  uint32_t cp = 0;
  if (n == 1) {
    cp = static_cast<uint8_t>(s[i]);
  } else if (n == 2) {
    cp = ((static_cast<uint8_t>(s[i]) & 0x1Fu) << 6) | (static_cast<uint8_t>(s[i + 1]) & 0x3Fu);
  } else {
    return -1;
  }
  if (cp >= alphabet.cp_to_byte.size() || alphabet.cp_to_byte[cp] < 0) return -1;
  i += n;
  return alphabet.cp_to_byte[cp];
}

bool is_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<uint8_t>(c) < 0x80; });
}

}  // namespace

std::string nfc(std::string_view text) {
  if (is_ascii(text)) return std::string(text);  // ASCII is always in NFC
  utf8proc_uint8_t* out = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                              static_cast<utf8proc_ssize_t>(text.size()), &out,
                              static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) throw Error(cat("nfc: text is not valid UTF-8 (", utf8proc_errmsg(n), ")"));
  std::string result(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return result;
}

struct Tokenizer::Impl {
  std::string origin;

  // Every id's token: the vocabulary string (ByteLevel-mapped) or the added token's content.
  struct Entry {
    std::string text;
    bool added = false;
    bool special = false;
  };
  std::vector<Entry> entries;    // indexed by slot
  std::vector<int32_t> id_slot;  // id -> index into entries, -1 where no token has that id
  StringMap<TokenId> vocab;      // model.vocab
  StringMap<TokenId> added_by_content;

  struct Added {
    std::string content;  // as matched: NFC-normalized for tokens with normalized = true
    TokenId id;
  };
  // Added tokens of one kind, longest content first so that the first hit is the longest.
  struct AddedSet {
    std::vector<Added> tokens;
    std::array<bool, 256> first_byte{};
  };
  AddedSet raw_added;         // normalized = false: matched in the raw text
  AddedSet normalized_added;  // normalized = true: matched in the normalized pieces

  bool nfc_normalize = false;
  std::unique_ptr<pcre2_code, PcreCodeDeleter> split;  // null: the whole piece is one pre-token
  std::unique_ptr<pcre2_match_context, PcreContextDeleter> match_context;

  // BPE.
  std::array<TokenId, 256> byte_token{};  // id of the one-byte token, -1 if not in the vocabulary
  struct Merge {
    uint32_t rank;
    TokenId result;
  };
  std::unordered_map<uint64_t, Merge> merges;  // key: left id << 32 | right id
  bool ignore_merges = false;
  std::optional<TokenId> unk;
  bool fuse_unk = false;

  // One shard of the BPE word cache: open addressing with linear probing over a power-of-two
  // table, keys and ids in two arenas. When the largest table is half full it is simply emptied:
  // the words that matter come back at once, and memory stays bounded without eviction logic.
  struct CacheShard {
    struct Slot {
      uint64_t hash = 0;
      uint32_t key_offset = 0;
      uint32_t ids_offset = 0;
      uint16_t key_length = 0;
      uint16_t id_count = 0;
      bool used = false;
    };
    std::mutex mu;
    std::vector<Slot> slots;  // allocated on first insert: most tokenizers in tests never fill it
    std::string keys;
    std::vector<TokenId> ids;
    size_t used = 0;

    // The slot holding `word`, or the empty slot where it would go (slots must not be empty).
    Slot& find(std::string_view word, uint64_t hash) {
      const size_t mask = slots.size() - 1;
      for (size_t i = hash & mask;; i = (i + 1) & mask) {
        Slot& s = slots[i];
        if (!s.used) return s;
        if (s.hash == hash && s.key_length == word.size() &&
            std::string_view(keys).substr(s.key_offset, s.key_length) == word)
          return s;
      }
    }
    void insert(Slot& slot, std::string_view word, uint64_t hash,
                std::span<const TokenId> word_ids) {
      slot = Slot{hash,
                  static_cast<uint32_t>(keys.size()),
                  static_cast<uint32_t>(ids.size()),
                  static_cast<uint16_t>(word.size()),
                  static_cast<uint16_t>(word_ids.size()),
                  true};
      keys.append(word);
      ids.insert(ids.end(), word_ids.begin(), word_ids.end());
      ++used;
    }
    // Makes room for one more word: grows the table, or empties it at its largest size.
    void make_room() {
      if (slots.empty()) {
        slots.resize(kCacheShardFirstSlots);
        return;
      }
      if (used * 2 < slots.size()) return;
      if (slots.size() >= kCacheShardMaxSlots) {
        clear();
        return;
      }
      std::vector<Slot> old(slots.size() * 2);
      old.swap(slots);
      for (const Slot& s : old) {
        if (s.used) find(std::string_view(keys).substr(s.key_offset, s.key_length), s.hash) = s;
      }
    }
    void clear() {
      std::fill(slots.begin(), slots.end(), Slot{});
      keys.clear();
      ids.clear();
      used = 0;
    }
  };
  mutable std::array<CacheShard, kCacheShards> cache;

  static uint64_t pair_key(TokenId a, TokenId b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  const Entry* entry(TokenId id) const {
    if (id < 0 || static_cast<size_t>(id) >= id_slot.size() || id_slot[id] < 0) return nullptr;
    return &entries[id_slot[id]];
  }

  // `vocab_twin`: the added token is also in model.vocab with this id (checked by the caller).
  void set_id(TokenId id, Entry e, const std::string& where, bool vocab_twin = false) {
    if (static_cast<size_t>(id) >= id_slot.size()) id_slot.resize(static_cast<size_t>(id) + 1, -1);
    if (id_slot[id] >= 0) {
      Entry& old = entries[id_slot[id]];
      // An added token may repeat its own vocabulary entry; anything else is a clash.
      if (vocab_twin && e.added && !old.added) {
        old = std::move(e);
        return;
      }
      throw Error(cat(where, ": duplicate id ", id, " (already used by '", old.text, "')"));
    }
    id_slot[id] = static_cast<int32_t>(entries.size());
    entries.push_back(std::move(e));
  }

  // ---- loading -------------------------------------------------------------------------------

  void load(const rapidjson::Value& root) {
    if (!root.IsObject()) throw Error(cat(origin, ": expected a JSON object at the top level"));
    for (const char* name : {"truncation", "padding"}) {
      if (optional_member(root, name))
        throw Error(cat(origin, ": '", name,
                        "' is set; only null is supported (encode() never truncates or pads)"));
    }
    load_model(member(root, "model", origin));
    // The normalizer first: normalized added tokens are stored normalized.
    if (const auto* n = optional_member(root, "normalizer"))
      load_normalizer(*n, origin + ": normalizer");
    if (const auto* a = optional_member(root, "added_tokens")) load_added(*a);
    load_pre_tokenizer(member(root, "pre_tokenizer", origin));
    if (const auto* p = optional_member(root, "post_processor"))
      check_post_processor(*p, origin + ": post_processor");
    const std::string decoder = type_of(member(root, "decoder", origin), origin + ": decoder");
    if (decoder != "ByteLevel")
      throw Error(cat(origin, ": decoder.type '", decoder, "' is not supported (only ByteLevel)"));
  }

  // Post-processors only add template tokens (encode() is add_special_tokens=False) or adjust
  // offsets; neither changes the ids encode() returns, so the known ones are accepted as no-ops.
  void check_post_processor(const rapidjson::Value& p, const std::string& where, int depth = 0) {
    if (depth > kMaxSequenceDepth)
      throw Error(cat(where, ": Sequence nested deeper than ", kMaxSequenceDepth));
    const std::string type = type_of(p, where);
    if (type == "ByteLevel" || type == "TemplateProcessing") return;
    if (type != "Sequence")
      throw Error(cat(where, ".type '", type,
                      "' is not supported (ByteLevel, TemplateProcessing, or a Sequence of them)"));
    const rapidjson::Value& list = member(p, "processors", where);
    if (!list.IsArray()) throw Error(cat(where, ".processors: expected an array"));
    for (rapidjson::SizeType i = 0; i < list.Size(); ++i)
      check_post_processor(list[i], cat(where, ".processors[", i, "]"), depth + 1);
  }

  void load_model(const rapidjson::Value& model) {
    const std::string where = origin + ": model";
    if (!model.IsObject()) throw Error(cat(where, ": expected an object"));
    if (const auto* t = optional_member(model, "type")) {
      const std::string type = get_string(*t, where + ".type");
      if (type != "BPE") throw Error(cat(where, ".type '", type, "' is not supported (only BPE)"));
    }
    if (const auto* d = optional_member(model, "dropout")) {
      if (!d->IsNumber() || d->GetDouble() != 0.0)
        throw Error(cat(where, ".dropout: BPE dropout is not supported (expected null or 0)"));
    }
    for (const char* name : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      if (const auto* v = optional_member(model, name)) {
        if (!v->IsString() || v->GetStringLength() != 0)
          throw Error(cat(where, ".", name, " is not supported (expected null or \"\")"));
      }
    }
    if (get_bool(model, "byte_fallback", false, where))
      throw Error(
          cat(where, ".byte_fallback = true is not supported (byte-level BPE never needs it)"));
    ignore_merges = get_bool(model, "ignore_merges", false, where);
    fuse_unk = get_bool(model, "fuse_unk", false, where);

    const rapidjson::Value& v = member(model, "vocab", where);
    if (!v.IsObject()) throw Error(cat(where, ".vocab: expected an object of token -> id"));
    vocab.reserve(v.MemberCount());
    for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
      std::string token(it->name.GetString(), it->name.GetStringLength());
      const std::string field = cat(where, ".vocab['", token, "']");
      const TokenId id = get_id(it->value, field);
      if (!vocab.emplace(token, id).second) throw Error(cat(field, ": duplicate token"));
      set_id(id, Entry{token, false, false}, field);
    }

    // Single-byte symbols: the vocabulary entry of each byte's alphabet character.
    const auto& alphabet = tok::byte_alphabet();
    for (int b = 0; b < 256; ++b) {
      std::string ch;
      tok::append_utf8(ch, alphabet.byte_to_cp[b]);
      auto it = vocab.find(ch);
      byte_token[b] = it == vocab.end() ? -1 : it->second;
    }

    if (const auto* u = optional_member(model, "unk_token")) {
      const std::string name = get_string(*u, where + ".unk_token");
      auto it = vocab.find(name);
      if (it == vocab.end())
        throw Error(cat(where, ".unk_token '", name, "' is not in model.vocab"));
      unk = it->second;
    }

    const rapidjson::Value& m = member(model, "merges", where);
    if (!m.IsArray()) throw Error(cat(where, ".merges: expected an array"));
    merges.reserve(m.Size());
    for (rapidjson::SizeType i = 0; i < m.Size(); ++i) {
      const std::string field = cat(where, ".merges[", i, "]");
      std::string left, right;
      const rapidjson::Value& e = m[i];
      if (e.IsString()) {
        // The older "a b" form: exactly one space, as byte-level tokens never contain one.
        const std::string s(e.GetString(), e.GetStringLength());
        const size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
          throw Error(
              cat(field, ": expected \"left right\" with exactly one space, got '", s, "'"));
        left = s.substr(0, sp);
        right = s.substr(sp + 1);
      } else if (e.IsArray() && e.Size() == 2) {
        left = get_string(e[0], field + "[0]");
        right = get_string(e[1], field + "[1]");
      } else {
        throw Error(cat(field, ": expected \"left right\" or [left, right]"));
      }
      auto find = [&](const std::string& token) {
        auto it = vocab.find(token);
        if (it == vocab.end())
          throw Error(cat(field, ": token '", token, "' is not in model.vocab"));
        return it->second;
      };
      const TokenId a = find(left);
      const TokenId b = find(right);
      const TokenId result = find(left + right);
      // A repeated pair takes the later rank, as `tokenizers` builds its merge map.
      merges[pair_key(a, b)] = Merge{static_cast<uint32_t>(i), result};
    }
  }

  void load_added(const rapidjson::Value& list) {
    const std::string where = origin + ": added_tokens";
    if (!list.IsArray()) throw Error(cat(where, ": expected an array"));
    for (rapidjson::SizeType i = 0; i < list.Size(); ++i) {
      const std::string field = cat(where, "[", i, "]");
      const rapidjson::Value& t = list[i];
      if (!t.IsObject()) throw Error(cat(field, ": expected an object"));
      const TokenId id = get_id(member(t, "id", field), field + ".id");
      std::string content = get_string(member(t, "content", field), field + ".content");
      if (content.empty()) throw Error(cat(field, ".content: must not be empty"));
      if (tok::first_invalid_utf8(content)) throw Error(cat(field, ".content: not valid UTF-8"));
      // HRM-Text's added tokens are plain. The options below change where a match may start or
      // end; refuse them rather than match wrongly.
      for (const char* option : {"single_word", "lstrip", "rstrip"}) {
        if (get_bool(t, option, false, field))
          throw Error(
              cat(field, ".", option, " = true is not supported (content '", content, "')"));
      }
      const bool special = get_bool(t, "special", false, field);
      // `tokenizers` defaults `normalized` to !special (AddedToken::from).
      const bool normalized = get_bool(t, "normalized", !special, field);
      auto in_vocab = vocab.find(content);
      if (in_vocab != vocab.end() && in_vocab->second != id)
        throw Error(cat(field, ": content '", content, "' has id ", id,
                        " but model.vocab gives it ", in_vocab->second));
      if (!added_by_content.emplace(content, id).second)
        throw Error(cat(field, ": duplicate added token '", content, "'"));
      // A normalized token is matched, shown by id_to_token and decoded in its normalized
      // form, while token_to_id takes the content as written: all as `tokenizers` does.
      std::string match = normalized && nfc_normalize ? nfc(content) : content;
      set_id(id, Entry{match, true, special}, field, in_vocab != vocab.end());
      AddedSet& set = normalized ? normalized_added : raw_added;
      set.first_byte[static_cast<uint8_t>(match[0])] = true;
      set.tokens.push_back(Added{std::move(match), id});
    }
    for (AddedSet* set : {&raw_added, &normalized_added}) {
      std::stable_sort(set->tokens.begin(), set->tokens.end(), [](const Added& a, const Added& b) {
        return a.content.size() > b.content.size();
      });
    }
  }

  void load_normalizer(const rapidjson::Value& n, const std::string& where, int depth = 0) {
    if (depth > kMaxSequenceDepth)
      throw Error(cat(where, ": Sequence nested deeper than ", kMaxSequenceDepth));
    const std::string type = type_of(n, where);
    if (type == "NFC") {
      nfc_normalize = true;
    } else if (type == "Sequence") {
      const rapidjson::Value& list = member(n, "normalizers", where);
      if (!list.IsArray()) throw Error(cat(where, ".normalizers: expected an array"));
      for (rapidjson::SizeType i = 0; i < list.Size(); ++i)
        load_normalizer(list[i], cat(where, ".normalizers[", i, "]"), depth + 1);
    } else {
      throw Error(cat(where, ".type '", type, "' is not supported (NFC, or a Sequence of NFC)"));
    }
  }

  void load_pre_tokenizer(const rapidjson::Value& p) {
    const std::string where = origin + ": pre_tokenizer";
    const std::string type = type_of(p, where);
    if (type == "ByteLevel") {
      load_byte_level(p, where, /*after_split=*/false);
      return;
    }
    if (type != "Sequence")
      throw Error(cat(where, ".type '", type,
                      "' is not supported (ByteLevel, or Sequence[Split, ByteLevel])"));
    const rapidjson::Value& list = member(p, "pretokenizers", where);
    if (!list.IsArray() || list.Size() != 2)
      throw Error(cat(where, ".pretokenizers: expected exactly [Split, ByteLevel]"));
    const std::string split_where = where + ".pretokenizers[0]";
    const std::string split_type = type_of(list[0], split_where);
    if (split_type != "Split")
      throw Error(
          cat(split_where, ".type '", split_type, "' is not supported here (expected Split)"));
    load_split(list[0], split_where);
    const std::string bl_where = where + ".pretokenizers[1]";
    const std::string bl_type = type_of(list[1], bl_where);
    if (bl_type != "ByteLevel")
      throw Error(
          cat(bl_where, ".type '", bl_type, "' is not supported here (expected ByteLevel)"));
    load_byte_level(list[1], bl_where, /*after_split=*/true);
  }

  void load_byte_level(const rapidjson::Value& p, const std::string& where, bool after_split) {
    if (get_bool(p, "add_prefix_space", false, where))
      throw Error(cat(where, ".add_prefix_space = true is not supported"));
    if (get_bool(p, "use_regex", true, where)) {
      if (after_split)
        throw Error(
            cat(where, ".use_regex = true after a Split is not supported (expected false)"));
      compile_split(kGpt2Regex, /*literal=*/false, where);
    }
  }

  void load_split(const rapidjson::Value& s, const std::string& where) {
    const std::string behavior = get_string(member(s, "behavior", where), where + ".behavior");
    if (behavior != "Isolated")
      throw Error(cat(where, ".behavior '", behavior, "' is not supported (only Isolated)"));
    if (get_bool(s, "invert", false, where))
      throw Error(cat(where, ".invert = true is not supported"));
    const rapidjson::Value& pattern = member(s, "pattern", where);
    if (!pattern.IsObject())
      throw Error(cat(where, ".pattern: expected {\"Regex\": ...} or {\"String\": ...}"));
    if (const auto* r = optional_member(pattern, "Regex")) {
      compile_split(get_string(*r, where + ".pattern.Regex"), false, where + ".pattern.Regex");
    } else if (const auto* str = optional_member(pattern, "String")) {
      compile_split(get_string(*str, where + ".pattern.String"), true, where + ".pattern.String");
    } else {
      throw Error(cat(where, ".pattern: expected {\"Regex\": ...} or {\"String\": ...}"));
    }
  }

  void compile_split(const std::string& pattern, bool literal, const std::string& where) {
    int err = 0;
    PCRE2_SIZE err_offset = 0;
    // UTF + UCP: \p{..}, \s and case folding follow Unicode as Oniguruma's do in `tokenizers`.
    const uint32_t options = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     options, &err, &err_offset, nullptr);
    if (!code) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      throw Error(cat(where, ": regex does not compile at offset ", err_offset, ": ",
                      reinterpret_cast<const char*>(msg)));
    }
    split.reset(code);
    // JIT is an optimisation: if it is unavailable, pcre2_match interprets the pattern instead.
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    match_context.reset(pcre2_match_context_create(nullptr));
    pcre2_set_match_limit(match_context.get(), kRegexMatchLimit);
  }

  // ---- encoding ------------------------------------------------------------------------------

  // Calls on_text(piece) for the text between the added tokens of `set` and on_added(id) for
  // each of them (leftmost match first, then the longest at that position).
  template <class OnText, class OnAdded>
  static void split_added(const AddedSet& set, std::string_view text, OnText&& on_text,
                          OnAdded&& on_added) {
    size_t start = 0;
    size_t i = 0;
    while (i < text.size()) {
      if (!set.first_byte[static_cast<uint8_t>(text[i])]) {
        ++i;
        continue;
      }
      const Added* hit = nullptr;
      for (const Added& a : set.tokens) {
        if (text.compare(i, a.content.size(), a.content) == 0) {
          hit = &a;
          break;
        }
      }
      if (!hit) {
        ++i;
        continue;
      }
      if (i > start) on_text(text.substr(start, i - start));
      on_added(hit->id);
      i += hit->content.size();
      start = i;
    }
    if (start < text.size()) on_text(text.substr(start));
  }

  // Calls fn(pre_token) for each piece of the Split regex, in order ("Isolated": matches and the
  // gaps between them are all pieces; empty pieces are dropped).
  template <class Fn>
  void pre_tokenize(std::string_view text, pcre2_match_data* md, Fn&& fn) const {
    if (!split) {
      if (!text.empty()) fn(text);
      return;
    }
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t last = 0;
    size_t pos = 0;
    // Only very long whitespace runs outgrow the default JIT stack; such a call gets its own
    // stack and its own copy of the match context, so that concurrent encodes never share one.
    std::unique_ptr<pcre2_jit_stack, PcreJitStackDeleter> big_stack;
    std::unique_ptr<pcre2_match_context, PcreContextDeleter> own_context;
    pcre2_match_context* ctx = match_context.get();
    while (pos <= text.size()) {
      int rc = pcre2_match(split.get(), subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, ctx);
      if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !big_stack) {
        big_stack.reset(pcre2_jit_stack_create(kJitStackStart, kJitStackMax, nullptr));
        own_context.reset(pcre2_match_context_copy(match_context.get()));
        ctx = own_context.get();
        pcre2_jit_stack_assign(ctx, nullptr, big_stack.get());
        rc = pcre2_match(split.get(), subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, ctx);
      }
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        throw Error(cat(origin, ": pre_tokenizer regex failed at byte ", pos, ": ",
                        reinterpret_cast<const char*>(msg)));
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      const size_t s = ov[0];
      const size_t e = ov[1];
      // PCRE2 can report odd spans for patterns with \K; refuse them rather than cut wrongly.
      if (s < last || e < s || e > text.size())
        throw Error(
            cat(origin, ": pre_tokenizer regex reported an invalid match span at byte ", pos));
      if (s > last) fn(text.substr(last, s - last));
      if (e > s) {
        fn(text.substr(s, e - s));
        last = e;
        pos = e;
      } else {
        if (pos >= text.size()) break;
        const size_t n = tok::utf8_sequence_length(text, pos);
        pos += n == 0 ? 1 : n;
      }
    }
    if (last < text.size()) fn(text.substr(last));
  }

  // BPE on one pre-token (its raw bytes); appends the ids to out.
  void bpe(std::string_view word, std::vector<TokenId>& out) const {
    // One byte needs no merging and no cache (spaces, digits and punctuation often come alone).
    if (word.size() == 1 && !ignore_merges) {
      const TokenId id = byte_token[static_cast<uint8_t>(word[0])];
      if (id >= 0) {
        out.push_back(id);
        return;
      }
    }
    if (word.size() > kMaxCachedWordBytes) {
      const std::vector<TokenId> ids = bpe_uncached(word);
      out.insert(out.end(), ids.begin(), ids.end());
      return;
    }
    const uint64_t hash = StringHash{}(word);
    // The shard comes from the high bits, the slot from the low bits, so they stay independent.
    CacheShard& shard = cache[(hash >> kCacheShardShift) % kCacheShards];
    {
      std::lock_guard<std::mutex> lock(shard.mu);
      const CacheShard::Slot* slot = shard.slots.empty() ? nullptr : &shard.find(word, hash);
      if (slot && slot->used) {
        const TokenId* p = shard.ids.data() + slot->ids_offset;
        out.insert(out.end(), p, p + slot->id_count);
        return;
      }
    }
    const std::vector<TokenId> ids = bpe_uncached(word);
    out.insert(out.end(), ids.begin(), ids.end());
    std::lock_guard<std::mutex> lock(shard.mu);
    shard.make_room();
    CacheShard::Slot& slot = shard.find(word, hash);
    if (!slot.used) shard.insert(slot, word, hash, ids);  // another thread may have added it
  }

  std::vector<TokenId> bpe_uncached(std::string_view word) const {
    if (ignore_merges) {
      // `tokenizers` takes a whole word that is in the vocabulary as is, without merging.
      std::string mapped;
      for (char c : word)
        tok::append_utf8(mapped, tok::byte_alphabet().byte_to_cp[static_cast<uint8_t>(c)]);
      auto it = vocab.find(mapped);
      if (it != vocab.end()) return {it->second};
    }
    // Symbols in a doubly linked list over a vector; a merged-away symbol gets len 0.
    struct Symbol {
      TokenId id;
      int prev;
      int next;
      int len;
    };
    std::vector<Symbol> sym;
    sym.reserve(word.size());
    bool pending_unk = false;  // a fused unk run is open at the end of sym
    for (size_t i = 0; i < word.size(); ++i) {
      const TokenId id = byte_token[static_cast<uint8_t>(word[i])];
      if (id >= 0) {
        pending_unk = false;
        sym.push_back({id, static_cast<int>(sym.size()) - 1, -1, 1});
        continue;
      }
      // A byte outside the vocabulary becomes unk (runs fused when fuse_unk), or is dropped
      // when there is no unk token, as in `tokenizers`.
      if (!unk) continue;
      if (fuse_unk && pending_unk) {
        ++sym.back().len;
        continue;
      }
      sym.push_back({*unk, static_cast<int>(sym.size()) - 1, -1, 1});
      pending_unk = true;
    }
    const int n = static_cast<int>(sym.size());
    for (int i = 0; i + 1 < n; ++i) sym[i].next = i + 1;

    struct Candidate {
      uint32_t rank;
      int pos;
      TokenId result;
      // std::priority_queue pops the greatest: make that the lowest rank, then the leftmost.
      bool operator<(const Candidate& o) const {
        return rank != o.rank ? rank > o.rank : pos > o.pos;
      }
    };
    std::priority_queue<Candidate> queue;
    auto consider = [&](int left) {
      const int right = sym[left].next;
      if (right < 0) return;
      auto it = merges.find(pair_key(sym[left].id, sym[right].id));
      if (it != merges.end()) queue.push({it->second.rank, left, it->second.result});
    };
    for (int i = 0; i + 1 < n; ++i) consider(i);
    while (!queue.empty()) {
      const Candidate top = queue.top();
      queue.pop();
      Symbol& left = sym[top.pos];
      if (left.len == 0 || left.next < 0) continue;
      // Stale entry: the pair at this position changed since it was queued. The check compares
      // the result id only, exactly as `tokenizers` does, so both apply the same merges.
      auto it = merges.find(pair_key(left.id, sym[left.next].id));
      if (it == merges.end() || it->second.result != top.result) continue;
      Symbol& right = sym[left.next];
      left.id = top.result;
      left.len += right.len;
      left.next = right.next;
      right.len = 0;
      if (left.next >= 0) sym[left.next].prev = top.pos;
      if (left.prev >= 0) consider(left.prev);
      consider(top.pos);
    }
    std::vector<TokenId> ids;
    for (int i = 0; i < n; ++i) {
      if (sym[i].len > 0) ids.push_back(sym[i].id);
    }
    return ids;
  }
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw Error(cat(path, ": is a directory; expected the path of a tokenizer.json file"));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(cat(path, ": cannot open tokenizer file"));
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) throw Error(cat(path, ": read error"));
  return from_json(buf.str(), path);
}

Tokenizer Tokenizer::from_json(std::string_view json, std::string_view origin) {
  rapidjson::Document doc;
  // Iterative parsing: deeply nested input must not exhaust the stack.
  doc.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag>(json.data(),
                                                                                    json.size());
  if (doc.HasParseError()) {
    throw Error(cat(origin, ": malformed JSON at byte ", doc.GetErrorOffset(), ": ",
                    rapidjson::GetParseError_En(doc.GetParseError())));
  }
  auto impl = std::make_unique<Impl>();
  impl->origin = std::string(origin);
  impl->byte_token.fill(-1);
  impl->load(doc);
  return Tokenizer(std::move(impl));
}

std::vector<TokenId> Tokenizer::encode(std::string_view text) const {
  if (auto bad = tok::first_invalid_utf8(text))
    throw Error(cat("Tokenizer::encode: text is not valid UTF-8 at byte ", *bad));
  const Impl& t = *impl_;
  std::vector<TokenId> ids;
  ids.reserve(text.size() / 3 + 1);
  std::unique_ptr<pcre2_match_data, PcreMatchDataDeleter> md;
  if (t.split) md.reset(pcre2_match_data_create_from_pattern(t.split.get(), nullptr));
  auto push_added = [&](TokenId id) { ids.push_back(id); };
  auto encode_normalized = [&](std::string_view piece) {
    t.pre_tokenize(piece, md.get(), [&](std::string_view word) { t.bpe(word, ids); });
  };
  auto encode_raw = [&](std::string_view piece) {
    std::string normalized;
    if (t.nfc_normalize && !is_ascii(piece)) {  // ASCII is always in NFC: skip the copy
      normalized = nfc(piece);
      piece = normalized;
    }
    Impl::split_added(t.normalized_added, piece, encode_normalized, push_added);
  };
  Impl::split_added(t.raw_added, text, encode_raw, push_added);
  return ids;
}

std::string Tokenizer::decode(std::span<const TokenId> ids, bool skip_special) const {
  std::string bytes;
  bytes.reserve(ids.size() * 4);
  for (TokenId id : ids) {
    const Impl::Entry* e = impl_->entry(id);
    if (!e) continue;  // unknown ids are skipped, as `tokenizers` does
    if (skip_special && e->special) continue;
    // ByteLevel decoder: a token whose characters are all in the byte alphabet becomes those
    // bytes; any other token (e.g. an added token with a space) is taken as its UTF-8 text.
    const size_t mark = bytes.size();
    bool mapped = true;
    const std::string_view s = e->text;
    for (size_t i = 0; i < s.size();) {
      const int32_t b = alphabet_byte(s, i);
      if (b < 0) {
        mapped = false;
        break;
      }
      bytes += static_cast<char>(b);
    }
    if (!mapped) {
      bytes.resize(mark);
      bytes += s;
    }
  }
  return tok::utf8_lossy(bytes);
}

std::optional<TokenId> Tokenizer::token_to_id(std::string_view token) const {
  if (auto it = impl_->added_by_content.find(token); it != impl_->added_by_content.end())
    return it->second;
  if (auto it = impl_->vocab.find(token); it != impl_->vocab.end()) return it->second;
  return std::nullopt;
}

std::string Tokenizer::id_to_token(TokenId id) const {
  const Impl::Entry* e = impl_->entry(id);
  return e ? e->text : std::string();
}

size_t Tokenizer::vocab_size() const { return impl_->id_slot.size(); }

bool Tokenizer::is_special(TokenId id) const {
  const Impl::Entry* e = impl_->entry(id);
  return e && e->special;
}

}  // namespace hrm
