// Training corpora and packing (see data.h).
#include "runtime/data.h"

#include <rapidjson/document.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <numeric>
#include <optional>
#include <sstream>

#include "common/error.h"
#include "common/npy.h"
#include "runtime/mmap_file.h"

namespace hrm {
namespace {

namespace fs = std::filesystem;

// The .npy magic (numpy format spec).
constexpr char kNpyMagic[] = "\x93NUMPY";
constexpr size_t kNpyMagicLen = 6;

constexpr const char* kTokensFile = "tokens.npy";
enum IndexArray { kInstStart, kInstLen, kRespStart, kRespLen, kIndexArrays };
constexpr std::array<const char*, kIndexArrays> kIndexFiles = {"inst_start.npy", "inst_len.npy", "resp_start.npy",
                                                               "resp_len.npy"};
// The reference's prepared layout (HRM-Text scripts/prepare_sft_data.py): one directory of index arrays
// per epoch, "epoch_" + the epoch number, and metadata.json beside tokens.npy.
constexpr std::string_view kEpochPrefix = "epoch_";
constexpr const char* kMetadataFile = "metadata.json";

// The integer dtypes the pipeline writes, and a 1-D array of one of them: a mapped file's data or a
// vector held in memory. Elements are read with memcpy, so no alignment is assumed.
enum class IntType { kI16, kU16, kI32, kU32, kI64 };

struct IntView {
  const std::byte* data = nullptr;
  int64_t size = 0;
  IntType type = IntType::kI64;
};

struct DtypeName {
  const char* descr;
  IntType type;
  size_t width;
};
constexpr std::array<DtypeName, 5> kDtypes = {{{"<i2", IntType::kI16, 2},
                                               {"<u2", IntType::kU16, 2},
                                               {"<i4", IntType::kI32, 4},
                                               {"<u4", IntType::kU32, 4},
                                               {"<i8", IntType::kI64, 8}}};

template <class T>
T load(const std::byte* p, int64_t i) {
  T v;
  std::memcpy(&v, p + i * static_cast<int64_t>(sizeof(T)), sizeof(T));
  return v;
}

// Calls f(T{}) with the C++ type of `type`, so that loops over a view are written once and typed.
template <class F>
decltype(auto) with_type(IntType type, F&& f) {
  switch (type) {
    case IntType::kI16: return f(int16_t{});
    case IntType::kU16: return f(uint16_t{});
    case IntType::kI32: return f(int32_t{});
    case IntType::kU32: return f(uint32_t{});
    case IntType::kI64: break;
  }
  return f(int64_t{});
}

int64_t at(const IntView& v, int64_t i) {
  return with_type(v.type, [&](auto t) { return static_cast<int64_t>(load<decltype(t)>(v.data, i)); });
}

// True when [start, start + len) does not lie inside [0, total).
bool outside(int64_t start, int64_t len, int64_t total) { return start < 0 || start > total || len > total - start; }

// splitmix64 (also used by the initialiser): the same stream on every platform, unlike std::shuffle.
uint64_t mix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

using Span4 = std::array<int64_t, kIndexArrays>;  // a sample's inst_start, inst_len, resp_start, resp_len

Span4 span_of(const std::array<IntView, kIndexArrays>& index, int64_t row) {
  Span4 s;
  for (size_t k = 0; k < kIndexArrays; ++k) s[k] = at(index[k], row);
  return s;
}

std::string epoch_dir_name(int64_t k) { return cat(kEpochPrefix, k); }

}  // namespace

// One token array and its four index arrays: a mapped tokenized directory, or samples added in memory
// (origin "", views pointing into the vectors below). A prepared directory is one part whose samples
// are epoch_0/'s rows; `epochs` holds every epoch directory's arrays (epochs[0] == index), and
// `by_span` epoch_0's rows sorted by their spans, to find each epoch's rows among them.
struct TrainCorpus::Part {
  std::string origin;
  std::vector<MappedFile> maps;
  std::vector<TokenId> own_tokens;
  std::array<std::vector<int64_t>, kIndexArrays> own_index;
  IntView tokens;
  std::array<IntView, kIndexArrays> index;
  std::vector<std::array<IntView, kIndexArrays>> epochs;
  std::vector<int64_t> by_span;

