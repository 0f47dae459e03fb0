// libFuzzer target: arbitrary bytes as a safetensors file -> SafetensorsFile::from_bytes, then every
// tensor converted to fp32.
//
// Only hrm::Error may escape the parser; a view it accepts must lie inside the input (ASan checks
// the to_f32 reads). Not for: checking values (tests/runtime/safetensors_test.cpp does that).

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/error.h"
#include "runtime/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A private copy, so that ASan catches reads past the end of the file image exactly.
  const std::vector<std::byte> bytes(reinterpret_cast<const std::byte*>(data),
                                     reinterpret_cast<const std::byte*>(data) + size);
  try {
    const hrm::SafetensorsFile f = hrm::SafetensorsFile::from_bytes(bytes, "fuzz.safetensors");
    for (const auto& [name, t] : f.tensors()) {
      const std::vector<float> values = t.to_f32();
      volatile float sink = values.empty() ? 0.0f : values.back();
      (void)sink;
    }
  } catch (const hrm::Error&) {
  }
  return 0;
}
