// Memory-mapped tokenized corpora: the mapped view equals the in-memory corpus it was written from for
// every token dtype (<u4/<i4/<u2/<i2) and index dtype (<i8/<i4), a root of several directories maps
// each, loading touches no token page, and bad files are rejected with errors naming file and sample.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <random>

#include <unistd.h>

#include "common/error.h"
#include "common/npy.h"
#include "runtime/data.h"
#include "test_util.h"

namespace hrm {
namespace {

namespace fs = std::filesystem;

constexpr const char* kIndexFiles[] = {"inst_start.npy", "inst_len.npy", "resp_start.npy", "resp_len.npy"};

fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("hrm_data_mmap_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// A corpus laid out the way the pipeline may write it: random lengths, ids below `max_id`, and a gap
// of unused tokens after every instruction. `flat` gets the token array, `index` the four index arrays.
struct Layout {
  std::vector<int64_t> flat;
  std::vector<int64_t> index[4];
};

TrainCorpus random_corpus(int n, int64_t max_id, uint64_t seed, Layout* layout) {
  std::mt19937_64 rng(seed);
  TrainCorpus c;
  for (int i = 0; i < n; ++i) {
    std::vector<TokenId> inst(1 + rng() % 9), resp(1 + rng() % 7);
    for (auto& t : inst) t = static_cast<TokenId>(rng() % max_id);
    for (auto& t : resp) t = static_cast<TokenId>(rng() % max_id);
    c.add(inst, resp);
    layout->index[0].push_back(static_cast<int64_t>(layout->flat.size()));
    layout->index[1].push_back(static_cast<int64_t>(inst.size()));
    layout->flat.insert(layout->flat.end(), inst.begin(), inst.end());
    layout->flat.push_back(0);  // a gap: only the index arrays define samples
    layout->index[2].push_back(static_cast<int64_t>(layout->flat.size()));
    layout->index[3].push_back(static_cast<int64_t>(resp.size()));
    layout->flat.insert(layout->flat.end(), resp.begin(), resp.end());
  }
  return c;
}

void write_layout(const fs::path& dir, const Layout& l, const std::string& token_dtype,
                  const std::string& index_dtype) {
  fs::create_directories(dir);
  write_npy_1d(dir / "tokens.npy", l.flat, token_dtype);
  for (int k = 0; k < 4; ++k) write_npy_1d(dir / kIndexFiles[k], l.index[k], index_dtype);
}

void expect_same_samples(const TrainCorpus& a, const TrainCorpus& b, int64_t offset, const std::string& what) {
  for (int64_t i = 0; i < b.size(); ++i) {
    ASSERT_EQ(a.instruction(offset + i), b.instruction(i)) << what << " sample " << i;
    ASSERT_EQ(a.response(offset + i), b.response(i)) << what << " sample " << i;
    ASSERT_EQ(a.packed_length(offset + i), b.packed_length(i)) << what << " sample " << i;
  }
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(DataMmap, EqualsInMemoryCorpusForEveryDtype) {
  const fs::path d = temp_dir("dtypes");
  for (const char* tdt : {"<u4", "<i4", "<u2", "<i2"}) {
    for (const char* idt : {"<i8", "<i4"}) {
      Layout l;
      // <i2 holds ids up to 32767, <u2 up to 65535: use the top of each range.
      const int64_t max_id = std::string(tdt) == "<i2" ? 32768 : std::string(tdt) == "<u2" ? 65536 : 70000;
      const TrainCorpus mem = random_corpus(50, max_id, 3, &l);
      const fs::path dir = d / (std::string(tdt + 1) + "_" + (idt + 1));
      write_layout(dir, l, tdt, idt);
      const TrainCorpus mapped = load_tokenized_corpus(dir);
      const std::string what = std::string(tdt) + "/" + idt;
      ASSERT_EQ(mapped.size(), mem.size()) << what;
      EXPECT_EQ(mapped.num_tokens(), static_cast<int64_t>(l.flat.size())) << what;
      EXPECT_EQ(mapped.max_token_id(), *std::max_element(l.flat.begin(), l.flat.end())) << what;
      expect_same_samples(mapped, mem, 0, what);
      EXPECT_NO_THROW(mapped.validate("x", max_id)) << what;
    }
  }
  fs::remove_all(d);
}

TEST(DataMmap, RootOfDirectoriesMapsEachPartInNameOrder) {
  const fs::path d = temp_dir("root");
  Layout la, lb, lc;
  const TrainCorpus a = random_corpus(7, 300, 1, &la), b = random_corpus(11, 300, 2, &lb),
                    c = random_corpus(5, 300, 3, &lc);
  write_layout(d / "p2", lc, "<u2", "<i4");  // written first, read last: name order decides
  write_layout(d / "p0", la, "<u4", "<i8");
  write_layout(d / "p1", lb, "<i2", "<i8");
  fs::create_directories(d / "not_a_part");  // no tokens.npy: ignored
  TrainCorpus all = load_tokenized_corpus(d);
  ASSERT_EQ(all.size(), 23);
  EXPECT_EQ(all.num_tokens(), static_cast<int64_t>(la.flat.size() + lb.flat.size() + lc.flat.size()));
  expect_same_samples(all, a, 0, "p0");
  expect_same_samples(all, b, 7, "p1");
  expect_same_samples(all, c, 18, "p2");
  // Samples added in memory after mapped parts form a part of their own.
  all.add(std::vector<TokenId>{5, 6}, std::vector<TokenId>{7});
  ASSERT_EQ(all.size(), 24);
  EXPECT_EQ(all.instruction(23), (std::vector<TokenId>{5, 6}));
  EXPECT_EQ(all.response(22), c.response(4));
  // Written back as one directory, the parts are concatenated with their spans shifted.
  write_tokenized_corpus(d / "out", all);
  const TrainCorpus back = load_tokenized_corpus(d / "out");
  expect_same_samples(back, all, 0, "written back");
  fs::remove_all(d);
}

TEST(DataMmap, NpyWriterIsLittleEndianPerDtype) {
  const fs::path d = temp_dir("endian");
  auto data_bytes = [&](const std::vector<int64_t>& v, const std::string& dtype) {
    write_npy_1d(d / "a.npy", v, dtype);
    const std::string s = test::read_text(d / "a.npy");
    const auto bytes = std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    return s.substr(parse_npy_header(bytes, "a.npy").data_offset);
  };
  EXPECT_EQ(data_bytes({1, 258}, "<u2"), std::string("\x01\x00\x02\x01", 4));
  EXPECT_EQ(data_bytes({-2}, "<i2"), std::string("\xfe\xff", 2));
  EXPECT_EQ(data_bytes({-2}, "<i4"), std::string("\xfe\xff\xff\xff", 4));
  EXPECT_THROW(write_npy_1d(d / "a.npy", std::vector<int64_t>{65536}, "<u2"), Error);
  EXPECT_THROW(write_npy_1d(d / "a.npy", std::vector<int64_t>{-32769}, "<i2"), Error);
  EXPECT_THROW(write_npy_1d(d / "a.npy", std::vector<int64_t>{1}, "<f4"), Error);
  fs::remove_all(d);
}

TEST(DataMmap, LoadingReadsNoTokenPage) {
  // A 256 MiB tokens.npy (sparse: its pages cost nothing until touched) with 2 samples: loading maps
  // it and reads the index arrays; resident memory must not grow by anything like the file.
  const fs::path d = temp_dir("lazy");
  constexpr int64_t kTokens = int64_t{64} << 20;
  {
    const std::string n = std::to_string(kTokens);
    std::string header = "{'descr': '<u4', 'fortran_order': False, 'shape': (" + n + ",), }";
    header.append(128 - 10 - 1 - header.size(), ' ');
    header += '\n';
    std::ofstream out(d / "tokens.npy", std::ios::binary);
    out << std::string("\x93NUMPY\x01\x00", 8) << static_cast<char>(header.size()) << '\0' << header;
  }
  fs::resize_file(d / "tokens.npy", 128 + 4 * kTokens);
  write_npy_1d(d / "inst_start.npy", std::vector<int64_t>{0, kTokens - 2}, "<i8");
  write_npy_1d(d / "inst_len.npy", std::vector<int64_t>{1, 1}, "<i8");
  write_npy_1d(d / "resp_start.npy", std::vector<int64_t>{1, kTokens - 1}, "<i8");
  write_npy_1d(d / "resp_len.npy", std::vector<int64_t>{1, 1}, "<i8");
  auto resident_bytes = [] {
    long pages = 0, rss = 0;
    FILE* f = std::fopen("/proc/self/statm", "r");
    if (!f || std::fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = -1;
    if (f) std::fclose(f);
    return static_cast<int64_t>(rss) * ::sysconf(_SC_PAGESIZE);
  };
  const int64_t before = resident_bytes();
  const TrainCorpus c = load_tokenized_corpus(d);
  const int64_t grown = resident_bytes() - before;
  ASSERT_GE(before, 0) << "no /proc/self/statm";
  EXPECT_LT(grown, int64_t{16} << 20) << "loading made " << grown << " bytes resident";
  EXPECT_EQ(c.num_tokens(), kTokens);
  EXPECT_EQ(c.response(1), std::vector<TokenId>{0});
  fs::remove_all(d);
}

TEST(DataMmap, RejectsBadDtypesNamingTheFile) {
  const fs::path d = temp_dir("dtype");
  Layout l;
  random_corpus(4, 100, 1, &l);
  write_layout(d, l, "<i8", "<i8");  // 64-bit tokens are not a pipeline dtype
  std::string e = error_of([&] { load_tokenized_corpus(d); });
  EXPECT_NE(e.find((d / "tokens.npy").string()), std::string::npos) << e;
  EXPECT_NE(e.find("unsupported dtype '<i8'"), std::string::npos) << e;

  write_layout(d, l, "<u4", "<i8");
  write_npy_1d(d / "resp_len.npy", l.index[3], "<u2");  // index arrays must be <i8 or <i4
  e = error_of([&] { load_tokenized_corpus(d); });
  EXPECT_NE(e.find((d / "resp_len.npy").string()), std::string::npos) << e;
  EXPECT_NE(e.find("expected <i4, <i8"), std::string::npos) << e;

  // A float array with the right shape: same header length, other dtype.
  write_npy_1d(d / "resp_len.npy", l.index[3], "<i4");
  std::string bytes = test::read_text(d / "resp_len.npy");
  bytes.replace(bytes.find("<i4"), 3, "<f4");
  std::ofstream(d / "resp_len.npy", std::ios::binary) << bytes;
  e = error_of([&] { load_tokenized_corpus(d); });
  EXPECT_NE(e.find("resp_len.npy: unsupported dtype '<f4'"), std::string::npos) << e;
  fs::remove_all(d);
}

TEST(DataMmap, RejectsTruncatedFilesNamingThem) {
  const fs::path d = temp_dir("trunc");
  Layout l;
  random_corpus(6, 100, 2, &l);
  for (const char* f : {"tokens.npy", "inst_len.npy"}) {
    write_layout(d, l, "<u2", "<i8");
    fs::resize_file(d / f, fs::file_size(d / f) - 1);
    const std::string e = error_of([&] { load_tokenized_corpus(d); });
    EXPECT_NE(e.find((d / f).string()), std::string::npos) << e;
    EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  }
  write_layout(d, l, "<u2", "<i8");
  fs::resize_file(d / "inst_start.npy", 20);  // inside the header
  EXPECT_NE(error_of([&] { load_tokenized_corpus(d); }).find("inst_start.npy"), std::string::npos);
  std::ofstream(d / "inst_start.npy", std::ios::trunc);  // empty
  EXPECT_NE(error_of([&] { load_tokenized_corpus(d); }).find("inst_start.npy"), std::string::npos);
  fs::remove(d / "inst_start.npy");
  EXPECT_NE(error_of([&] { load_tokenized_corpus(d); }).find("inst_start.npy: cannot open"), std::string::npos);
  fs::remove_all(d);
}

TEST(DataMmap, RejectsBadSpansNamingDirectoryAndSample) {
  const fs::path d = temp_dir("spans");
  Layout l;
  random_corpus(5, 100, 4, &l);
  Layout bad = l;
  bad.index[2][3] = static_cast<int64_t>(l.flat.size()) - 1;  // sample 3's response runs past the end
  bad.index[3][3] = 2;
  write_layout(d / "a", bad, "<u4", "<i4");
  std::string e = error_of([&] { load_tokenized_corpus(d); });
  EXPECT_NE(e.find((d / "a").string() + ": sample 3"), std::string::npos) << e;
  EXPECT_NE(e.find("outside the " + std::to_string(l.flat.size()) + " tokens of tokens.npy"), std::string::npos) << e;

  bad = l;
  bad.index[1][2] = 0;
  write_layout(d / "a", bad, "<u4", "<i4");
  e = error_of([&] { load_tokenized_corpus(d); });
  EXPECT_NE(e.find((d / "a").string() + ": sample 2 has an empty instruction"), std::string::npos) << e;

  bad = l;
  bad.index[3].pop_back();
  write_layout(d / "a", bad, "<u4", "<i4");
  e = error_of([&] { load_tokenized_corpus(d); });
  EXPECT_NE(e.find("resp_len.npy has 4 rows but inst_start.npy has 5"), std::string::npos) << e;
  fs::remove_all(d);
}

TEST(DataMmap, VocabularyErrorNamesFileAndSample) {
  const fs::path d = temp_dir("vocab");
  Layout l;
  random_corpus(5, 100, 5, &l);
  l.flat[static_cast<size_t>(l.index[2][1])] = 4000;  // the first response token of sample 1
  write_layout(d / "p", l, "<i2", "<i8");
  const TrainCorpus c = load_tokenized_corpus(d);  // ids are checked against a vocabulary only
  EXPECT_NO_THROW(c.validate("corpus", 0));
  EXPECT_NO_THROW(c.validate("corpus", 4001));
  const std::string e = error_of([&] { c.validate("corpus", 256); });
  EXPECT_NE(e.find((d / "p" / "tokens.npy").string() + ": token " + std::to_string(l.index[2][1]) + " (sample 1)"),
            std::string::npos) << e;
  EXPECT_NE(e.find("has id 4000, outside the vocabulary [0, 256)"), std::string::npos) << e;
  // Negative ids (a signed file) are outside any vocabulary.
  l.flat[static_cast<size_t>(l.index[2][1])] = -3;
  write_layout(d / "p", l, "<i2", "<i8");
  EXPECT_NE(error_of([&] { load_tokenized_corpus(d).validate("corpus", 256); }).find("has id -3"), std::string::npos);
  fs::remove_all(d);
}

}  // namespace
}  // namespace hrm