  int64_t rows() const { return index[kInstStart].size; }
  int64_t get(IndexArray k, int64_t row) const { return at(index[k], row); }
  std::string file(const char* name) const { return (fs::path(origin) / name).string(); }
  // Where the index arrays of the samples are: the directory, or a prepared directory's epoch_0/.
  std::string index_origin() const {
    return epochs.empty() ? origin : (fs::path(origin) / epoch_dir_name(0)).string();
  }
  // Epoch k's rows as rows of epoch_0; throws unless they are a permutation of them.
  std::vector<int64_t> epoch_rows(size_t k) const {
    const std::array<IntView, kIndexArrays>& ix = epochs[k];
    const std::string where = (fs::path(origin) / epoch_dir_name(static_cast<int64_t>(k))).string();
    if (ix[kInstStart].size != rows())
      throw Error(cat(where, ": ", ix[kInstStart].size, " samples, but ", index_origin(), " has ", rows(),
                      " (every epoch directory must order the same samples)"));
    std::vector<int64_t> out(static_cast<size_t>(rows()));
    std::vector<char> taken(static_cast<size_t>(rows()), 0);
    for (int64_t r = 0; r < rows(); ++r) {
      const Span4 want = span_of(ix, r);
      auto it = std::lower_bound(by_span.begin(), by_span.end(), want,
                                 [&](int64_t id, const Span4& s) { return span_of(index, id) < s; });
      while (it != by_span.end() && taken[static_cast<size_t>(*it)] && span_of(index, *it) == want) ++it;
      if (it == by_span.end() || span_of(index, *it) != want)
        throw Error(cat(where, ": sample ", r, " (instruction ", want[kInstStart], "+", want[kInstLen], ", response ",
                        want[kRespStart], "+", want[kRespLen], ") is not one of ", index_origin(),
                        "'s samples, or appears more often (every epoch directory must order the same samples)"));
      taken[static_cast<size_t>(*it)] = 1;
      out[static_cast<size_t>(r)] = *it;
    }
    return out;
  }
  void view_own() {
    tokens = {reinterpret_cast<const std::byte*>(own_tokens.data()), static_cast<int64_t>(own_tokens.size()),
              IntType::kI32};
    for (size_t k = 0; k < kIndexArrays; ++k)
      index[k] = {reinterpret_cast<const std::byte*>(own_index[k].data()), static_cast<int64_t>(own_index[k].size()),
                  IntType::kI64};
  }
};

namespace {

std::vector<TokenId> read_tokens(const IntView& v, int64_t start, int64_t len) {
  std::vector<TokenId> out(static_cast<size_t>(len));
  with_type(v.type, [&](auto t) {
    using T = decltype(t);
    for (int64_t k = 0; k < len; ++k) out[k] = static_cast<TokenId>(load<T>(v.data, start + k));
  });
  return out;
}

// The first element outside [lo, hi], or -1; one typed sequential pass.
int64_t first_outside(const IntView& v, int64_t lo, int64_t hi) {
  return with_type(v.type, [&](auto t) -> int64_t {
    using T = decltype(t);
    for (int64_t i = 0; i < v.size; ++i) {
      const auto x = static_cast<int64_t>(load<T>(v.data, i));
      if (x < lo || x > hi) return i;
    }
    return -1;
  });
}

// Every sample's spans lie inside `tokens` and are non-empty.
void check_spans(const IntView& tokens, const std::array<IntView, kIndexArrays>& index, const std::string& where) {
  const int64_t n = index[kInstStart].size, total = tokens.size;
  for (size_t k = 1; k < kIndexArrays; ++k)
    if (index[k].size != n)
      throw Error(cat(where, ": ", kIndexFiles[k], " has ", index[k].size, " rows but ", kIndexFiles[0], " has ", n));
  for (int64_t r = 0; r < n; ++r) {
    const int64_t is = at(index[kInstStart], r), il = at(index[kInstLen], r), rs = at(index[kRespStart], r),
                  rl = at(index[kRespLen], r);
    if (il <= 0 || rl <= 0)
      throw Error(cat(where, ": sample ", r, " has an empty instruction or response (inst_len ", il, ", resp_len ", rl,
                      ")"));
    if (outside(is, il, total) || outside(rs, rl, total))
      throw Error(cat(where, ": sample ", r, " (instruction ", is, "+", il, ", response ", rs, "+", rl,
                      ") spans outside the ", total, " tokens of ", kTokensFile));
  }
}

// Maps one .npy file as a 1-D array of one of `allowed` dtypes, checking that the data is all there.
IntView map_npy(const fs::path& path, std::initializer_list<IntType> allowed, std::vector<MappedFile>& maps) {
  const std::string origin = path.string();
  MappedFile f = MappedFile::open(path);
  const auto bytes = f.bytes();
  const NpyHeader h = parse_npy_header(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), origin);
  const DtypeName* d = nullptr;
  std::string expected;
  for (const DtypeName& c : kDtypes) {
    if (std::find(allowed.begin(), allowed.end(), c.type) == allowed.end()) continue;
    expected += cat(expected.empty() ? "" : ", ", c.descr);
    if (h.descr == c.descr) d = &c;
  }
  if (!d) throw Error(cat(origin, ": unsupported dtype '", h.descr, "' (expected ", expected, ")"));
  if (h.fortran_order) throw Error(cat(origin, ": Fortran-ordered .npy arrays are not supported"));
  if (h.shape.size() != 1) throw Error(cat(origin, ": expected a 1-D array, got ", h.shape.size(), " dimensions"));
  const uint64_t n = h.shape[0];
  const size_t avail = bytes.size() - h.data_offset;
  if (n > avail / d->width || avail != n * d->width)
    throw Error(cat(origin, ": holds ", avail, " data bytes, but shape (", n, ",) of ", h.descr, " needs ", n, " x ",
                    d->width, " (truncated or corrupt)"));
  const IntView v{bytes.data() + h.data_offset, static_cast<int64_t>(n), d->type};
  maps.push_back(std::move(f));  // the mapping does not move: v stays valid
  return v;
}

}  // namespace

