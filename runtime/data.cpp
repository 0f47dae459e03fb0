// Training corpora and packing (see data.h).
#include "runtime/data.h"

#include <rapidjson/document.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "common/error.h"
#include "common/npy.h"

namespace hrm {
namespace {

// The .npy magic and the header-length field width per format version (numpy format spec).
constexpr char kNpyMagic[] = "\x93NUMPY";
constexpr size_t kNpyMagicLen = 6;

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(cat(path.string(), ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// splitmix64 (also used by the initialiser): the same stream on every platform, unlike std::shuffle.
uint64_t mix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

std::span<const TokenId> TrainCorpus::instruction(int64_t i) const {
  return {tokens.data() + inst_start[i], static_cast<size_t>(inst_len[i])};
}
std::span<const TokenId> TrainCorpus::response(int64_t i) const {
  return {tokens.data() + resp_start[i], static_cast<size_t>(resp_len[i])};
}

void TrainCorpus::add(std::span<const TokenId> inst, std::span<const TokenId> resp) {
  inst_start.push_back(static_cast<int64_t>(tokens.size()));
  inst_len.push_back(static_cast<int64_t>(inst.size()));
  tokens.insert(tokens.end(), inst.begin(), inst.end());
  resp_start.push_back(static_cast<int64_t>(tokens.size()));
  resp_len.push_back(static_cast<int64_t>(resp.size()));
  tokens.insert(tokens.end(), resp.begin(), resp.end());
}

void TrainCorpus::validate(const std::string& origin, int64_t vocab) const {
  const size_t n = inst_start.size();
  if (inst_len.size() != n || resp_start.size() != n || resp_len.size() != n)
    throw Error(cat(origin, ": inst_start/inst_len/resp_start/resp_len have different lengths (", n, ", ",
                    inst_len.size(), ", ", resp_start.size(), ", ", resp_len.size(), ")"));
  const int64_t T = static_cast<int64_t>(tokens.size());
  for (size_t i = 0; i < n; ++i) {
    if (inst_len[i] <= 0 || resp_len[i] <= 0)
      throw Error(cat(origin, ": sample ", i, " has an empty instruction or response (", inst_len[i], ", ",
                      resp_len[i], " tokens)"));
    if (inst_start[i] < 0 || inst_start[i] + inst_len[i] > T || resp_start[i] < 0 || resp_start[i] + resp_len[i] > T)
      throw Error(cat(origin, ": sample ", i, " spans outside the ", T, " tokens"));
  }
  if (vocab > 0) {
    for (size_t i = 0; i < tokens.size(); ++i)
      if (tokens[i] < 0 || tokens[i] >= vocab)
        throw Error(cat(origin, ": token ", i, " has id ", tokens[i], ", outside the vocabulary [0, ", vocab, ")"));
  }
}

void add_text_sample(TrainCorpus& corpus, const Tokenizer& tok, const PromptFormat& fmt,
                     std::string_view instruction, std::string_view response, std::string_view condition) {
  const std::vector<TokenId> inst = format_prompt(tok, fmt, instruction, condition);
  std::vector<TokenId> resp = tok.encode(response);
  resp.push_back(stop_token(tok, fmt));  // the response ends with <|box_end|>, where generation stops
  corpus.add(inst, resp);
}

TrainCorpus load_jsonl_corpus(const std::filesystem::path& path, const Tokenizer& tok, const PromptFormat& fmt) {
  std::ifstream in(path);
  if (!in) throw Error(cat(path.string(), ": cannot open the training JSONL"));
  stop_token(tok, fmt);  // fail early, naming the missing token
  TrainCorpus corpus;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    rapidjson::Document doc;
    doc.Parse(line.c_str(), line.size());
    if (doc.HasParseError() || !doc.IsObject())
      throw Error(cat(path.string(), ":", line_no, ": not a JSON object"));
    auto text = [&](const char* key, bool required) -> std::string {
      const auto it = doc.FindMember(key);
      if (it == doc.MemberEnd() || it->value.IsNull()) {
        if (required) throw Error(cat(path.string(), ":", line_no, ": missing string field \"", key, "\""));
        return "";
      }
      if (!it->value.IsString())
        throw Error(cat(path.string(), ":", line_no, ": field \"", key, "\" must be a string"));
      return std::string(it->value.GetString(), it->value.GetStringLength());
    };
    add_text_sample(corpus, tok, fmt, text("instruction", true), text("response", true), text("condition", false));
  }
  if (corpus.size() == 0) throw Error(cat(path.string(), ": no training samples"));
  return corpus;
}

std::vector<int64_t> read_npy_1d(const std::filesystem::path& path) {
  const std::string bytes = read_file(path);
  const std::string origin = path.string();
  const NpyHeader h =
      parse_npy_header(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), origin);
  if (h.fortran_order) throw Error(cat(origin, ": Fortran-ordered .npy arrays are not supported"));
  if (h.shape.size() != 1) throw Error(cat(origin, ": expected a 1-D array, got ", h.shape.size(), " dimensions"));
  const std::string& descr = h.descr;
  const auto n = static_cast<int64_t>(h.shape[0]);
  size_t width = 0;
  bool is_signed = true;
  if (descr == "<i4" || descr == "<u4") width = 4;
  else if (descr == "<i8" || descr == "<u8") width = 8;
  else if (descr == "<i2" || descr == "<u2") width = 2;
  else throw Error(cat(origin, ": unsupported .npy dtype '", descr, "' (expected <i2/<u2/<i4/<u4/<i8/<u8)"));
  is_signed = descr[1] == 'i';
  const size_t data = h.data_offset;
  if (bytes.size() < data || bytes.size() - data != static_cast<size_t>(n) * width)
    throw Error(cat(origin, ": .npy holds ", bytes.size() - data, " data bytes, expected ", n * width));
  std::vector<int64_t> out(n);
  for (int64_t i = 0; i < n; ++i) {
    uint64_t u = 0;
    for (size_t b = 0; b < width; ++b)
      u |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[data + i * width + b])) << (8 * b);
    if (is_signed && width < 8 && (u >> (8 * width - 1)) & 1) u |= ~uint64_t{0} << (8 * width);  // sign-extend
    out[i] = static_cast<int64_t>(u);
  }
  return out;
}

