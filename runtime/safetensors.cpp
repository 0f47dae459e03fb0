// Reading safetensors files and Hugging Face checkpoint directories (see safetensors.h).
//
// The format (github.com/huggingface/safetensors, "Format" in its README): an 8-byte little-endian
// header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__":
// {str: str}}, then the data section; offsets are relative to the data section. Everything in the
// header is untrusted and checked here before any TensorView is handed out. Not for: writing (see
// safetensors_writer.h).

#include "runtime/safetensors.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>

#include "common/error.h"
#include "runtime/mmap_file.h"

namespace hrm {

static_assert(std::endian::native == std::endian::little,
              "safetensors data are little-endian; a big-endian host needs byte swaps");

namespace {

constexpr size_t kHeaderLengthBytes = 8;
// The reference implementation refuses headers above 100 MB (safetensors/src/tensor.rs,
// MAX_HEADER_SIZE); so do we, so a corrupt length cannot make us parse gigabytes of weights as JSON.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr std::string_view kMetadataKey = "__metadata__";
constexpr std::string_view kSingleFile = "model.safetensors";
constexpr std::string_view kIndexFile = "model.safetensors.index.json";

std::string shape_string(std::span<const int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += cat(i ? "," : "", shape[i]);
  return s + "]";
}

std::optional<DType> parse_dtype(std::string_view s) {
  if (s == "F32") return DType::kF32;
  if (s == "F16") return DType::kF16;
  if (s == "BF16") return DType::kBF16;
  return std::nullopt;
}

// Reads a non-negative JSON integer that must fit in uint64.
std::optional<uint64_t> as_u64(const rapidjson::Value& v) {
  if (!v.IsUint64()) return std::nullopt;
  return v.GetUint64();
}

std::string read_file_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(cat(path.string(), ": cannot open"));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

std::string_view dtype_name(DType dt) {
  switch (dt) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
  }
  return "?";
}

size_t dtype_size(DType dt) {
  switch (dt) {
    case DType::kF32: return 4;
    case DType::kF16: return 2;
    case DType::kBF16: return 2;
  }
  return 0;
}

float bf16_to_f32(uint16_t bits) {
  // bf16 is the top half of an fp32: widening is a shift, exact for every value including NaN.
  return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
}

float f16_to_f32(uint16_t bits) {
  // IEEE binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. Every f16 is exact in fp32.
  constexpr uint32_t kExpMask = 0x1f, kMantBits = 10, kMantMask = 0x3ff;
  constexpr int kBiasDelta = 127 - 15;
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000) << 16;
  const uint32_t exp = (bits >> kMantBits) & kExpMask;
  const uint32_t mant = bits & kMantMask;
  if (exp == kExpMask)  // inf / NaN: keep the payload
    return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
  if (exp != 0)
    return std::bit_cast<float>(sign | ((exp + kBiasDelta) << 23) | (mant << 13));
  // Zero or subnormal: mant × 2^-24, a product that is exact in fp32.
  constexpr float kSubnormalUnit = 1.0f / 16777216.0f;  // 2^-24
  const float magnitude = static_cast<float>(mant) * kSubnormalUnit;
  return std::bit_cast<float>(sign | std::bit_cast<uint32_t>(magnitude));
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<float> TensorView::to_f32() const {
  std::vector<float> out(static_cast<size_t>(numel()));
  to_f32(out.data());
  return out;
}

void TensorView::to_f32(float* out) const {
  const size_t n = static_cast<size_t>(numel());
  HRM_CHECK(nbytes == n * dtype_size(dtype), file, ": tensor '", name, "' byte count does not match its shape");
  if (n == 0) return;
  HRM_CHECK(data != nullptr && out != nullptr, "tensor '", name, "' has no data");
  switch (dtype) {
    case DType::kF32:
      std::memcpy(out, data, nbytes);
      return;
    case DType::kBF16:
    case DType::kF16: {
      const bool bf16 = dtype == DType::kBF16;
      for (size_t i = 0; i < n; ++i) {
        uint16_t bits;  // memcpy: the mapped data need not be 2-byte aligned
        std::memcpy(&bits, data + 2 * i, sizeof bits);
        out[i] = bf16 ? bf16_to_f32(bits) : f16_to_f32(bits);
      }
      return;
    }
  }
}

struct SafetensorsFile::Impl {
  std::string origin;
  MappedFile mapping;  // empty for from_bytes
  std::map<std::string, TensorView> tensors;
  std::map<std::string, std::string> metadata;