TrainCorpus::TrainCorpus() = default;
TrainCorpus::TrainCorpus(TrainCorpus&&) noexcept = default;
TrainCorpus& TrainCorpus::operator=(TrainCorpus&&) noexcept = default;
TrainCorpus::~TrainCorpus() = default;

int64_t TrainCorpus::size() const { return ends_.empty() ? 0 : ends_.back(); }

int64_t TrainCorpus::num_tokens() const {
  int64_t n = 0;
  for (const Part& p : parts_) n += p.tokens.size;
  return n;
}

const TrainCorpus::Part& TrainCorpus::locate(int64_t i, int64_t* row) const {
  HRM_CHECK(i >= 0 && i < size(), "sample ", i, " of a corpus of ", size());
  const size_t k = static_cast<size_t>(std::upper_bound(ends_.begin(), ends_.end(), i) - ends_.begin());
  *row = i - (k ? ends_[k - 1] : 0);
  return parts_[k];
}

int64_t TrainCorpus::inst_len(int64_t i) const {
  int64_t r = 0;
  const Part& p = locate(i, &r);
  return p.get(kInstLen, r);
}

int64_t TrainCorpus::resp_len(int64_t i) const {
  int64_t r = 0;
  const Part& p = locate(i, &r);
  return p.get(kRespLen, r);
}

std::vector<TokenId> TrainCorpus::instruction(int64_t i) const {
  int64_t r = 0;
  const Part& p = locate(i, &r);
  return read_tokens(p.tokens, p.get(kInstStart, r), p.get(kInstLen, r));
}

std::vector<TokenId> TrainCorpus::response(int64_t i) const {
  int64_t r = 0;
  const Part& p = locate(i, &r);
  return read_tokens(p.tokens, p.get(kRespStart, r), p.get(kRespLen, r));
}

void TrainCorpus::add(std::span<const TokenId> inst, std::span<const TokenId> resp) {
  if (parts_.empty() || !parts_.back().origin.empty()) {
    parts_.emplace_back();
    ends_.push_back(size());
  }
  Part& p = parts_.back();
  p.own_index[kInstStart].push_back(static_cast<int64_t>(p.own_tokens.size()));
  p.own_index[kInstLen].push_back(static_cast<int64_t>(inst.size()));
  p.own_tokens.insert(p.own_tokens.end(), inst.begin(), inst.end());
  p.own_index[kRespStart].push_back(static_cast<int64_t>(p.own_tokens.size()));
  p.own_index[kRespLen].push_back(static_cast<int64_t>(resp.size()));
  p.own_tokens.insert(p.own_tokens.end(), resp.begin(), resp.end());
  p.view_own();
  ++ends_.back();
}

void TrainCorpus::validate(const std::string& origin, int64_t vocab) const {
  for (const Part& p : parts_) {
    const bool mapped = !p.origin.empty();
    check_spans(p.tokens, p.index, mapped ? p.index_origin() : origin);
    if (vocab <= 0) continue;
    const int64_t t = first_outside(p.tokens, 0, vocab - 1);
    if (t < 0) continue;
    std::string sample;  // the first sample that uses token t, if any (the error path only)
    for (int64_t r = 0; r < p.rows() && sample.empty(); ++r)
      if ((t >= p.get(kInstStart, r) && t - p.get(kInstStart, r) < p.get(kInstLen, r)) ||
          (t >= p.get(kRespStart, r) && t - p.get(kRespStart, r) < p.get(kRespLen, r)))
        sample = cat(" (sample ", r, ")");
    throw Error(cat(mapped ? p.file(kTokensFile) : origin, ": token ", t, sample, " has id ", at(p.tokens, t),
                    ", outside the vocabulary [0, ", vocab, ")"));
  }
}

