// Corpus readers: .npy headers (v1/v2/v3, errors), tokenized directories (memory-mapped, pair
// concatenation, consistency errors), JSONL and text sources, and word mode.
#include <cstring>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "common/error.h"
#include "ngram/contam.h"
#include "runtime/data.h"
#include "tests/runtime/test_util.h"
#include "tests/ngram/npy_writer.h"

namespace hrm::ngram {
namespace {

namespace fs = std::filesystem;
using namespace testing_util;

void write_dir(const fs::path& d, const std::vector<uint32_t>& tokens, const Pairs& p, const std::string& descr = "<u4") {
  write_tokenized_dir(d, tokens, p, descr);
}

fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("hrm_ngram_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::vector<std::pair<uint64_t, std::vector<Token>>> read_all(const CorpusSource& s) {
  std::vector<std::pair<uint64_t, std::vector<Token>>> out;
  s.read(0, s.num_documents(), [&](uint64_t d, std::span<const Token> t) { out.push_back({d, {t.begin(), t.end()}}); });
  return out;
}

TEST(NpyHeader, ParsesVersions123) {
  for (int major : {1, 2, 3}) {
    const auto b = npy_bytes(major, "{'descr': '<u4', 'fortran_order': False, 'shape': (7,), }");
    const NpyHeader h = parse_npy_header(b, "t.npy");
    EXPECT_EQ(h.descr, "<u4");
    EXPECT_FALSE(h.fortran_order);
    EXPECT_EQ(h.shape, std::vector<uint64_t>{7});
    EXPECT_EQ(h.data_offset, b.size());
    EXPECT_EQ(h.data_offset % 64, 0u);
  }
  const auto b = npy_bytes(1, "{\"shape\": (2, 3), \"fortran_order\": True, \"descr\": \"<i8\"}");
  const NpyHeader h = parse_npy_header(b, "t.npy");
  EXPECT_EQ(h.shape, (std::vector<uint64_t>{2, 3}));
  EXPECT_TRUE(h.fortran_order);
  EXPECT_TRUE(parse_npy_header(npy_bytes(1, "{'descr': '<i8', 'fortran_order': False, 'shape': ()}"), "t").shape.empty());
}

// The fuzz seeds were written by numpy itself (np.lib.format.write_array, versions 1-3).
TEST(NpyHeader, ParsesFilesWrittenByNumpy) {
  const char* src = std::getenv("HRM_SOURCE_DIR");
  ASSERT_NE(src, nullptr) << "HRM_SOURCE_DIR not set (tests/CMakeLists.txt sets it)";
  const fs::path dir = fs::path(src) / "tests/fuzz/corpus/fuzz_npy_header";
  const auto header_of = [&](const char* name) {
    std::ifstream in(dir / name, std::ios::binary);
    std::vector<uint8_t> b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    NpyHeader h = parse_npy_header(b, name);
    EXPECT_LE(h.data_offset, b.size());
    return std::make_pair(h, b.size() - h.data_offset);
  };
  auto [h1, n1] = header_of("v1_u4");
  EXPECT_EQ(h1.descr, "<u4");
  EXPECT_EQ(h1.shape, std::vector<uint64_t>{3});
  EXPECT_EQ(n1, 12u);
  auto [h2, n2] = header_of("v2_i8");
  EXPECT_EQ(h2.descr, "<i8");
  EXPECT_EQ(n2, 16u);
  auto [h3, n3] = header_of("v3_i4");
  EXPECT_EQ(h3.descr, "<i4");
  EXPECT_EQ(n3, 8u);
  EXPECT_EQ(header_of("v1_2d").first.shape, (std::vector<uint64_t>{2, 2}));
}

TEST(NpyHeader, RejectsMalformedHeadersWithTheFileName) {
  const std::vector<std::string> bad = {
      "{'descr': '<u4', 'fortran_order': False}",                           // no shape
      "{'descr': '<u4', 'fortran_order': Nope, 'shape': (1,)}",             // not a bool
      "{'descr': '<u4', 'fortran_order': False, 'shape': (1,), 'x': 1}",   // unknown key
      "{'descr': '<u4', 'descr': '<u4', 'fortran_order': False, 'shape': (1,)}",
      "{'descr': '<u4, 'fortran_order': False, 'shape': (1,)}",             // broken quote
      "{'descr': '<u4', 'fortran_order': False, 'shape': (-1,)}",
      "{'descr': '<u4', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
      "{'descr': '<u4', 'fortran_order': False, 'shape': (1,)} junk",
  };
  for (const auto& d : bad) {
    try {
      parse_npy_header(npy_bytes(1, d), "bad.npy");
      ADD_FAILURE() << "accepted " << d;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("bad.npy"), std::string::npos) << e.what();
    }
  }
  auto b = npy_bytes(1, "{'descr': '<u4', 'fortran_order': False, 'shape': (1,)}");
  EXPECT_THROW(parse_npy_header(std::span(b).first(20), "t"), Error);  // truncated header
  b[6] = 4;
  EXPECT_THROW(parse_npy_header(b, "t"), Error);  // version 4
  b[0] = 'X';
  EXPECT_THROW(parse_npy_header(b, "t"), Error);  // magic
}

TEST(TokenizedDir, ReadsPairsAsOneDocumentEach) {
  const fs::path d = temp_dir("dir");
  // Pair 0 contiguous; pair 1 has its response stored before its instruction.
  write_dir(d, {1, 2, 3, 4, 5, 6, 7, 8, 9}, {{0, 7}, {2, 2}, {2, 4}, {3, 3}});
  const auto src = open_tokenized_dir(d);
  ASSERT_EQ(src->num_documents(), 2u);
  const auto docs = read_all(*src);
  EXPECT_EQ(docs[0].second, (std::vector<Token>{1, 2, 3, 4, 5}));
  EXPECT_EQ(docs[1].second, (std::vector<Token>{8, 9, 5, 6, 7}));
  write_dir(d, {1, 2, 3}, {{0}, {1}, {1}, {2}}, "<i4");
  EXPECT_EQ(read_all(*open_tokenized_dir(d))[0].second, (std::vector<Token>{1, 2, 3}));
  // open_corpus finds tokenized dirs below a root, in sorted order.
  const fs::path root = temp_dir("root");
  fs::create_directories(root / "b");
  fs::create_directories(root / "a");
  write_dir(root / "b", {1, 2}, {{0}, {1}, {1}, {1}});
  write_dir(root / "a", {3, 4, 5}, {{0}, {1}, {1}, {2}});
  const auto srcs = open_corpus(root, {}, false, {});
  ASSERT_EQ(srcs.size(), 2u);
  EXPECT_EQ(read_all(*srcs[0])[0].second, (std::vector<Token>{3, 4, 5}));
  fs::remove_all(d);
  fs::remove_all(root);
}

TEST(TokenizedDir, ReadsTheReferencesPreparedLayoutThroughEpoch0) {
  // The fixture was written by scripts/make_prepared_fixture.py (the reference's writer re-implemented
  // with numpy); the trainer's reader (runtime/data.h) gives the samples to compare with.
  const fs::path dir = test::fixtures() / "train" / "prepared";
  const TrainCorpus corpus = load_tokenized_corpus(dir);
  const auto order = corpus.epoch_order(0);
  const auto srcs = open_corpus(dir, {}, false, {});
  ASSERT_EQ(srcs.size(), 1u);
  const auto docs = read_all(*srcs[0]);
  ASSERT_EQ(docs.size(), static_cast<size_t>(corpus.size()));
  for (size_t d = 0; d < docs.size(); ++d) {
    std::vector<Token> want;
    for (const TokenId t : corpus.instruction(order[d])) want.push_back(static_cast<Token>(t));
    for (const TokenId t : corpus.response(order[d])) want.push_back(static_cast<Token>(t));
    EXPECT_EQ(docs[d].second, want) << "document " << d;
  }
}

TEST(TokenizedDir, StreamModeLetsNgramsCrossPairsAndChunks) {
  const fs::path d = temp_dir("stream");
  std::vector<uint32_t> tokens(23);
  for (uint32_t i = 0; i < tokens.size(); ++i) tokens[i] = i;
  // Pairs cut the stream at 4 and 9; a 5-gram spanning a cut matches only in stream mode.
  write_dir(d, tokens, {{0, 9}, {2, 5}, {2, 14}, {2, 9}});
  const std::vector<std::vector<Token>> samples = {{2, 3, 4, 5, 6}, {17, 18, 19, 20, 21}};
  NgramIndex index(samples, {.n = 5});
  std::vector<std::unique_ptr<CorpusSource>> pairs;
  pairs.push_back(open_tokenized_dir(d));
  EXPECT_EQ(sample_stats(index, scan(index, pairs))[0].matches, 0u);
  for (size_t chunk : {1u, 3u, 4u, 100u}) {
    std::vector<std::unique_ptr<CorpusSource>> stream;
    stream.push_back(open_tokenized_stream(d, 5, chunk));
    const ScanState st = scan(index, stream, {.threads = 2});
    const auto stats = sample_stats(index, st);
    EXPECT_EQ(stats[0].matches, 1u) << "chunk " << chunk;
    EXPECT_EQ(stats[1].matches, 1u) << "chunk " << chunk;
    // Every window of the stream is seen exactly once, however it is chunked.
    uint64_t windows = 0;
    stream[0]->read(0, stream[0]->num_documents(), [&](uint64_t, std::span<const Token> t) { windows += t.size() - 4; });
    EXPECT_EQ(windows, tokens.size() - 4) << "chunk " << chunk;
  }
  fs::remove_all(d);
}

TEST(TokenizedDir, InconsistentFilesGiveClearErrors) {
  const fs::path d = temp_dir("bad");
  const auto expect_error = [&](const std::string& needle) {
    try {
      open_tokenized_dir(d);
      ADD_FAILURE() << "no error, expected one mentioning " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  write_dir(d, {1, 2, 3}, {{0}, {2}, {2}, {5}});
  expect_error("do not fit in the 3 tokens");
  write_dir(d, {1, 2, 3}, {{0, 1}, {2}, {2}, {1}});
  expect_error("inst_len.npy has 1 rows");
  write_dir(d, {1, 2, 3}, {{0}, {1}, {-1}, {1}});
  expect_error("resp_start.npy = -1");
  write_dir(d, {1, 2, 3}, {{0}, {1}, {1}, {1}}, "<f4");
  expect_error("dtype '<f4'");
  // Shape larger than the data present.
  write_dir(d, {1, 2, 3}, {{0}, {1}, {1}, {1}});
  const auto b = npy_bytes(1, "{'descr': '<u4', 'fortran_order': False, 'shape': (100,), }");
  std::ofstream(d / "tokens.npy", std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  expect_error("shape (100,) needs 100 x 4 bytes");
  write_dir(d, {1, 2, 3}, {{0}, {1}, {1}, {1}});
  fs::remove(d / "inst_len.npy");
  expect_error("inst_len.npy: cannot open");
  fs::remove_all(d);
}

TEST(Words, LowercaseStripPunctuationSplitOnWhitespace) {
  EXPECT_EQ(split_words("Hello, World! It's 3.14\n\tOK?"),
            (std::vector<std::string>{"hello", "world", "its", "314", "ok"}));
  EXPECT_TRUE(split_words(" ... !! ").empty());
  WordVocab v;
  EXPECT_EQ(v.add_text("a b A c"), (std::vector<Token>{1, 2, 1, 3}));
  EXPECT_EQ(v.encode("C, z a"), (std::vector<Token>{3, WordVocab::kUnknownWord, 1}));
}

TEST(JsonlCorpus, ConcatenatesFieldsAndNamesBadLines) {
  const fs::path d = temp_dir("jsonl");
  WordVocab v;
  v.add_text("one two three four");
  const TextTokenizer tok = [&v](std::string_view t) { return v.encode(t); };
  std::ofstream(d / "c.jsonl") << R"({"instruction": "One two", "response": "three", "condition": "x"})" << "\n\n"
                               << R"({"instruction": "four", "response": ""})" << "\n";
  const auto src = open_corpus(d / "c.jsonl", {"instruction", "response"}, false, tok);
  ASSERT_EQ(src.size(), 1u);
  const auto docs = read_all(*src[0]);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].second, (std::vector<Token>{1, 2, 3}));
  EXPECT_EQ(docs[1].second, (std::vector<Token>{4}));
  std::ofstream(d / "bad.jsonl") << R"({"instruction": "x", "response": "y"})" << "\n" << R"({"instruction": "x"})" << "\n";
  try {
    read_all(*open_jsonl(d / "bad.jsonl", {"instruction", "response"}, tok));
    ADD_FAILURE() << "missing field accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2: missing field \"response\""), std::string::npos) << e.what();
  }
  EXPECT_THROW(open_jsonl(d / "c.jsonl", {"instruction"}, {}), Error);  // no tokenizer
  fs::remove_all(d);
}

TEST(TextCorpus, PerFileAndPerLine) {
  const fs::path d = temp_dir("text");
  WordVocab v;
  v.add_text("alpha beta gamma");
  const TextTokenizer tok = [&v](std::string_view t) { return v.encode(t); };
  std::ofstream(d / "t.txt") << "alpha beta\n\ngamma\n";
  EXPECT_EQ(read_all(*open_corpus(d / "t.txt", {}, false, tok)[0]).size(), 1u);
  const auto lines = read_all(*open_corpus(d / "t.txt", {}, true, tok)[0]);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1].second, (std::vector<Token>{3}));
  EXPECT_THROW(open_corpus(d / "missing.txt", {}, false, tok), Error);
  EXPECT_THROW(open_corpus(d, {}, false, tok), Error);  // no tokens.npy below
  fs::remove_all(d);
}

}  // namespace
}  // namespace hrm::ngram