  void parse(std::span<const std::byte> bytes);
};

void SafetensorsFile::Impl::parse(std::span<const std::byte> bytes) {
  if (bytes.size() < kHeaderLengthBytes)
    throw Error(cat(origin, ": file is ", bytes.size(), " bytes, too short for the 8-byte header length"));
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), kHeaderLengthBytes);
  const uint64_t rest = bytes.size() - kHeaderLengthBytes;
  if (header_len > rest)
    throw Error(cat(origin, ": header length ", header_len, " exceeds the ", rest,
                    " bytes that follow it (truncated file, or not a safetensors file)"));
  if (header_len > kMaxHeaderBytes)
    throw Error(cat(origin, ": header length ", header_len, " exceeds the ", kMaxHeaderBytes, "-byte limit"));

  const char* header = reinterpret_cast<const char*>(bytes.data() + kHeaderLengthBytes);
  rapidjson::Document doc;
  // Iterative: a hostile header must not recurse the stack away.
  doc.Parse<rapidjson::kParseIterativeFlag>(header, header_len);
  if (doc.HasParseError())
    throw Error(cat(origin, ": header is not valid JSON (byte ", doc.GetErrorOffset(), " of the header: ",
                    rapidjson::GetParseError_En(doc.GetParseError()), ")"));
  if (!doc.IsObject()) throw Error(cat(origin, ": header must be a JSON object"));

  const std::byte* data = bytes.data() + kHeaderLengthBytes + header_len;
  const uint64_t data_size = rest - header_len;
  bool saw_metadata = false;

  for (const auto& m : doc.GetObject()) {
    const std::string name(m.name.GetString(), m.name.GetStringLength());
    const rapidjson::Value& v = m.value;
    if (name == kMetadataKey) {
      if (saw_metadata) throw Error(cat(origin, ": '", kMetadataKey, "' appears twice"));
      saw_metadata = true;
      if (v.IsNull()) continue;
      if (!v.IsObject()) throw Error(cat(origin, ": '", kMetadataKey, "' must be an object of strings"));
      for (const auto& kv : v.GetObject()) {
        std::string key(kv.name.GetString(), kv.name.GetStringLength());
        if (!kv.value.IsString())
          throw Error(cat(origin, ": metadata '", key, "' must be a string"));
        if (!metadata.emplace(key, std::string(kv.value.GetString(), kv.value.GetStringLength())).second)
          throw Error(cat(origin, ": metadata '", key, "' appears twice"));
      }
      continue;
    }

    auto bad = [&](std::string_view what) { return Error(cat(origin, ": tensor '", name, "' ", what)); };
    if (tensors.count(name)) throw bad("appears twice in the header");
    if (!v.IsObject()) throw bad("must be a JSON object with dtype, shape and data_offsets");

    auto dtype_it = v.FindMember("dtype");
    if (dtype_it == v.MemberEnd() || !dtype_it->value.IsString()) throw bad("has no string 'dtype'");
    const std::string dtype_str(dtype_it->value.GetString(), dtype_it->value.GetStringLength());
    std::optional<DType> dtype = parse_dtype(dtype_str);
    if (!dtype) throw bad(cat("has unsupported dtype '", dtype_str, "' (hrmbench reads F32, F16 and BF16)"));

    auto shape_it = v.FindMember("shape");
    if (shape_it == v.MemberEnd() || !shape_it->value.IsArray()) throw bad("has no 'shape' array");
    std::vector<int64_t> shape;
    uint64_t numel = 1;
    for (const rapidjson::Value& d : shape_it->value.GetArray()) {
      std::optional<uint64_t> dim = as_u64(d);
      if (!dim || *dim > static_cast<uint64_t>(INT64_MAX)) throw bad("has a shape entry that is not a non-negative integer");
      if (__builtin_mul_overflow(numel, *dim, &numel) || numel > static_cast<uint64_t>(INT64_MAX))
        throw bad("has a shape whose element count overflows");
      shape.push_back(static_cast<int64_t>(*dim));
    }
    uint64_t nbytes = 0;
    if (__builtin_mul_overflow(numel, dtype_size(*dtype), &nbytes)) throw bad("has a byte size that overflows");

    auto off_it = v.FindMember("data_offsets");
    if (off_it == v.MemberEnd() || !off_it->value.IsArray() || off_it->value.Size() != 2)
      throw bad("has no 'data_offsets' pair [begin, end]");
    std::optional<uint64_t> begin = as_u64(off_it->value[0]), end = as_u64(off_it->value[1]);
    if (!begin || !end) throw bad("has data_offsets that are not non-negative integers");
    if (*begin > *end) throw bad(cat("has data_offsets [", *begin, ", ", *end, "] with begin after end"));
    if (*end > data_size)
      throw bad(cat("has data_offsets [", *begin, ", ", *end, "] past the end of the ", data_size,
                    "-byte data section"));
    if (*end - *begin != nbytes)
      throw bad(cat("spans ", *end - *begin, " bytes, but shape ", shape_string(shape), " of ", dtype_str,
                    " needs ", nbytes));

    TensorView t;
    t.name = name;
    t.dtype = *dtype;
    t.shape = std::move(shape);
    t.data = data + *begin;
    t.nbytes = static_cast<size_t>(nbytes);
    t.file = origin;
    tensors.emplace(name, std::move(t));
  }

  // No two tensors may share bytes (the reference writer never produces that, and a reader that
  // accepted it would alias weights that training later updates separately).
  std::vector<std::tuple<const std::byte*, const std::byte*, const std::string*>> spans;
  for (const auto& [name, t] : tensors)
    if (t.nbytes > 0) spans.emplace_back(t.data, t.data + t.nbytes, &name);
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i)
    if (std::get<0>(spans[i]) < std::get<1>(spans[i - 1]))
      throw Error(cat(origin, ": tensors '", *std::get<2>(spans[i - 1]), "' and '", *std::get<2>(spans[i]),
                      "' overlap in the data section"));
}

