// Tests of runtime/tokenizer: parity with the Python `tokenizers` package on every benchmark
// string and on adversarial strings (fixture from scripts/make_tokenizer_fixture.py), round
// trips, the merge formats, thread safety, and the loader's errors.
//
// Not for: speed (see `hrmbench bench tokenizer`).
#include "runtime/tokenizer.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "common/error.h"
#include "runtime/tokenizer_utf8.h"

namespace {

using hrm::TokenId;
using hrm::Tokenizer;

constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ULL;
constexpr uint64_t kFnvPrime = 0x100000001b3ULL;
constexpr size_t kFixtureVocab = 8192;      // VOCAB_SIZE in scripts/make_tokenizer_fixture.py
constexpr size_t kAdversarialStrings = 46;  // len(adversarial_strings()) in the script

// The hashes of scripts/make_tokenizer_fixture.py: FNV-1a 64 over bytes / little-endian int32.
uint64_t fnv1a(const void* data, size_t n, uint64_t h = kFnvOffset) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * kFnvPrime;
  return h;
}
uint64_t fnv1a_i32(int32_t v, uint64_t h) {
  const unsigned char le[4] = {static_cast<unsigned char>(v), static_cast<unsigned char>(v >> 8),
                               static_cast<unsigned char>(v >> 16),
                               static_cast<unsigned char>(v >> 24)};
  return fnv1a(le, sizeof le, h);
}
std::string hex64(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// tests/CMakeLists.txt sets HRM_FIXTURES and HRM_SHARED, but ctest may pass only HRM_SOURCE_DIR
// (the first entry of its ENVIRONMENT list): fall back to paths relative to the source tree.
std::string from_env(const char* name, const std::string& below_source,
                     const std::string& fallback) {
  if (const char* v = std::getenv(name)) return v;
  if (const char* src = std::getenv("HRM_SOURCE_DIR")) return std::string(src) + "/" + below_source;
  return fallback;
}
std::string fixture_dir() {
  return from_env("HRM_FIXTURES", "tests/fixtures", "tests/fixtures") + "/tokenizer";
}
std::string bench_dir() {
  return from_env("HRM_SHARED", "../shared", "../shared") + "/data/benchmarks";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw hrm::Error("cannot open " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

const Tokenizer& fixture_tokenizer() {
  static const Tokenizer tok = Tokenizer::from_file(fixture_dir() + "/tokenizer.json");
  return tok;
}

// Every string of a JSON value with its field path, depth-first in document order: the same walk
// as walk() in the fixture script.
void walk(const rapidjson::Value& v, const std::string& path,
          std::vector<std::pair<std::string, std::string>>& out) {
  if (v.IsString()) {
    out.emplace_back(path, std::string(v.GetString(), v.GetStringLength()));
  } else if (v.IsObject()) {
    for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
      const std::string key(it->name.GetString(), it->name.GetStringLength());
      walk(it->value, path.empty() ? key : path + "." + key, out);
    }
  } else if (v.IsArray()) {
    for (rapidjson::SizeType i = 0; i < v.Size(); ++i)
      walk(v[i], path + "[" + std::to_string(i) + "]", out);
  }
}

using Row = std::vector<std::pair<std::string, std::string>>;
std::vector<Row> load_jsonl(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw hrm::Error("cannot open " + path);
  std::vector<Row> rows;
  std::string line;
  while (std::getline(in, line)) {
    rapidjson::Document d;
    d.Parse(line.data(), line.size());
    if (d.HasParseError()) throw hrm::Error("bad JSON line in " + path);
    rows.emplace_back();
    walk(d, "", rows.back());
  }
  return rows;
}

std::vector<TokenId> ids_of(const rapidjson::Value& a) {
  std::vector<TokenId> ids;
  for (const auto& v : a.GetArray()) ids.push_back(v.GetInt());
  return ids;
}

TEST(Tokenizer, FixtureHasHrmSpecialTokens) {
  const Tokenizer& tok = fixture_tokenizer();
  EXPECT_EQ(tok.vocab_size(), kFixtureVocab);
  // DESIGN.md section 2: ids of the reserved tokens.
  EXPECT_EQ(tok.token_to_id("<|PAD|>"), 0);
  EXPECT_EQ(tok.token_to_id("<|endoftext|>"), 5);
  EXPECT_EQ(tok.token_to_id("<|im_start|>"), 6);
  EXPECT_EQ(tok.token_to_id("<|im_end|>"), 7);
  EXPECT_EQ(tok.token_to_id("<|box_end|>"), 11);
  EXPECT_EQ(tok.token_to_id("<|quad_end|>"), 13);
  EXPECT_TRUE(tok.is_special(6));
  EXPECT_FALSE(tok.is_special(100));
  EXPECT_EQ(tok.id_to_token(7), "<|im_end|>");
  EXPECT_EQ(tok.id_to_token(static_cast<TokenId>(kFixtureVocab)), "");
  EXPECT_FALSE(tok.token_to_id("definitely not a token").has_value());
  const std::vector<TokenId> ids = tok.encode("<|im_start|><|object_ref_start|>Hi<|im_end|>");
  ASSERT_GE(ids.size(), 4u);
  EXPECT_EQ(ids.front(), 6);
  EXPECT_EQ(ids[1], 8);
  EXPECT_EQ(ids.back(), 7);
}

// The main oracle check: every string of every benchmark file, row by row, against the hashes
// `tokenizers` produced; and decode(encode(x)) == NFC(x) for each of them.
TEST(Tokenizer, ParityWithTokenizersOnAllBenchmarkTexts) {
  const Tokenizer& tok = fixture_tokenizer();
  std::ifstream in(fixture_dir() + "/parity.txt");
  ASSERT_TRUE(in) << "missing parity.txt";
  size_t texts = 0, texts_ok = 0, roundtrip_ok = 0, rows_bad = 0;
  std::string line;
  std::vector<Row> rows;
  std::string file;
  size_t row = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    if (line.rfind("file ", 0) == 0) {
      std::string word;
      size_t n_rows = 0, n_texts = 0;
      ls >> word >> file >> n_rows >> n_texts;
      rows = load_jsonl(bench_dir() + "/" + file);
      ASSERT_EQ(rows.size(), n_rows) << file;
      row = 0;
      continue;
    }
    size_t n_texts = 0, n_ids = 0;
    std::string want_hash;
    ls >> n_texts >> n_ids >> want_hash;
    ASSERT_LT(row, rows.size()) << file;
    const Row& r = rows[row];
    ASSERT_EQ(r.size(), n_texts) << file << " row " << row;
    uint64_t h = kFnvOffset;
    size_t total = 0;
    for (const auto& [field, text] : r) {
      const std::vector<TokenId> ids = tok.encode(text);
      h = fnv1a_i32(static_cast<int32_t>(ids.size()), h);
      for (TokenId id : ids) h = fnv1a_i32(id, h);
      total += ids.size();
      if (tok.decode(ids) == hrm::nfc(text)) ++roundtrip_ok;
    }
    texts += n_texts;
    if (hex64(h) == want_hash && total == n_ids) {
      texts_ok += n_texts;
    } else if (++rows_bad <= 10) {
      ADD_FAILURE() << "mismatch with tokenizers: " << file << " row " << row << " (ids " << total
                    << " vs " << n_ids << ")";
    }
    ++row;
  }
  std::printf("tokenizer parity: %zu/%zu texts\n", texts_ok, texts);
  std::printf("tokenizer round trip decode(encode(x)) == NFC(x): %zu/%zu texts\n", roundtrip_ok,
              texts);
  EXPECT_GT(texts, 0u);
  EXPECT_EQ(texts_ok, texts);
  EXPECT_EQ(roundtrip_ok, texts);
}

TEST(Tokenizer, SamplesAndAdversarialStringsMatchTokenizers) {
  const Tokenizer& tok = fixture_tokenizer();
  std::ifstream in(fixture_dir() + "/samples.jsonl");
  ASSERT_TRUE(in);
  std::map<std::string, std::vector<Row>> files;
  std::string line;
  size_t bench = 0, text = 0, decode = 0;
  while (std::getline(in, line)) {
    rapidjson::Document d;
    d.Parse(line.data(), line.size());
    ASSERT_FALSE(d.HasParseError());
    if (!d.HasMember("kind")) continue;
    const std::string kind = d["kind"].GetString();
    if (kind == "bench") {
      const std::string file = d["file"].GetString();
      if (!files.count(file)) files[file] = load_jsonl(bench_dir() + "/" + file);
      const Row& row = files[file].at(d["row"].GetUint());
      const std::string field = d["field"].GetString();
      auto it =
          std::find_if(row.begin(), row.end(), [&](const auto& p) { return p.first == field; });
      ASSERT_NE(it, row.end()) << file << " " << field;
      const std::vector<TokenId> ids = tok.encode(it->second);
      EXPECT_EQ(ids, ids_of(d["ids"])) << file << " row " << d["row"].GetUint() << " " << field;
      const std::string dec = tok.decode(ids_of(d["ids"]));
      EXPECT_EQ(hex64(fnv1a(dec.data(), dec.size())), d["decode_hash"].GetString())
          << file << " " << field;
      ++bench;
    } else if (kind == "text") {
      const std::string s(d["text"].GetString(), d["text"].GetStringLength());
      EXPECT_EQ(tok.encode(s), ids_of(d["ids"])) << "text: " << s.substr(0, 80);
      const std::vector<TokenId> want = ids_of(d["ids"]);
      EXPECT_EQ(tok.decode(want),
                std::string(d["decode"].GetString(), d["decode"].GetStringLength()));
      EXPECT_EQ(tok.decode(want, true),
                std::string(d["decode_skip"].GetString(), d["decode_skip"].GetStringLength()));
      ++text;
    } else if (kind == "decode") {
      const std::vector<TokenId> ids = ids_of(d["ids"]);
      EXPECT_EQ(tok.decode(ids),
                std::string(d["decode"].GetString(), d["decode"].GetStringLength()));
      EXPECT_EQ(tok.decode(ids, true),
                std::string(d["decode_skip"].GetString(), d["decode_skip"].GetStringLength()));
      ++decode;
    }
  }
  std::printf("tokenizer samples: %zu benchmark, %zu adversarial, %zu decode cases\n", bench, text,
              decode);
  EXPECT_EQ(text, kAdversarialStrings);
  EXPECT_GT(bench, 0u);
  EXPECT_GT(text, 0u);
  EXPECT_GT(decode, 0u);
}

// Non-special added tokens with normalized = true (what `tokenizers` gives tokens added with
// add_tokens) are matched after NFC; the fixture has a variant of the tokenizer with three.
TEST(Tokenizer, NormalizedAddedTokensMatchTokenizers) {
  rapidjson::Document fixture;
  const std::string json = read_file(fixture_dir() + "/tokenizer.json");
  fixture.Parse(json.data(), json.size());
  ASSERT_FALSE(fixture.HasParseError());
  std::ifstream in(fixture_dir() + "/samples.jsonl");
  std::string line;
  std::optional<Tokenizer> variant;
  size_t checked = 0;
  while (std::getline(in, line)) {
    rapidjson::Document d;
    d.Parse(line.data(), line.size());
    if (!d.HasMember("kind")) continue;
    const std::string kind = d["kind"].GetString();
    if (kind == "added_variant") {
      for (auto& t : d["added_tokens"].GetArray()) {
        EXPECT_TRUE(t["normalized"].GetBool());
        fixture["added_tokens"].PushBack(rapidjson::Value(t, fixture.GetAllocator()),
                                         fixture.GetAllocator());
      }
      rapidjson::StringBuffer buf;
      rapidjson::Writer<rapidjson::StringBuffer> w(buf);
      fixture.Accept(w);
      variant.emplace(Tokenizer::from_json(buf.GetString(), "variant"));
      // token_to_id takes the content as written; id_to_token shows it normalized.
      for (auto& t : d["added_tokens"].GetArray()) {
        const std::string content = t["content"].GetString();
        EXPECT_EQ(variant->token_to_id(content), t["id"].GetInt()) << content;
        EXPECT_EQ(variant->id_to_token(t["id"].GetInt()), hrm::nfc(content));
        EXPECT_FALSE(variant->is_special(t["id"].GetInt()));
      }
    } else if (kind == "variant_text") {
      ASSERT_TRUE(variant.has_value()) << "added_variant must come first in samples.jsonl";
      const std::string text(d["text"].GetString(), d["text"].GetStringLength());
      const std::vector<TokenId> want = ids_of(d["ids"]);
      EXPECT_EQ(variant->encode(text), want) << text;
      EXPECT_EQ(variant->decode(want),
                std::string(d["decode"].GetString(), d["decode"].GetStringLength()));
      EXPECT_EQ(variant->decode(want, true),
                std::string(d["decode_skip"].GetString(), d["decode_skip"].GetStringLength()));
      ++checked;
    }
  }
  EXPECT_GT(checked, 0u);
}

// The fixture stores merges as [left, right] pairs; older files use "left right" strings.
TEST(Tokenizer, MergeStringFormEncodesLikePairForm) {
  rapidjson::Document d;
  const std::string json = read_file(fixture_dir() + "/tokenizer.json");
  d.Parse(json.data(), json.size());
  ASSERT_FALSE(d.HasParseError());
  auto& merges = d["model"]["merges"];
  ASSERT_TRUE(merges[0].IsArray());
  for (auto& m : merges.GetArray()) {
    const std::string s = std::string(m[0].GetString()) + " " + m[1].GetString();
    m.SetString(s.data(), static_cast<rapidjson::SizeType>(s.size()), d.GetAllocator());
  }
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  d.Accept(w);
  const Tokenizer strings = Tokenizer::from_json(buf.GetString());
  const Tokenizer& pairs = fixture_tokenizer();
  for (const char* s : {"Hello, World! It's 3.14159.", "  whitespace   runs\r\n\n",
                        "Ünïcödé 日本語 👍🏽", "<|im_start|>user\nx<|im_end|>"}) {
    EXPECT_EQ(strings.encode(s), pairs.encode(s)) << s;
  }
}

// Threads share one Tokenizer whose word cache starts empty, so they fill and grow the cache
// tables at the same time; every result must equal the serial one.
TEST(Tokenizer, ConcurrentEncodesMatchSerial) {
  constexpr size_t kRows = 3000;  // MMLU rows: enough distinct words to grow the cache tables
  std::vector<std::string> texts;
  for (const Row& row : load_jsonl(bench_dir() + "/mmlu/test.jsonl")) {
    for (const auto& field : row) texts.push_back(field.second);
    if (texts.size() >= kRows) break;
  }
  ASSERT_GE(texts.size(), kRows);
  std::vector<std::vector<TokenId>> want;
  for (const auto& t : texts) want.push_back(fixture_tokenizer().encode(t));
  const Tokenizer fresh = Tokenizer::from_file(fixture_dir() + "/tokenizer.json");
  constexpr int kThreads = 4;
  std::vector<int> bad(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Each thread walks the texts from a different starting point.
      for (size_t k = 0; k < texts.size(); ++k) {
        const size_t i = (k + static_cast<size_t>(t) * texts.size() / kThreads) % texts.size();
        bad[t] += fresh.encode(texts[i]) != want[i];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(bad[t], 0) << "thread " << t;
}

TEST(Tokenizer, LongWhitespaceRunsEncodeAndRoundTrip) {
  const Tokenizer& tok = fixture_tokenizer();
  const std::string s = "a" + std::string(200000, ' ') + "b" + std::string(100000, '\n');
  EXPECT_EQ(tok.decode(tok.encode(s)), s);
}

TEST(Tokenizer, EncodeRefusesInvalidUtf8) {
  EXPECT_THROW(fixture_tokenizer().encode("ok \xC3\x28 bad"), hrm::Error);
}

TEST(Tokenizer, Utf8LossyReplacesMaximalSubparts) {
  using hrm::tok::utf8_lossy;
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(utf8_lossy("abc"), "abc");
  EXPECT_EQ(utf8_lossy("\xE2\x82"), r);              // truncated 3-byte sequence: one U+FFFD
  EXPECT_EQ(utf8_lossy("\xF0\x80\x80"), r + r + r);  // F0 80 is never valid: three
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), r + r + r);  // a surrogate: three
  EXPECT_EQ(utf8_lossy("a\xFFz\xE2\x82\xAC"), "a" + r + "z\xE2\x82\xAC");
  EXPECT_EQ(hrm::tok::first_invalid_utf8("ab\xC0\x80"), 2u);
  EXPECT_FALSE(hrm::tok::first_invalid_utf8("\xF4\x8F\xBF\xBF").has_value());
}

TEST(Tokenizer, NfcComposes) {
  EXPECT_EQ(hrm::nfc("cafe\xCC\x81"), "caf\xC3\xA9");
  EXPECT_EQ(hrm::nfc("plain"), "plain");
}

// A tiny tokenizer written by hand, for the error paths and BPE options.
std::string tiny(const std::string& vocab, const std::string& merges,
                 const std::string& extra_model = "", const std::string& added = "[]",
                 const std::string& normalizer = R"({"type":"NFC"})") {
  return R"({"version":"1.0","truncation":null,"padding":null,"added_tokens":)" + added +
         R"(,"normalizer":)" + normalizer +
         R"(,"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},)"
         R"("post_processor":null,"decoder":{"type":"ByteLevel"},"model":{"type":"BPE")" +
         extra_model + R"(,"vocab":)" + vocab + R"(,"merges":)" + merges + "}}";
}