void write_npy_1d(const std::filesystem::path& path, std::span<const int64_t> values, const std::string& dtype) {
  // numpy/lib/format.py: ARRAY_ALIGN = 64, and GROWTH_AXIS_MAX_DIGITS = 21 spaces reserved minus the
  // digits of the leading dimension.
  constexpr size_t kAlign = 64, kGrowthDigits = 21, kPreamble = 10;
  int64_t lo = 0, hi = 0;
  size_t width = 0;
  if (dtype == "<u4") lo = 0, hi = std::numeric_limits<uint32_t>::max(), width = 4;
  else if (dtype == "<i4") lo = std::numeric_limits<int32_t>::min(), hi = std::numeric_limits<int32_t>::max(), width = 4;
  else if (dtype == "<i8") lo = std::numeric_limits<int64_t>::min(), hi = std::numeric_limits<int64_t>::max(), width = 8;
  else throw Error(cat(path.string(), ": unsupported .npy dtype '", dtype, "' for writing"));
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
    for (size_t b = 0; b < width; ++b) bytes += static_cast<char>((u >> (8 * b)) & 0xff);
  }
  std::ofstream out(path, std::ios::binary);
  if (!out) throw Error(cat(path.string(), ": cannot write"));
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw Error(cat(path.string(), ": write failed"));
}

void write_tokenized_corpus(const std::filesystem::path& dir, const TrainCorpus& corpus) {
  std::filesystem::create_directories(dir);
  corpus.validate(dir.string(), 0);
  const std::vector<int64_t> tokens(corpus.tokens.begin(), corpus.tokens.end());
  write_npy_1d(dir / "tokens.npy", tokens, "<u4");
  write_npy_1d(dir / "inst_start.npy", corpus.inst_start, "<i8");
  write_npy_1d(dir / "inst_len.npy", corpus.inst_len, "<i8");
  write_npy_1d(dir / "resp_start.npy", corpus.resp_start, "<i8");
  write_npy_1d(dir / "resp_len.npy", corpus.resp_len, "<i8");
}