SafetensorsFile::SafetensorsFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept = default;
SafetensorsFile::~SafetensorsFile() = default;

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  auto impl = std::make_unique<Impl>();
  impl->origin = path.string();
  impl->mapping = MappedFile::open(path);
  impl->parse(impl->mapping.bytes());
  return SafetensorsFile(std::move(impl));
}

SafetensorsFile SafetensorsFile::from_bytes(std::span<const std::byte> bytes, std::string origin) {
  auto impl = std::make_unique<Impl>();
  impl->origin = std::move(origin);
  impl->parse(bytes);
  return SafetensorsFile(std::move(impl));
}

const std::map<std::string, TensorView>& SafetensorsFile::tensors() const { return impl_->tensors; }
const std::map<std::string, std::string>& SafetensorsFile::metadata() const { return impl_->metadata; }
const std::string& SafetensorsFile::origin() const { return impl_->origin; }

Checkpoint Checkpoint::open(const std::filesystem::path& model_dir) {
  Checkpoint ckpt;
  ckpt.dir_ = model_dir;
  const std::filesystem::path single = model_dir / kSingleFile;
  const std::filesystem::path index_path = model_dir / kIndexFile;

  // Like Transformers' from_pretrained, a single model.safetensors wins over an index.
  if (std::filesystem::is_regular_file(single)) {
    ckpt.files_.push_back(SafetensorsFile::open(single));
  } else if (std::filesystem::is_regular_file(index_path)) {
    const std::string origin = index_path.string();
    const std::string text = read_file_text(index_path);
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseIterativeFlag>(text.data(), text.size());
    if (doc.HasParseError())
      throw Error(cat(origin, ": invalid JSON at byte ", doc.GetErrorOffset(), ": ",
                      rapidjson::GetParseError_En(doc.GetParseError())));
    if (!doc.IsObject()) throw Error(cat(origin, ": expected a JSON object"));
    auto wm = doc.FindMember("weight_map");
    if (wm == doc.MemberEnd() || !wm->value.IsObject())
      throw Error(cat(origin, ": missing the 'weight_map' object (tensor name -> shard file)"));

    std::map<std::string, std::string> weight_map;  // tensor -> shard
    std::map<std::string, size_t> shard_slot;       // shard -> position in files_
    for (const auto& m : wm->value.GetObject()) {
      std::string tensor(m.name.GetString(), m.name.GetStringLength());
      if (!m.value.IsString())
        throw Error(cat(origin, ": weight_map entry for tensor '", tensor, "' must be a file name"));
      std::string shard(m.value.GetString(), m.value.GetStringLength());
      const std::filesystem::path rel(shard);
      if (shard.empty() || rel.is_absolute() ||
          std::any_of(rel.begin(), rel.end(), [](const auto& part) { return part == ".."; }))
        throw Error(cat(origin, ": tensor '", tensor, "' maps to '", shard,
                        "', expected a file name inside the model directory"));
      if (!weight_map.emplace(tensor, shard).second)
        throw Error(cat(origin, ": tensor '", tensor, "' appears twice in weight_map"));
      if (shard_slot.count(shard)) continue;
      const std::filesystem::path shard_path = model_dir / rel;
      if (!std::filesystem::is_regular_file(shard_path))
        throw Error(cat(origin, ": shard '", shard, "' (holding tensor '", tensor, "') does not exist"));
      shard_slot.emplace(shard, ckpt.files_.size());
      ckpt.files_.push_back(SafetensorsFile::open(shard_path));
    }
    for (const auto& [tensor, shard] : weight_map)
      if (!ckpt.files_[shard_slot.at(shard)].tensors().count(tensor))
        throw Error(cat(origin, ": tensor '", tensor, "' is mapped to shard '", shard,
                        "', which does not contain it"));
  } else {
    throw Error(cat(model_dir.string(), ": no checkpoint found (expected ", kSingleFile, " or ", kIndexFile, ")"));
  }

  // The views live inside each file's heap-allocated Impl, so these pointers survive moves of files_.
  for (const SafetensorsFile& f : ckpt.files_) {
    for (const auto& [name, view] : f.tensors()) {
      auto [it, inserted] = ckpt.index_.emplace(name, &view);
      if (!inserted)
        throw Error(cat(ckpt.dir_.string(), ": tensor '", name, "' is stored twice, in ", it->second->file,
                        " and ", view.file));
    }
  }
  return ckpt;
}

const TensorView* Checkpoint::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

const TensorView& Checkpoint::require(std::string_view name, std::vector<int64_t> expected_shape) const {
  const TensorView* t = find(name);
  if (!t) throw Error(cat(dir_.string(), ": missing tensor '", name, "'"));
  if (t->shape != expected_shape)
    throw Error(cat(dir_.string(), ": tensor '", name, "' has shape ", shape_string(t->shape), ", expected ",
                    shape_string(expected_shape), " (in ", t->file, ")"));
  return *t;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& [name, view] : index_) out.push_back(name);
  return out;
}

}  // namespace hrm