int64_t TrainCorpus::epoch_orders() const {
  return parts_.size() == 1 ? static_cast<int64_t>(parts_.front().epochs.size()) : 0;
}

std::vector<int64_t> TrainCorpus::epoch_order(int64_t k) const {
  const int64_t n = epoch_orders();
  HRM_CHECK(n > 0, "epoch_order() of a corpus without epoch directories");
  const Part& p = parts_.front();
  if (k < 0 || k >= n)
    throw Error(cat((fs::path(p.origin) / epoch_dir_name(k)).string(), ": no such epoch directory; this prepared ",
                    "corpus has ", n, " (", epoch_dir_name(0), n > 1 ? cat("..", epoch_dir_name(n - 1)) : "",
                    ") and, like the reference trainer, epoch N reads ", kEpochPrefix,
                    "N/ with no wrap-around: prepare more epochs or train fewer steps"));
  return p.epoch_rows(static_cast<size_t>(k));
}

int64_t TrainCorpus::max_token_id() const {
  int64_t mx = -1;
  for (const Part& p : parts_)
    with_type(p.tokens.type, [&](auto t) {
      using T = decltype(t);
      for (int64_t i = 0; i < p.tokens.size; ++i) mx = std::max(mx, static_cast<int64_t>(load<T>(p.tokens.data, i)));
    });
  return mx;
}

bool add_text_sample(TrainCorpus& corpus, const Tokenizer& tok, const PromptFormat& fmt,
                     std::string_view instruction, std::string_view response, std::string_view condition) {
  std::vector<TokenId> resp = tok.encode(response);
  if (resp.empty()) return false;  // as the reference's prepare_sft_data.py: nothing to learn from
  const std::vector<TokenId> inst = format_prompt(tok, fmt, instruction, condition);
  resp.push_back(stop_token(tok, fmt));  // the response ends with <|box_end|>, where generation stops
  corpus.add(inst, resp);
  return true;
}

TrainCorpus load_jsonl_corpus(const fs::path& path, const Tokenizer& tok, const PromptFormat& fmt) {
  std::ifstream in(path);
  if (!in) throw Error(cat(path.string(), ": cannot open the training JSONL"));
  stop_token(tok, fmt);  // fail early, naming the missing token
  TrainCorpus corpus;
  std::string line;
  int64_t line_no = 0, empty_responses = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    rapidjson::Document doc;
    doc.Parse(line.c_str(), line.size());
    if (doc.HasParseError() || !doc.IsObject())
      throw Error(cat(path.string(), ":", line_no, ": not a JSON object"));
    // A missing (or null) field gives `fallback`; nullopt makes it required.
    auto text = [&](const char* key, std::optional<std::string_view> fallback) -> std::string {
      const auto it = doc.FindMember(key);
      if (it == doc.MemberEnd() || it->value.IsNull()) {
        if (!fallback) throw Error(cat(path.string(), ":", line_no, ": missing string field \"", key, "\""));
        return std::string(*fallback);
      }
      if (!it->value.IsString())
        throw Error(cat(path.string(), ":", line_no, ": field \"", key, "\" must be a string"));
      return std::string(it->value.GetString(), it->value.GetStringLength());
    };
    const std::string instruction = text("instruction", std::nullopt), response = text("response", std::nullopt);
    const std::string condition = text("condition", "direct");  // the reference's default
    try {
      if (!add_text_sample(corpus, tok, fmt, instruction, response, condition)) ++empty_responses;
    } catch (const Error& e) {
      throw Error(cat(path.string(), ":", line_no, ": ", e.what()));  // e.g. an unknown condition tag
    }
  }
  if (empty_responses > 0)
    std::fprintf(stderr, "%s: left out %lld samples whose response is empty (as the reference does)\n",
                 path.string().c_str(), static_cast<long long>(empty_responses));
  if (corpus.size() == 0) throw Error(cat(path.string(), ": no training samples"));
  return corpus;
}