TrainCorpus load_tokenized_corpus(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::vector<fs::path> dirs;
  if (fs::exists(dir / "tokens.npy")) {
    dirs.push_back(dir);
  } else {
    if (!fs::is_directory(dir)) throw Error(cat(dir.string(), ": not a directory"));
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_directory() && fs::exists(e.path() / "tokens.npy")) dirs.push_back(e.path());
    std::sort(dirs.begin(), dirs.end());
    if (dirs.empty()) throw Error(cat(dir.string(), ": no tokens.npy here or in any sub-directory"));
  }
  TrainCorpus corpus;
  for (const fs::path& d : dirs) {
    TrainCorpus part;
    for (int64_t t : read_npy_1d(d / "tokens.npy")) {
      if (t < 0 || t > std::numeric_limits<TokenId>::max())
        throw Error(cat((d / "tokens.npy").string(), ": token id ", t, " out of range"));
      part.tokens.push_back(static_cast<TokenId>(t));
    }
    part.inst_start = read_npy_1d(d / "inst_start.npy");
    part.inst_len = read_npy_1d(d / "inst_len.npy");
    part.resp_start = read_npy_1d(d / "resp_start.npy");
    part.resp_len = read_npy_1d(d / "resp_len.npy");
    part.validate(d.string(), 0);
    const int64_t base = static_cast<int64_t>(corpus.tokens.size());
    corpus.tokens.insert(corpus.tokens.end(), part.tokens.begin(), part.tokens.end());
    for (int64_t i = 0; i < part.size(); ++i) {
      corpus.inst_start.push_back(part.inst_start[i] + base);
      corpus.inst_len.push_back(part.inst_len[i]);
      corpus.resp_start.push_back(part.resp_start[i] + base);
      corpus.resp_len.push_back(part.resp_len[i]);
    }
  }
  return corpus;
}

TrainCorpus load_corpus(const std::filesystem::path& path, const Tokenizer* tok, const PromptFormat& fmt) {
  if (std::filesystem::is_directory(path)) return load_tokenized_corpus(path);
  if (!tok) throw Error(cat(path.string(), ": a JSONL corpus needs a tokenizer (--tokenizer)"));
  return load_jsonl_corpus(path, *tok, fmt);
}

Packer::Packer(const TrainCorpus& corpus, int64_t batch_tokens, uint64_t seed, int64_t max_sample_tokens)
    : corpus_(corpus), budget_(batch_tokens), seed_(seed) {
  if (batch_tokens <= 0) throw Error(cat("batch token budget must be positive, got ", batch_tokens));
  const int64_t longest = max_sample_tokens > 0 ? std::min(max_sample_tokens, budget_) : budget_;
  for (int64_t i = 0; i < corpus.size(); ++i) {
    if (corpus.packed_length(i) <= longest) usable_.push_back(i);
    else ++skipped_;
  }
  if (usable_.empty())
    throw Error(cat("no training sample fits the batch budget of ", batch_tokens, " tokens (", corpus.size(),
                    " samples)"));
  perm_ = order(0);
}

std::vector<int64_t> Packer::order(int64_t epoch) const {
  std::vector<int64_t> p = usable_;
  uint64_t s = seed_ * 0x2545F4914F6CDD1Dull + static_cast<uint64_t>(epoch);
  for (size_t i = p.size(); i > 1; --i) std::swap(p[i - 1], p[mix(s) % i]);
  return p;
}

void Packer::seek(int64_t epoch, int64_t cursor) {
  if (epoch < 0 || cursor < 0 || cursor > static_cast<int64_t>(usable_.size()))
    throw Error(cat("data position (epoch ", epoch, ", cursor ", cursor, ") is outside this corpus of ",
                    usable_.size(), " usable samples"));
  epoch_ = epoch;
  cursor_ = cursor;
  perm_ = order(epoch_);
}

PackedBatch Packer::next() {
  if (cursor_ >= static_cast<int64_t>(perm_.size())) {
    ++epoch_;
    cursor_ = 0;
    perm_ = order(epoch_);
  }
  PackedBatch b;
  while (cursor_ < static_cast<int64_t>(perm_.size())) {
    const int64_t i = perm_[cursor_];
    if (b.size() + corpus_.packed_length(i) > budget_) break;
    b.add_sample(corpus_.instruction(i), corpus_.response(i));
    ++cursor_;
  }
  return b;
}

int64_t Packer::batches_per_epoch() const {
  int64_t batches = 0, used = budget_ + 1;
  for (int64_t i : order(epoch_)) {
    if (used + corpus_.packed_length(i) > budget_) {
      ++batches;
      used = 0;
    }
    used += corpus_.packed_length(i);
  }
  return batches;
}

}  // namespace hrm
