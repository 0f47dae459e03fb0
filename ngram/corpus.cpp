// Corpus readers: the data pipeline's tokenized directories (memory-mapped .npy arrays), JSONL
// files and plain text (tokenized on the fly through a callback), each seen as a list of documents.
// Not for: deciding how text becomes tokens (the caller's TextTokenizer) or scanning (scan.cpp).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include <rapidjson/document.h>

#include "common/error.h"
#include "ngram/contam.h"

namespace hrm::ngram {
namespace {

namespace fs = std::filesystem;

// A read-only memory map of a whole file; never loads it.
class MappedFile {
 public:
  explicit MappedFile(const fs::path& path) : path_(path) {
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) throw Error(cat(path.string(), ": cannot open: ", std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      throw Error(cat(path.string(), ": cannot stat: ", std::strerror(errno)));
    }
    size_ = static_cast<size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        throw Error(cat(path.string(), ": cannot memory-map: ", std::strerror(errno)));
      }
      data_ = static_cast<const uint8_t*>(p);
      ::madvise(p, size_, MADV_SEQUENTIAL);
    }
    ::close(fd);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
  }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// A 1-D array inside a mapped .npy file, with its dtype checked.
struct NpyArray {
  std::unique_ptr<MappedFile> file;
  NpyHeader header;
  const uint8_t* data = nullptr;
  uint64_t count = 0;
  size_t item = 0;
};

NpyArray open_npy(const fs::path& path, std::initializer_list<std::string_view> descrs) {
  NpyArray a;
  a.file = std::make_unique<MappedFile>(path);
  const std::string origin = path.string();
  a.header = parse_npy_header(a.file->bytes(), origin);
  std::string allowed;
  bool ok = false;
  for (auto d : descrs) {
    ok = ok || a.header.descr == d;
    allowed += (allowed.empty() ? "" : " or ") + std::string(d);
  }
  if (!ok) throw Error(cat(origin, ": dtype '", a.header.descr, "', expected ", allowed));
  if (a.header.fortran_order) throw Error(cat(origin, ": fortran_order is True, expected False"));
  if (a.header.shape.size() != 1) throw Error(cat(origin, ": array has ", a.header.shape.size(), " dimensions, expected 1"));
  a.item = a.header.descr == "<i8" ? sizeof(int64_t) : sizeof(uint32_t);
  a.count = a.header.shape[0];
  const size_t avail = a.file->bytes().size() - a.header.data_offset;
  if (a.count > avail / a.item)
    throw Error(cat(origin, ": shape (", a.count, ",) needs ", a.count, " x ", a.item, " bytes of data but the file has only ",
                    avail, " after the header"));
  a.data = a.file->bytes().data() + a.header.data_offset;
  return a;
}

int64_t i64_at(const NpyArray& a, uint64_t i) {
  int64_t v;
  std::memcpy(&v, a.data + i * sizeof(int64_t), sizeof v);
  return v;
}

// Where a tokenized directory keeps its index arrays: beside tokens.npy (the data pipeline), or, in a
// directory prepared by the reference's prepare_sft_data.py, in epoch_0/ (every sample once, in that
// epoch's shuffled order; each epoch_N/ holds the same samples).
fs::path index_dir(const fs::path& dir) {
  if (!fs::exists(dir / "inst_start.npy") && fs::exists(dir / "epoch_0" / "inst_start.npy")) return dir / "epoch_0";
  return dir;
}

class TokenizedDir : public CorpusSource {
 public:
  explicit TokenizedDir(const fs::path& dir) : dir_(dir) {
    tokens_ = open_npy(dir / "tokens.npy", {"<u4", "<i4"});
    const fs::path index = index_dir(dir);
    const char* names[] = {"inst_start.npy", "inst_len.npy", "resp_start.npy", "resp_len.npy"};
    for (size_t k = 0; k < kArrays; ++k) {
      arr_[k] = open_npy(index / names[k], {"<i8"});
      if (arr_[k].count != arr_[0].count)
        throw Error(cat(dir.string(), ": ", names[k], " has ", arr_[k].count, " rows but ", names[0], " has ",
                        arr_[0].count));
    }
    // Check every pair up front: a bad offset found mid-scan would waste hours of work.
    const uint64_t total = tokens_.count;
    for (uint64_t d = 0; d < arr_[0].count; ++d)
      for (size_t k = 0; k < kArrays; k += 2) {
        const int64_t start = i64_at(arr_[k], d), len = i64_at(arr_[k + 1], d);
        if (start < 0 || len < 0 || static_cast<uint64_t>(start) > total ||
            static_cast<uint64_t>(len) > total - static_cast<uint64_t>(start))
          throw Error(cat(dir.string(), ": row ", d, ": ", names[k], " = ", start, ", ", names[k + 1], " = ", len,
                          " do not fit in the ", total, " tokens of tokens.npy"));
      }
    aligned_ = reinterpret_cast<uintptr_t>(tokens_.data) % alignof(Token) == 0;
  }
  std::string name() const override { return dir_.string(); }
  uint64_t num_documents() const override { return arr_[0].count; }
  void read(uint64_t begin, uint64_t end, const std::function<void(uint64_t, std::span<const Token>)>& fn) const override {
    std::vector<Token> buf;
    for (uint64_t d = begin; d < end; ++d) {
      const auto is = static_cast<uint64_t>(i64_at(arr_[0], d)), il = static_cast<uint64_t>(i64_at(arr_[1], d));
      const auto rs = static_cast<uint64_t>(i64_at(arr_[2], d)), rl = static_cast<uint64_t>(i64_at(arr_[3], d));
      // The pipeline writes the response right after its instruction: then the pair is one span.
      if (aligned_ && (rs == is + il || rl == 0)) {
        fn(d, {reinterpret_cast<const Token*>(tokens_.data) + is, il + rl});
        continue;
      }
      buf.resize(il + rl);
      std::memcpy(buf.data(), tokens_.data + is * sizeof(Token), il * sizeof(Token));
      std::memcpy(buf.data() + il, tokens_.data + rs * sizeof(Token), rl * sizeof(Token));
      fn(d, buf);
    }
  }

