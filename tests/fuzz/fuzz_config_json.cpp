// libFuzzer target: arbitrary bytes as config.json -> hrm::parse_config.
//
// The parser may only ever throw hrm::Error; any other exception, crash or sanitizer report is a
// bug. Accepted configs must have products that fit in 64 bits (parameter_count, kv_slots).
// Not for: checking the parsed values (tests/runtime/config_test.cpp does that).

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/error.h"
#include "runtime/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const hrm::ModelConfig c =
        hrm::parse_config(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.json");
    // UBSan flags signed overflow here if validation let an overflowing config through.
    volatile int64_t sink = c.parameter_count() + c.kv_slots() + c.attn_dim();
    (void)sink;
  } catch (const hrm::Error&) {
  }
  return 0;
}
