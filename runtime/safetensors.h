// Read-only, memory-mapped access to safetensors checkpoints (single file or sharded with
// model.safetensors.index.json).
//
// The header is validated completely on open: JSON shape, dtypes, shapes, offsets inside the data
// section, no overlaps, byte counts equal to numel × element size. Every error names the file and
// the tensor. Not for: writing checkpoints (see safetensors_writer.h).
//
// Example:
//   hrm::Checkpoint ckpt = hrm::Checkpoint::open("model_dir");
//   const hrm::TensorView* t = ckpt.find("lm_head.weight");
//   std::vector<float> w = t->to_f32();
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hrm {

enum class DType { kF32, kF16, kBF16 };
std::string_view dtype_name(DType dt);  // "F32", "F16", "BF16" as spelled in safetensors
size_t dtype_size(DType dt);
// Exact widening of one bf16 / IEEE half value (subnormals, infinities, NaN payloads included).
float bf16_to_f32(uint16_t bits);
float f16_to_f32(uint16_t bits);

struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;  // points into the mapped file
  size_t nbytes = 0;
  std::string file;                 // for error messages

  int64_t numel() const;
  // Converts to fp32 (exact for all three dtypes).
  std::vector<float> to_f32() const;
  void to_f32(float* out) const;
};

// One mapped .safetensors file.
class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::filesystem::path& path);
  // Parses a whole file image held in memory (for tests and fuzzing); `bytes` must outlive the result.
  static SafetensorsFile from_bytes(std::span<const std::byte> bytes, std::string origin);
  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  ~SafetensorsFile();

  const std::map<std::string, TensorView>& tensors() const;
  const std::map<std::string, std::string>& metadata() const;
  const std::string& origin() const;  // the path (or origin given to from_bytes), for messages

 private:
  struct Impl;
  explicit SafetensorsFile(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// All tensors of a model directory: model.safetensors, or the shards named by
// model.safetensors.index.json (every shard listed must exist and hold the tensors the index says).
// A single model.safetensors wins when both exist, as in Transformers. A tensor stored in two files
// is an error. The Checkpoint may be moved; the views stay valid as long as it lives.
class Checkpoint {
 public:
  static Checkpoint open(const std::filesystem::path& model_dir);
  const TensorView* find(std::string_view name) const;  // nullptr when absent
  // Throws hrm::Error "<dir>: missing tensor 'name'" / "... has shape [a,b], expected [c,d]".
  const TensorView& require(std::string_view name, std::vector<int64_t> expected_shape) const;
  std::vector<std::string> names() const;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, const TensorView*, std::less<>> index_;
};

}  // namespace hrm