 private:
  static constexpr size_t kArrays = 4;
  fs::path dir_;
  NpyArray tokens_;
  NpyArray arr_[kArrays];
  bool aligned_ = false;
};

class TokenStream : public CorpusSource {
 public:
  TokenStream(const fs::path& dir, size_t n, size_t chunk) : dir_(dir), n_(n), chunk_(chunk) {
    if (n == 0 || chunk == 0) throw Error(cat(dir.string(), ": token stream needs n > 0 and chunk > 0"));
    tokens_ = open_npy(dir / "tokens.npy", {"<u4", "<i4"});
    const uint64_t t = tokens_.count;
    // Chunk d holds the windows starting in [d*chunk, (d+1)*chunk).
    chunks_ = t < n ? (t ? 1 : 0) : (t - n + 1 + chunk - 1) / chunk;
  }
  std::string name() const override { return dir_.string() + " (stream)"; }
  uint64_t num_documents() const override { return chunks_; }
  void read(uint64_t begin, uint64_t end, const std::function<void(uint64_t, std::span<const Token>)>& fn) const override {
    std::vector<Token> buf;
    for (uint64_t d = begin; d < end; ++d) {
      const uint64_t b = d * chunk_, e = std::min<uint64_t>(tokens_.count, b + chunk_ + n_ - 1);
      buf.resize(e - b);
      std::memcpy(buf.data(), tokens_.data + b * sizeof(Token), (e - b) * sizeof(Token));
      fn(d, buf);
    }
  }

 private:
  fs::path dir_;
  size_t n_, chunk_;
  NpyArray tokens_;
  uint64_t chunks_ = 0;
};

// Offsets of the non-blank lines of a mapped file, and their 1-based line numbers for errors.
struct Lines {
  std::vector<uint64_t> begin, end, number;
};
Lines index_lines(std::span<const uint8_t> bytes) {
  Lines l;
  const auto* base = reinterpret_cast<const char*>(bytes.data());
  uint64_t pos = 0, line = 1;
  while (pos < bytes.size()) {
    const void* nl = std::memchr(base + pos, '\n', bytes.size() - pos);
    const uint64_t e = nl ? static_cast<uint64_t>(static_cast<const char*>(nl) - base) : bytes.size();
    const std::string_view text(base + pos, e - pos);
    if (text.find_first_not_of(" \t\r") != std::string_view::npos) {
      l.begin.push_back(pos);
      l.end.push_back(e);
      l.number.push_back(line);
    }
    pos = e + 1;
    ++line;
  }
  return l;
}

class JsonlSource : public CorpusSource {
 public:
  JsonlSource(const fs::path& file, std::vector<std::string> fields, TextTokenizer tokenize)
      : file_(file), fields_(std::move(fields)), tokenize_(std::move(tokenize)), lines_(index_lines(file_.bytes())) {
    if (fields_.empty()) throw Error(cat(file.string(), ": no JSONL text fields given"));
    if (!tokenize_) throw Error(cat(file.string(), ": JSONL corpora need a tokenizer (--tokenizer) or --words"));
  }
  std::string name() const override { return file_.path().string(); }
  uint64_t num_documents() const override { return lines_.begin.size(); }
  void read(uint64_t begin, uint64_t end, const std::function<void(uint64_t, std::span<const Token>)>& fn) const override {
    const auto* base = reinterpret_cast<const char*>(file_.bytes().data());
    std::vector<Token> doc;
    for (uint64_t d = begin; d < end; ++d) {
      rapidjson::Document j;
      j.Parse(base + lines_.begin[d], lines_.end[d] - lines_.begin[d]);
      const auto where = [&] { return cat(file_.path().string(), ":", lines_.number[d]); };
      if (j.HasParseError() || !j.IsObject()) throw Error(cat(where(), ": not a JSON object"));
      doc.clear();
      for (const auto& f : fields_) {
        const auto it = j.FindMember(f.c_str());
        if (it == j.MemberEnd()) throw Error(cat(where(), ": missing field \"", f, "\""));
        if (!it->value.IsString()) throw Error(cat(where(), ": field \"", f, "\" is not a string"));
        const auto t = tokenize_({it->value.GetString(), it->value.GetStringLength()});
        doc.insert(doc.end(), t.begin(), t.end());
      }
      fn(d, doc);
    }
  }

