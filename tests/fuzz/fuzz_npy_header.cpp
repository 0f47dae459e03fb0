// libFuzzer target for the .npy header parser (ngram/npy.cpp): any byte string must either parse
// into a consistent header or raise hrm::Error, never crash or read out of bounds.
// Seeds in tests/fuzz/corpus/fuzz_npy_header/ were written by numpy (format versions 1, 2, 3).
#include <cstdint>
#include <cstdlib>
#include <span>

#include "common/error.h"
#include "ngram/contam.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const hrm::ngram::NpyHeader h = hrm::ngram::parse_npy_header(std::span<const uint8_t>(data, size), "fuzz.npy");
    if (h.data_offset > size) std::abort();  // the header may not claim bytes it does not have
  } catch (const hrm::Error&) {
  }
  return 0;
}