void write_npy_1d(const fs::path& path, std::span<const int64_t> values, const std::string& dtype) {
  // numpy/lib/format.py: ARRAY_ALIGN = 64, and GROWTH_AXIS_MAX_DIGITS = 21 spaces reserved minus the
  // digits of the leading dimension.
  constexpr size_t kAlign = 64, kGrowthDigits = 21, kPreamble = 10;
  const auto d = std::find_if(kDtypes.begin(), kDtypes.end(), [&](const DtypeName& c) { return dtype == c.descr; });
  if (d == kDtypes.end()) throw Error(cat(path.string(), ": unsupported .npy dtype '", dtype, "' for writing"));
  const auto [lo, hi] = with_type(d->type, [](auto t) {
    using T = decltype(t);
    return std::pair<int64_t, int64_t>(std::numeric_limits<T>::min(), std::numeric_limits<T>::max());
  });
  const std::string n = std::to_string(values.size());
  std::string header = "{'descr': '" + dtype + "', 'fortran_order': False, 'shape': (" + n + ",), }";
  header.append(kGrowthDigits - n.size(), ' ');
  const size_t total = kPreamble + header.size() + 1;
  header.append((kAlign - total % kAlign) % kAlign, ' ');
  header += '\n';
  std::string bytes(kNpyMagic, kNpyMagicLen);
  bytes += '\x01';
  bytes += '\x00';
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>(header.size() >> 8);
  bytes += header;
  for (int64_t v : values) {
    if (v < lo || v > hi) throw Error(cat(path.string(), ": value ", v, " does not fit ", dtype));
    const uint64_t u = static_cast<uint64_t>(v);
    for (size_t b = 0; b < d->width; ++b) bytes += static_cast<char>((u >> (8 * b)) & 0xff);
  }
  std::ofstream out(path, std::ios::binary);
  if (!out) throw Error(cat(path.string(), ": cannot write"));
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw Error(cat(path.string(), ": write failed"));
}

void write_tokenized_corpus(const fs::path& dir, const TrainCorpus& corpus) {
  fs::create_directories(dir);
  corpus.validate(dir.string(), 0);
  // Each part's token array whole (gaps included), its index arrays shifted past the parts before it.
  std::vector<int64_t> tokens;
  std::array<std::vector<int64_t>, kIndexArrays> index;
  for (const TrainCorpus::Part& p : corpus.parts_) {
    const auto base = static_cast<int64_t>(tokens.size());
    for (int64_t t = 0; t < p.tokens.size; ++t) tokens.push_back(at(p.tokens, t));
    for (int64_t r = 0; r < p.rows(); ++r)
      for (size_t k = 0; k < kIndexArrays; ++k)
        index[k].push_back(p.get(static_cast<IndexArray>(k), r) + (k == kInstStart || k == kRespStart ? base : 0));
  }
  write_npy_1d(dir / kTokensFile, tokens, "<u4");
  for (size_t k = 0; k < kIndexArrays; ++k) write_npy_1d(dir / kIndexFiles[k], index[k], "<i8");
}

namespace {

// The epoch numbers N of the "epoch_N" sub-directories of `dir`, sorted ("epoch_01" and the like are
// not the reference's names and are ignored).
std::vector<int64_t> epoch_dirs(const fs::path& dir) {
  std::vector<int64_t> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (!e.is_directory() || !name.starts_with(kEpochPrefix)) continue;
    const std::string digits = name.substr(kEpochPrefix.size());
    const bool number = !digits.empty() && digits.size() <= 9 &&
                        std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!number) continue;
    const int64_t k = std::stoll(digits);
    if (epoch_dir_name(k) == name) out.push_back(k);
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool is_prepared(const fs::path& dir) { return fs::exists(dir / kTokensFile) && !epoch_dirs(dir).empty(); }

// metadata.json's total_length (prepare_sft_data.py: the sum of inst_len + resp_len), when the file is
// there, must match the samples: a tokens.npy from one run with epoch directories of another would not.
void check_metadata(const fs::path& dir, const std::array<IntView, kIndexArrays>& index, std::string_view where) {
  const fs::path path = dir / kMetadataFile;
  if (!fs::exists(path)) return;
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  rapidjson::Document d;
  d.Parse(text.c_str(), text.size());
  if (d.HasParseError() || !d.IsObject()) throw Error(cat(path.string(), ": not a JSON object"));
  const auto it = d.FindMember("total_length");
  if (it == d.MemberEnd()) return;
  if (!it->value.IsInt64()) throw Error(cat(path.string(), ": \"total_length\" must be an integer"));
  int64_t total = 0;
  for (int64_t r = 0; r < index[kInstLen].size; ++r) total += at(index[kInstLen], r) + at(index[kRespLen], r);
  if (total != it->value.GetInt64())
    throw Error(cat(path.string(), ": total_length ", it->value.GetInt64(), ", but the samples of ", where, " hold ",
                    total, " tokens (inst_len + resp_len): the index arrays and metadata come from different runs"));
}

// The four index arrays of `dir`, mapped (into `maps`), their spans checked against `tokens`.
std::array<IntView, kIndexArrays> map_index(const fs::path& dir, const IntView& tokens, std::vector<MappedFile>& maps) {
  std::array<IntView, kIndexArrays> ix;
  for (size_t k = 0; k < kIndexArrays; ++k) ix[k] = map_npy(dir / kIndexFiles[k], {IntType::kI64, IntType::kI32}, maps);
  check_spans(tokens, ix, dir.string());
  return ix;
}

}  // namespace

