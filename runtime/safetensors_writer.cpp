// Writing safetensors files and sharded checkpoint directories (see safetensors_writer.h).
//
// Layout choices follow the reference writer (huggingface/safetensors, tensor.rs `prepare`): header
// padded with spaces to 8 bytes, tensors sorted by decreasing dtype size then name, contiguous data.
// Not for: reading (safetensors.cpp).

#include "runtime/safetensors_writer.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "common/error.h"

namespace hrm {
namespace {

constexpr size_t kHeaderAlign = 8;  // reference writer pads the header so data start 8-aligned
constexpr size_t kHeaderLengthBytes = 8;
constexpr std::string_view kMetadataKey = "__metadata__";
constexpr std::string_view kSingleFile = "model.safetensors";
constexpr std::string_view kIndexFile = "model.safetensors.index.json";

void write_bytes(const std::filesystem::path& path, const void* data, size_t size) {
  // Write beside the target and rename, so a crash never leaves a truncated checkpoint behind.
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(cat(tmp.string(), ": cannot create"));
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
    out.flush();
    if (!out) throw Error(cat(tmp.string(), ": write failed"));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw Error(cat(path.string(), ": cannot rename from ", tmp.string(), ": ", ec.message()));
}

std::string shard_name(size_t i, size_t n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, n);
  return buf;
}

}  // namespace

uint16_t f32_to_bf16(float value) {
  uint32_t u = std::bit_cast<uint32_t>(value);
  if ((u & 0x7fffffffu) > 0x7f800000u)  // NaN: truncating could turn it into inf; force quiet bit
    return static_cast<uint16_t>((u >> 16) | 0x0040u);
  // Round to nearest even on the 16 dropped bits; a carry into the exponent is the right answer
  // (including rounding the largest finite values up to inf).
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

uint16_t f32_to_f16(float value) {
  const uint32_t u = std::bit_cast<uint32_t>(value);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  constexpr uint32_t kF32Inf = 0x7f800000u;
  constexpr uint32_t kF16Inf = 0x7c00u;
  // 65520 = halfway between the largest half (65504) and 2^16: it and everything above round to inf.
  constexpr uint32_t kF32HalfOverflow = 0x477ff000u;
  constexpr uint32_t kF32HalfMinNormal = 0x38800000u;  // 2^-14
  constexpr uint32_t kF32HalfMinSubHalf = 0x33000000u; // 2^-25: half the smallest subnormal
  constexpr uint32_t kRebias = (127u - 15u) << 23;
  if (a > kF32Inf) return static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
  if (a >= kF32HalfOverflow) return static_cast<uint16_t>(sign | kF16Inf);
  if (a >= kF32HalfMinNormal) {
    const uint32_t h = a - kRebias;
    uint32_t r = h >> 13;
    const uint32_t rem = h & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  if (a <= kF32HalfMinSubHalf) return sign;  // rounds to ±0 (2^-25 itself is a tie to even 0)
  // Subnormal half: round(mantissa × 2^(e-126)) with the implicit bit restored.
  const uint32_t e = a >> 23;
  const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126u - e;  // 14..24 in this range
  uint32_t r = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (r & 1u))) ++r;
  return static_cast<uint16_t>(sign | r);
}

size_t SafetensorsWriter::check_new(const std::string& name, const std::vector<int64_t>& shape) const {
  if (name.empty()) throw Error("safetensors writer: tensor name is empty");
  if (name == kMetadataKey) throw Error(cat("safetensors writer: tensor name '", name, "' is reserved"));
  for (const Entry& e : entries_)
    if (e.name == name) throw Error(cat("safetensors writer: tensor '", name, "' added twice"));
  size_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0) throw Error(cat("safetensors writer: tensor '", name, "' has a negative dimension ", d));
    if (__builtin_mul_overflow(numel, static_cast<size_t>(d), &numel))
      throw Error(cat("safetensors writer: tensor '", name, "' has an element count that overflows"));
  }
  return numel;
}

void SafetensorsWriter::add(std::string name, DType dtype, std::vector<int64_t> shape,
                            std::span<const float> values) {
  const size_t numel = check_new(name, shape);
  if (values.size() != numel)
    throw Error(cat("safetensors writer: tensor '", name, "' has ", values.size(), " values, its shape needs ", numel));
  Entry e{std::move(name), dtype, std::move(shape), std::vector<std::byte>(numel * dtype_size(dtype))};
  switch (dtype) {
    case DType::kF32:
      if (numel) std::memcpy(e.bytes.data(), values.data(), e.bytes.size());
      break;
    case DType::kBF16:
    case DType::kF16:
      for (size_t i = 0; i < numel; ++i) {
        const uint16_t bits = dtype == DType::kBF16 ? f32_to_bf16(values[i]) : f32_to_f16(values[i]);
        std::memcpy(e.bytes.data() + 2 * i, &bits, sizeof bits);
      }
      break;
  }
  entries_.push_back(std::move(e));
}