std::string error_of(const std::string& json) {
  try {
    Tokenizer::from_json(json, "t.json");
  } catch (const hrm::Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Tokenizer, BpeAppliesLowestRankFirst) {
  // "abc": merges rank 0 = (b,c), rank 1 = (a,b). Lowest rank first gives a + bc, not ab + c.
  const std::string vocab = R"({"a":0,"b":1,"c":2,"ab":3,"bc":4,"abc":5,"Ġ":6})";
  const Tokenizer t = Tokenizer::from_json(tiny(vocab, R"([["b","c"],["a","b"]])"));
  EXPECT_EQ(t.encode("abc"), (std::vector<TokenId>{0, 4}));
  EXPECT_EQ(t.encode("ab"), (std::vector<TokenId>{3}));
  // With ignore_merges, a word that is in the vocabulary is taken whole.
  const Tokenizer whole =
      Tokenizer::from_json(tiny(vocab, R"([["b","c"],["a","b"]])", R"(,"ignore_merges":true)"));
  EXPECT_EQ(whole.encode("abc"), (std::vector<TokenId>{5}));
  // Bytes outside the vocabulary are dropped without unk_token, and become unk with one.
  EXPECT_EQ(t.encode("axa"), (std::vector<TokenId>{0, 0}));
  const Tokenizer with_unk =
      Tokenizer::from_json(tiny(vocab, "[]", R"(,"unk_token":"c","fuse_unk":true)"));
  EXPECT_EQ(with_unk.encode("axxa"), (std::vector<TokenId>{0, 2, 0}));
  EXPECT_EQ(t.decode(std::vector<TokenId>{0, 4, 6, 99}), "abc ");
}

TEST(Tokenizer, ErrorsNameFileAndField) {
  EXPECT_THROW(Tokenizer::from_file("/nonexistent/tokenizer.json"), hrm::Error);
  try {
    Tokenizer::from_file("/nonexistent/tokenizer.json");
  } catch (const hrm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/tokenizer.json"), std::string::npos);
  }
  try {
    Tokenizer::from_file(fixture_dir());
    ADD_FAILURE() << "a directory loaded as a tokenizer";
  } catch (const hrm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos) << e.what();
  }
  const std::string vocab = R"({"a":0,"b":1,"ab":2})";
  EXPECT_NE(error_of(R"({"model": )").find("t.json: malformed JSON at byte 10"), std::string::npos)
      << error_of(R"({"model": )");
  const std::string no_vocab = tiny(vocab, "[]");
  std::string missing = no_vocab;
  missing.replace(missing.find(R"("vocab")"), 7, R"("vocob")");
  EXPECT_NE(error_of(missing).find("t.json: model: missing field 'vocab'"), std::string::npos)
      << error_of(missing);
  EXPECT_NE(
      error_of(tiny(vocab, R"(["a z"])")).find("model.merges[0]: token 'z' is not in model.vocab"),
      std::string::npos)
      << error_of(tiny(vocab, R"(["a z"])"));
  EXPECT_NE(error_of(tiny(vocab, R"([["a","a"]])")).find("token 'aa' is not in model.vocab"),
            std::string::npos);
  EXPECT_NE(error_of(tiny(R"({"a":0,"b":0})", "[]")).find("duplicate id 0"), std::string::npos)
      << error_of(tiny(R"({"a":0,"b":0})", "[]"));
  EXPECT_NE(error_of(tiny(vocab, "[]", "", R"([{"id":2,"content":"<x>","special":true}])"))
                .find("duplicate id 2"),
            std::string::npos);
  EXPECT_NE(error_of(tiny(vocab, "[]", "", R"([{"id":5,"content":"<x>","lstrip":true}])"))
                .find("added_tokens[0].lstrip = true is not supported"),
            std::string::npos);
  EXPECT_NE(error_of(tiny(vocab, "[]", "", "[]", R"({"type":"NFKC"})"))
                .find("normalizer.type 'NFKC' is not supported"),
            std::string::npos);
  EXPECT_NE(error_of(tiny(vocab, "[]", R"(,"dropout":0.1)")).find("model.dropout"),
            std::string::npos);
  EXPECT_NE(error_of(tiny(vocab, "[]", R"(,"byte_fallback":true)")).find("model.byte_fallback"),
            std::string::npos);
  // Post-processors never change encode()'s ids: the known ones load, others are refused.
  std::string post = tiny(vocab, "[]");
  post.replace(
      post.find(R"("post_processor":null)"), 21,
      R"("post_processor":{"type":"Sequence","processors":[{"type":"ByteLevel"},{"type":"TemplateProcessing"}]})");
  EXPECT_EQ(error_of(post), "(no error)");
  post.replace(post.find(R"({"type":"TemplateProcessing"})"), 29, R"({"type":"BertProcessing"})");
  EXPECT_NE(
      error_of(post).find("post_processor.processors[1].type 'BertProcessing' is not supported"),
      std::string::npos)
      << error_of(post);
  std::string word_piece = tiny(vocab, "[]");
  word_piece.replace(word_piece.find(R"("BPE")"), 5, R"("WordPiece")");
  EXPECT_NE(error_of(word_piece).find("model.type 'WordPiece' is not supported"),
            std::string::npos);
  EXPECT_NE(error_of(tiny(R"({"a":-1})", "[]")).find("vocab['a']: expected a token id"),
            std::string::npos);
  std::string bad_regex =
      R"({"version":"1.0","model":{"type":"BPE","vocab":{},"merges":[]},"decoder":{"type":"ByteLevel"},)"
      R"("pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"(("},)"
      R"("behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"use_regex":false}]}})";
  EXPECT_NE(error_of(bad_regex).find("pretokenizers[0].pattern.Regex: regex does not compile"),
            std::string::npos)
      << error_of(bad_regex);
}

}  // namespace