TrainCorpus load_tokenized_corpus(const fs::path& dir) {
  TrainCorpus corpus;
  const std::initializer_list<IntType> kTokenTypes = {IntType::kU32, IntType::kI32, IntType::kU16, IntType::kI16};
  if (fs::exists(dir / kTokensFile) && is_prepared(dir)) {
    // The reference's prepared layout: tokens.npy here, the index arrays once per epoch in epoch_N/.
    if (fs::exists(dir / kIndexFiles[0]))
      throw Error(cat(dir.string(), ": holds both ", kIndexFiles[0], " and ", kEpochPrefix,
                      "N/ directories; a tokenized directory has one or the other"));
    const std::vector<int64_t> ks = epoch_dirs(dir);
    for (size_t k = 0; k < ks.size(); ++k)
      if (ks[k] != static_cast<int64_t>(k))
        throw Error(cat((dir / epoch_dir_name(static_cast<int64_t>(k))).string(), ": missing, but ",
                        epoch_dir_name(ks[k]), "/ exists (the reference reads ", epoch_dir_name(0), ", ",
                        epoch_dir_name(1), ", ... one per epoch, in turn)"));
    TrainCorpus::Part p;
    p.origin = dir.string();
    p.tokens = map_npy(dir / kTokensFile, kTokenTypes, p.maps);
    for (const int64_t k : ks) p.epochs.push_back(map_index(dir / epoch_dir_name(k), p.tokens, p.maps));
    p.index = p.epochs.front();
    p.by_span.resize(static_cast<size_t>(p.rows()));
    std::iota(p.by_span.begin(), p.by_span.end(), 0);
    std::stable_sort(p.by_span.begin(), p.by_span.end(),
                     [&](int64_t a, int64_t b) { return span_of(p.index, a) < span_of(p.index, b); });
    for (size_t k = 1; k < p.epochs.size(); ++k) p.epoch_rows(k);  // each a permutation of epoch_0 (throws)
    check_metadata(dir, p.index, p.index_origin());
    corpus.ends_.push_back(p.rows());
    corpus.parts_.push_back(std::move(p));
    return corpus;
  }
  std::vector<fs::path> dirs;
  if (fs::exists(dir / kTokensFile)) {
    dirs.push_back(dir);
  } else {
    if (!fs::is_directory(dir)) throw Error(cat(dir.string(), ": not a directory"));
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_directory() && fs::exists(e.path() / kTokensFile)) dirs.push_back(e.path());
    std::sort(dirs.begin(), dirs.end());
    if (dirs.empty()) throw Error(cat(dir.string(), ": no tokens.npy here or in any sub-directory"));
    for (const fs::path& d : dirs)
      if (is_prepared(d))
        throw Error(cat(d.string(), ": a prepared directory (", kEpochPrefix, "N/ index arrays) inside a root of ",
                        "several; its epoch order cannot be merged with the others: give it alone as the data"));
  }
  for (const fs::path& d : dirs) {
    TrainCorpus::Part p;
    p.origin = d.string();
    p.tokens = map_npy(d / kTokensFile, kTokenTypes, p.maps);
    p.index = map_index(d, p.tokens, p.maps);
    corpus.ends_.push_back(corpus.size() + p.rows());
    corpus.parts_.push_back(std::move(p));
  }
  return corpus;
}

TrainCorpus load_corpus(const fs::path& path, const Tokenizer* tok, const PromptFormat& fmt) {
  if (fs::is_directory(path)) return load_tokenized_corpus(path);
  if (!tok) throw Error(cat(path.string(), ": a JSONL corpus needs a tokenizer (--tokenizer)"));
  return load_jsonl_corpus(path, *tok, fmt);
}

const char* packing_name(Packing p) { return p == Packing::kGreedy ? "greedy" : "multipack"; }