void SafetensorsWriter::add_raw(std::string name, DType dtype, std::vector<int64_t> shape,
                                std::span<const std::byte> bytes) {
  const size_t numel = check_new(name, shape);
  if (bytes.size() != numel * dtype_size(dtype))
    throw Error(cat("safetensors writer: tensor '", name, "' has ", bytes.size(), " bytes, its shape needs ",
                    numel * dtype_size(dtype)));
  entries_.push_back(Entry{std::move(name), dtype, std::move(shape), {bytes.begin(), bytes.end()}});
}

void SafetensorsWriter::set_metadata(std::string key, std::string value) {
  metadata_[std::move(key)] = std::move(value);
}

size_t SafetensorsWriter::data_bytes() const {
  size_t n = 0;
  for (const Entry& e : entries_) n += e.bytes.size();
  return n;
}

std::vector<std::byte> SafetensorsWriter::file_image(const std::vector<const Entry*>& entries,
                                                     const std::map<std::string, std::string>& metadata) {
  std::vector<const Entry*> order = entries;
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    if (dtype_size(a->dtype) != dtype_size(b->dtype)) return dtype_size(a->dtype) > dtype_size(b->dtype);
    return a->name < b->name;
  });

  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  if (!metadata.empty()) {
    w.Key(kMetadataKey.data(), static_cast<rapidjson::SizeType>(kMetadataKey.size()));
    w.StartObject();
    for (const auto& [k, v] : metadata) {
      w.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
      w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
    }
    w.EndObject();
  }
  uint64_t offset = 0;
  for (const Entry* e : order) {
    w.Key(e->name.data(), static_cast<rapidjson::SizeType>(e->name.size()));
    w.StartObject();
    w.Key("dtype");
    const std::string_view dt = dtype_name(e->dtype);
    w.String(dt.data(), static_cast<rapidjson::SizeType>(dt.size()));
    w.Key("shape");
    w.StartArray();
    for (int64_t d : e->shape) w.Int64(d);
    w.EndArray();
    w.Key("data_offsets");
    w.StartArray();
    w.Uint64(offset);
    offset += e->bytes.size();
    w.Uint64(offset);
    w.EndArray();
    w.EndObject();
  }
  w.EndObject();

  std::string header(buf.GetString(), buf.GetSize());
  header.append((kHeaderAlign - header.size() % kHeaderAlign) % kHeaderAlign, ' ');
  const uint64_t header_len = header.size();

  std::vector<std::byte> out(kHeaderLengthBytes + header.size() + offset);
  std::memcpy(out.data(), &header_len, kHeaderLengthBytes);  // little-endian host (safetensors.cpp)
  std::memcpy(out.data() + kHeaderLengthBytes, header.data(), header.size());
  std::byte* p = out.data() + kHeaderLengthBytes + header.size();
  for (const Entry* e : order) {
    if (!e->bytes.empty()) std::memcpy(p, e->bytes.data(), e->bytes.size());
    p += e->bytes.size();
  }
  return out;
}

std::vector<std::byte> SafetensorsWriter::to_bytes() const {
  std::vector<const Entry*> all;
  for (const Entry& e : entries_) all.push_back(&e);
  return file_image(all, metadata_);
}

void SafetensorsWriter::write(const std::filesystem::path& path) const {
  const std::vector<std::byte> image = to_bytes();
  write_bytes(path, image.data(), image.size());
}

void SafetensorsWriter::write_checkpoint(const std::filesystem::path& model_dir, size_t max_shard_bytes) const {
  std::filesystem::create_directories(model_dir);
  const size_t total = data_bytes();
  std::error_code ignored;
  if (max_shard_bytes == 0 || total <= max_shard_bytes) {
    write(model_dir / kSingleFile);
    // A stale index would describe other weights; the single file wins on load, but leave no doubt.
    std::filesystem::remove(model_dir / kIndexFile, ignored);
    return;
  }

  std::vector<const Entry*> by_name;
  for (const Entry& e : entries_) by_name.push_back(&e);
  std::sort(by_name.begin(), by_name.end(), [](const Entry* a, const Entry* b) { return a->name < b->name; });
  std::vector<std::vector<const Entry*>> shards(1);
  size_t in_shard = 0;
  for (const Entry* e : by_name) {
    if (!shards.back().empty() && in_shard + e->bytes.size() > max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(e);
    in_shard += e->bytes.size();
  }

  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  w.Key("metadata");
  w.StartObject();
  w.Key("total_size");
  w.Uint64(total);
  w.EndObject();
  w.Key("weight_map");
  w.StartObject();
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string name = shard_name(i, shards.size());
    const std::vector<std::byte> image = file_image(shards[i], metadata_);
    write_bytes(model_dir / name, image.data(), image.size());
    for (const Entry* e : shards[i]) {
      w.Key(e->name.data(), static_cast<rapidjson::SizeType>(e->name.size()));
      w.String(name.data(), static_cast<rapidjson::SizeType>(name.size()));
    }
  }
  w.EndObject();
  w.EndObject();
  std::string index(buf.GetString(), buf.GetSize());
  index += '\n';
  write_bytes(model_dir / kIndexFile, index.data(), index.size());
  // A model.safetensors left from an earlier export would win over the index on load.
  std::filesystem::remove(model_dir / kSingleFile, ignored);
}

}  // namespace hrm