 private:
  MappedFile file_;
  std::vector<std::string> fields_;
  TextTokenizer tokenize_;
  Lines lines_;
};

class TextLines : public CorpusSource {
 public:
  TextLines(const fs::path& file, TextTokenizer tokenize)
      : file_(file), tokenize_(std::move(tokenize)), lines_(index_lines(file_.bytes())) {}
  std::string name() const override { return file_.path().string(); }
  uint64_t num_documents() const override { return lines_.begin.size(); }
  void read(uint64_t begin, uint64_t end, const std::function<void(uint64_t, std::span<const Token>)>& fn) const override {
    const auto* base = reinterpret_cast<const char*>(file_.bytes().data());
    for (uint64_t d = begin; d < end; ++d)
      fn(d, tokenize_({base + lines_.begin[d], lines_.end[d] - lines_.begin[d]}));
  }

 private:
  MappedFile file_;
  TextTokenizer tokenize_;
  Lines lines_;
};

class TextFiles : public CorpusSource {
 public:
  TextFiles(std::vector<fs::path> files, TextTokenizer tokenize) : files_(std::move(files)), tokenize_(std::move(tokenize)) {}
  std::string name() const override { return files_.size() == 1 ? files_[0].string() : cat(files_.size(), " text files"); }
  uint64_t num_documents() const override { return files_.size(); }
  void read(uint64_t begin, uint64_t end, const std::function<void(uint64_t, std::span<const Token>)>& fn) const override {
    for (uint64_t d = begin; d < end; ++d) {
      std::ifstream in(files_[d], std::ios::binary);
      if (!in) throw Error(cat(files_[d].string(), ": cannot open"));
      std::ostringstream text;
      text << in.rdbuf();
      fn(d, tokenize_(text.str()));
    }
  }

 private:
  std::vector<fs::path> files_;
  TextTokenizer tokenize_;
};

}  // namespace

std::unique_ptr<CorpusSource> open_tokenized_dir(const fs::path& dir) { return std::make_unique<TokenizedDir>(dir); }

std::unique_ptr<CorpusSource> open_tokenized_stream(const fs::path& dir, size_t n, size_t chunk) {
  return std::make_unique<TokenStream>(dir, n, chunk);
}

std::unique_ptr<CorpusSource> open_jsonl(const fs::path& file, std::vector<std::string> fields, TextTokenizer tokenize) {
  return std::make_unique<JsonlSource>(file, std::move(fields), std::move(tokenize));
}

std::unique_ptr<CorpusSource> open_text_files(std::vector<fs::path> files, bool per_line, TextTokenizer tokenize) {
  if (!tokenize) throw Error("text corpora need a tokenizer (--tokenizer) or --words");
  if (!per_line) return std::make_unique<TextFiles>(std::move(files), std::move(tokenize));
  if (files.size() != 1) throw Error("open_text_files: per-line mode takes one file per source");
  return std::make_unique<TextLines>(files[0], std::move(tokenize));
}

std::vector<std::unique_ptr<CorpusSource>> open_corpus(const fs::path& path, const std::vector<std::string>& jsonl_fields,
                                                       bool text_per_line, const TextTokenizer& tokenize, size_t stream_n) {
  std::vector<std::unique_ptr<CorpusSource>> out;
  const auto open_dir = [stream_n](const fs::path& d) {
    return stream_n ? open_tokenized_stream(d, stream_n) : open_tokenized_dir(d);
  };
  if (fs::is_directory(path)) {
    if (fs::exists(path / "tokens.npy")) {
      out.push_back(open_dir(path));
      return out;
    }
    std::vector<fs::path> dirs;
    for (const auto& e : fs::recursive_directory_iterator(path))
      if (e.is_regular_file() && e.path().filename() == "tokens.npy") dirs.push_back(e.path().parent_path());
    std::sort(dirs.begin(), dirs.end());  // a fixed order: document locations refer to it
    if (dirs.empty()) throw Error(cat(path.string(), ": directory has no tokens.npy (expected a tokenized corpus dir)"));
    for (const auto& d : dirs) out.push_back(open_dir(d));
    return out;
  }
  if (!fs::is_regular_file(path)) throw Error(cat(path.string(), ": corpus path not found"));
  if (path.extension() == ".jsonl") {
    out.push_back(open_jsonl(path, jsonl_fields, tokenize));
  } else {
    out.push_back(open_text_files({path}, text_per_line, tokenize));
  }
  return out;
}

}  // namespace hrm::ngram