Packing parse_packing(std::string_view name) {
  if (name == "greedy") return Packing::kGreedy;
  if (name == "multipack") return Packing::kMultipack;
  throw Error(cat("packing must be 'greedy' or 'multipack' (the reference), got '", name, "'"));
}

bool PackStep::full() const {
  return std::all_of(ranks.begin(), ranks.end(), [](const auto& r) { return !r.empty(); });
}

namespace {

void check_length(std::span<const int64_t> lengths, size_t pos, int64_t budget) {
  HRM_CHECK(lengths[pos] >= 1 && lengths[pos] <= budget, "sample length ", lengths[pos], " at ", pos,
            " outside [1, budget ", budget, "]");
}

PackStep greedy_step(std::span<const int64_t> lengths, int64_t budget, int64_t world_size) {
  PackStep s;
  s.ranks.resize(static_cast<size_t>(world_size));
  size_t pos = 0;
  for (auto& rank : s.ranks) {
    int64_t load = 0;
    while (pos < lengths.size()) {
      check_length(lengths, pos, budget);
      if (load + lengths[pos] > budget) break;
      rank.push_back(static_cast<int64_t>(pos));
      load += lengths[pos++];
    }
  }
  s.consumed = static_cast<int64_t>(pos);
  return s;
}

// LPT (longest processing time first) scheduling of lengths[0..m) onto n ranks, as the reference does
// it: longest first (equal lengths in reverse position order: its stable argsort, reversed), each onto
// the least-loaded rank, found with a 1-based binary min-heap of loads and the reference's sift-down so
// that ties go to the same rank. With `ranks` null it only checks, returning false as soon as a rank
// exceeds `budget`; otherwise it records each rank's positions in placement order.
bool lpt(std::span<const int64_t> lengths, int64_t m, int64_t n, int64_t budget,
         std::vector<std::vector<int64_t>>* ranks) {
  std::vector<int64_t> order(static_cast<size_t>(m));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return lengths[a] < lengths[b]; });
  std::reverse(order.begin(), order.end());
  std::vector<int64_t> load(static_cast<size_t>(n) + 1, 0), id(static_cast<size_t>(n) + 1);
  std::iota(id.begin(), id.end(), -1);  // heap slot k (1-based) starts as rank k-1
  for (const int64_t pos : order) {
    load[1] += lengths[pos];
    if (ranks) (*ranks)[id[1]].push_back(pos);
    else if (load[1] > budget) return false;
    for (int64_t u = 1; 2 * u <= n;) {
      int64_t v = 2 * u;
      if (v + 1 <= n && load[v + 1] < load[v]) ++v;
      if (load[u] <= load[v]) break;
      std::swap(load[u], load[v]);
      std::swap(id[u], id[v]);
      u = v;
    }
  }
  return true;
}

PackStep multipack_step(std::span<const int64_t> lengths, int64_t budget, int64_t world_size) {
  PackStep s;
  s.ranks.resize(static_cast<size_t>(world_size));
  if (lengths.empty()) return s;
  // The window: samples until they hold budget × ranks tokens; no step can take more.
  size_t end = 0;
  for (int64_t total = 0; end < lengths.size() && total < budget * world_size; ++end) {
    check_length(lengths, end, budget);
    total += lengths[end];
  }
  // The longest prefix LPT fits, by binary search over [1, end] (one sample always fits).
  int64_t lo = 1, hi = static_cast<int64_t>(end) + 1;
  while (hi - lo > 1) {
    const int64_t mid = (lo + hi) / 2;
    if (lpt(lengths, mid, world_size, budget, nullptr)) lo = mid;
    else hi = mid;
  }
  lpt(lengths, lo, world_size, budget, &s.ranks);
  s.consumed = lo;
  return s;
}

}  // namespace

PackStep pack_step(Packing packing, std::span<const int64_t> lengths, int64_t budget, int64_t world_size) {
  HRM_CHECK(budget > 0 && world_size > 0, "budget ", budget, ", world size ", world_size);
  return packing == Packing::kGreedy ? greedy_step(lengths, budget, world_size)
                                     : multipack_step(lengths, budget, world_size);
}

