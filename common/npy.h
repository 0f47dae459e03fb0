// .npy headers (NumPy format versions 1.0, 2.0 and 3.0): the one parser of this outside input,
// shared by the contamination engine (memory-mapped tokenized corpora) and the training data
// reader. Fuzzed by tests/fuzz/fuzz_npy_header.cpp. Reads no array data.
// Not for: pickled object arrays, structured dtypes or .npz archives.
//
// Example:
//   hrm::NpyHeader h = hrm::parse_npy_header(file_bytes, "tokens.npy");
//   if (h.descr != "<u4" || h.shape.size() != 1) throw ...;
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hrm {

struct NpyHeader {
  std::string descr;            // e.g. "<u4"
  bool fortran_order = false;
  std::vector<uint64_t> shape;
  size_t data_offset = 0;       // bytes from the start of the file to the data
};

// Parses the header at the start of `bytes`. Throws hrm::Error naming `origin` and the field on
// anything malformed. Does not check that the data is present.
NpyHeader parse_npy_header(std::span<const uint8_t> bytes, std::string_view origin);

}  // namespace hrm
