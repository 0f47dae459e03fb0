// Writing safetensors files and Hugging Face checkpoint directories (single file or sharded with
// model.safetensors.index.json), for tests and for exporting trained weights.
//
// Tensors are collected in memory (converted from fp32 with round-to-nearest-even, or given as raw
// little-endian bytes), then written in the reference layout: header JSON padded with spaces to a
// multiple of 8 bytes, data ordered by decreasing element size then name so that every tensor is
// aligned to its element size. Not for: streaming tensors bigger than memory, or reading (see
// safetensors.h).
//
// Example:
//   hrm::SafetensorsWriter w;
//   w.add("lm_head.weight", hrm::DType::kBF16, {vocab, hidden}, weights);  // std::span<const float>
//   w.set_metadata("format", "pt");
//   w.write_checkpoint("out_dir");            // out_dir/model.safetensors
//   w.write_checkpoint("out_dir", 2 << 30);   // shards of at most ~2 GiB + the index
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "runtime/safetensors.h"

namespace hrm {

// fp32 -> bf16 / IEEE half, rounding to nearest even; overflow gives ±inf, NaN stays (quiet) NaN.
uint16_t f32_to_bf16(float value);
uint16_t f32_to_f16(float value);

class SafetensorsWriter {
 public:
  // Adds a tensor converted from fp32. Throws hrm::Error naming the tensor when the name is empty,
  // reserved ("__metadata__") or already added, a dimension is negative, or values.size() differs
  // from the shape's element count.
  void add(std::string name, DType dtype, std::vector<int64_t> shape, std::span<const float> values);
  // Adds a tensor from bytes already in `dtype`'s little-endian encoding (e.g. bf16 weights).
  void add_raw(std::string name, DType dtype, std::vector<int64_t> shape, std::span<const std::byte> bytes);
  void set_metadata(std::string key, std::string value);

  size_t tensor_count() const { return entries_.size(); }
  size_t data_bytes() const;  // the sum of all tensors' byte sizes

  // The whole file image (header length, header, data).
  std::vector<std::byte> to_bytes() const;
  // Writes one .safetensors file (to a temporary name, then renamed, so readers never see half a file).
  void write(const std::filesystem::path& path) const;
  // Writes model_dir/model.safetensors; or, when max_shard_bytes > 0 and the data exceed it,
  // model-0000i-of-0000n.safetensors shards (tensors in name order, a shard closes before it would
  // pass max_shard_bytes; one tensor larger than that gets a shard of its own) plus
  // model.safetensors.index.json with metadata.total_size and weight_map. Creates model_dir.
  void write_checkpoint(const std::filesystem::path& model_dir, size_t max_shard_bytes = 0) const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<std::byte> bytes;
  };
  // Validates a new tensor's name and shape; returns its element count.
  size_t check_new(const std::string& name, const std::vector<int64_t>& shape) const;
  static std::vector<std::byte> file_image(const std::vector<const Entry*>& entries,
                                           const std::map<std::string, std::string>& metadata);

  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace hrm