namespace {

// Runs the built hrmbench with `args`: exit status and stdout (with stderr after it if asked).
std::pair<int, std::string> run_cli(const std::string& args, bool with_stderr = false) {
  const char* bin = std::getenv("HRM_BINARY");
  if (!bin) return {-1, "HRM_BINARY not set"};
  FILE* p = popen(
      (std::string(bin) + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null")).c_str(), "r");
  if (!p) return {-1, "popen failed"};
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(TokenizerCli, TokenizeAndDecodeAgreeWithTheLibrary) {
  const std::string tok_path = fixture_dir() + "/tokenizer.json";
  const std::string text = "<|im_start|>Hi there, it's 42!<|im_end|>";
  const std::vector<TokenId> ids = fixture_tokenizer().encode(text);
  std::string joined;
  for (TokenId id : ids) {
    if (!joined.empty()) joined += ',';
    joined += std::to_string(id);
  }

  auto [status, out] =
      run_cli("tokenize --tokenizer " + tok_path + " --text \"" + text + "\" --ids");
  ASSERT_EQ(status, 0) << out;
  EXPECT_EQ(out.substr(0, out.find('\n')), joined);

  std::tie(status, out) = run_cli("tokenize --tokenizer " + tok_path + " --decode " + joined);
  ASSERT_EQ(status, 0) << out;
  EXPECT_EQ(out, text + "\n");
  std::tie(status, out) =
      run_cli("tokenize --tokenizer " + tok_path + " --decode " + joined + " --skip-special");
  EXPECT_EQ(out, "Hi there, it's 42!\n");

  std::tie(status, out) = run_cli("tokenize --tokenizer " + tok_path, true);
  EXPECT_EQ(status, 1);
  EXPECT_NE(out.find("give one of --text, --file or --decode"), std::string::npos) << out;
  std::tie(status, out) = run_cli("tokenize --tokenizer /nonexistent.json --text x", true);
  EXPECT_EQ(status, 1);
  EXPECT_NE(out.find("/nonexistent.json: cannot open tokenizer file"), std::string::npos) << out;
}

TEST(TokenizerCli, BenchCountsEveryStringOfTheData) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("hrm_tok_bench_" + std::to_string(::getpid()));
  fs::create_directories(dir / "suite");
  {
    std::ofstream f(dir / "suite" / "x.jsonl");
    f << R"({"question": "What is 2+2?", "choices": ["3", "4"], "answer": 1})"
      << "\n"
      << R"({"question": "Name a colour.", "choices": {"text": ["red"]}})"
      << "\n";
  }
  auto [status, out] = run_cli("bench tokenizer --tokenizer " + fixture_dir() +
                               "/tokenizer.json --data " + dir.string() + " --passes 1");
  fs::remove_all(dir);
  ASSERT_EQ(status, 0) << out;
  EXPECT_NE(out.find(": 5 texts, "), std::string::npos) << out;
  size_t tokens = 0;
  for (const char* s : {"What is 2+2?", "3", "4", "Name a colour.", "red"})
    tokens += fixture_tokenizer().encode(s).size();
  EXPECT_NE(out.find("1 thread: " + std::to_string(tokens) + " tokens"), std::string::npos) << out;
}

}  // namespace