Packer::Packer(const TrainCorpus& corpus, const PackerOptions& opts) : corpus_(corpus), opts_(opts) {
  if (opts.batch_tokens <= 0) throw Error(cat("batch token budget must be positive, got ", opts.batch_tokens));
  if (opts.world_size <= 0 || opts.rank < 0 || opts.rank >= opts.world_size)
    throw Error(cat("rank ", opts.rank, " is outside a world of ", opts.world_size, " ranks"));
  const int64_t budget = opts.batch_tokens;
  const int64_t longest = opts.max_sample_tokens > 0 ? std::min(opts.max_sample_tokens, budget) : budget;
  for (int64_t i = 0; i < corpus.size(); ++i) {
    if (corpus.packed_length(i) <= longest) usable_.push_back(i);
    else ++skipped_;
  }
  if (usable_.empty())
    throw Error(cat("no training sample fits the batch budget of ", budget, " tokens (", corpus.size(), " samples)"));
  perm_ = order(0);
}

std::vector<int64_t> Packer::order(int64_t epoch) const {
  if (corpus_.epoch_orders() > 0) {
    std::vector<int64_t> p = corpus_.epoch_order(epoch);
    std::erase_if(p, [&](int64_t i) { return !std::binary_search(usable_.begin(), usable_.end(), i); });
    return p;
  }
  std::vector<int64_t> p = usable_;
  uint64_t s = opts_.seed * 0x2545F4914F6CDD1Dull + static_cast<uint64_t>(epoch);
  for (size_t i = p.size(); i > 1; --i) std::swap(p[i - 1], p[mix(s) % i]);
  return p;
}

void Packer::seek(int64_t epoch, int64_t cursor) {
  if (epoch < 0 || cursor < 0 || cursor > usable())
    throw Error(cat("data position (epoch ", epoch, ", cursor ", cursor, ") is outside this corpus of ", usable(),
                    " usable samples"));
  epoch_ = epoch;
  cursor_ = cursor;
  perm_ = order(epoch_);
}

PackStep Packer::plan(const std::vector<int64_t>& perm, int64_t cursor) const {
  // Only the window a step can take (budget × ranks tokens, as in pack_step): O(step), not O(epoch).
  const int64_t cap = opts_.batch_tokens * opts_.world_size;
  std::vector<int64_t> window;
  for (int64_t k = cursor, total = 0; k < static_cast<int64_t>(perm.size()) && total < cap; ++k) {
    window.push_back(corpus_.packed_length(perm[k]));
    total += window.back();
  }
  return pack_step(opts_.packing, window, opts_.batch_tokens, opts_.world_size);
}

PackedBatch Packer::next() {
  for (;;) {
    if (cursor_ >= usable()) {
      ++epoch_;
      cursor_ = 0;
      perm_ = order(epoch_);
    }
    const PackStep s = plan(perm_, cursor_);
    if (opts_.drop_last && (cursor_ + s.consumed >= usable() || !s.full())) {
      if (cursor_ == 0)
        throw Error(cat("epoch ", epoch_, " packs into a single step, which drop_last drops: ", usable(),
                        " samples are too few for ", opts_.world_size, " rank(s) of ", opts_.batch_tokens, " tokens"));
      cursor_ = usable();  // the rest of the epoch is dropped
      continue;
    }
    PackedBatch b;
    for (const int64_t pos : s.ranks[static_cast<size_t>(opts_.rank)]) {
      const int64_t i = perm_[cursor_ + pos];
      b.add_sample(corpus_.instruction(i), corpus_.response(i));
    }
    cursor_ += s.consumed;
    return b;
  }
}

EpochPacking Packer::count_steps(const std::vector<int64_t>& perm, int64_t cursor) const {
  const int64_t n = static_cast<int64_t>(perm.size());
  EpochPacking e;
  const int64_t start = cursor;
  while (cursor < n) {
    const PackStep s = plan(perm, cursor);
    if (opts_.drop_last && (cursor + s.consumed >= n || !s.full())) break;
    ++e.steps;
    for (int64_t k = 0; k < s.consumed; ++k) e.tokens += corpus_.packed_length(perm[cursor + k]);
    cursor += s.consumed;
  }
  e.samples = cursor - start;
  e.dropped = n - cursor;
  const double slots = static_cast<double>(e.steps) * static_cast<double>(opts_.world_size * opts_.batch_tokens);
  e.fill = e.steps ? static_cast<double>(e.tokens) / slots : 0.0;
  return e;
}

EpochPacking Packer::epoch_packing(int64_t epoch) const { return count_steps(order(epoch), 0); }

int64_t Packer::steps_remaining() const {
  const int64_t epochs = corpus_.epoch_orders();
  if (epochs == 0) return -1;
  int64_t steps = cursor_ < usable() ? count_steps(perm_, cursor_).steps : 0;
  for (int64_t e = epoch_ + 1; e < epochs; ++e) steps += epoch_packing(e).steps;
  return steps;
}

}  // namespace hrm
