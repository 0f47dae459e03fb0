// Tests of runtime/safetensors.{h,cpp} and runtime/safetensors_writer.{h,cpp}: files written by the
// Python `safetensors` package (tests/fixtures/safetensors, made by scripts/make_checkpoint_fixture.py)
// load with the values torch gives; our writer round-trips; fp16/bf16 conversions are checked
// exhaustively; every malformed header is refused with a message naming the file and the tensor.

#include "runtime/safetensors.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "common/error.h"
#include "runtime/safetensors_writer.h"

namespace {

namespace fs = std::filesystem;

fs::path fixtures() {
  // HRM_FIXTURES is set by tests/CMakeLists.txt; fall back to HRM_SOURCE_DIR, then the cwd.
  if (const char* dir = std::getenv("HRM_FIXTURES")) return fs::path(dir);
  if (const char* src = std::getenv("HRM_SOURCE_DIR")) return fs::path(src) / "tests" / "fixtures";
  return fs::path("tests/fixtures");
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "cannot open " << path;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_text(const fs::path& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
}

// A fresh scratch directory per test, removed at the end.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            hrm::cat("hrm_st_", info->test_suite_name(), "_", info->name(), "_", ::getpid());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// A safetensors file image: 8-byte length, the header text as given, then data_size zero bytes.
std::vector<std::byte> image(std::string_view header, size_t data_size) {
  std::vector<std::byte> out(8 + header.size() + data_size);
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}

// Expects `fn` to throw hrm::Error with every needle in its message.
template <class Fn>
void expect_error(Fn&& fn, std::initializer_list<std::string> needles) {
  try {
    fn();
    ADD_FAILURE() << "no error thrown";
  } catch (const hrm::Error& e) {
    const std::string msg = e.what();
    for (const std::string& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  }
}

void expect_header_error(std::string_view header, size_t data_size, std::initializer_list<std::string> needles) {
  SCOPED_TRACE(std::string(header));
  const std::vector<std::byte> bytes = image(header, data_size);
  expect_error([&] { hrm::SafetensorsFile::from_bytes(bytes, "bad.safetensors"); }, needles);
}

// Compares a tensor with an entry of tests/fixtures/safetensors/expected.json (fp32 bit patterns
// from torch's .float()); NaNs compare as NaN, everything else bit for bit.
void expect_matches(const hrm::TensorView& t, const rapidjson::Value& want) {
  SCOPED_TRACE(t.name);
  EXPECT_EQ(hrm::dtype_name(t.dtype), want["dtype"].GetString());
  std::vector<int64_t> shape;
  for (const auto& d : want["shape"].GetArray()) shape.push_back(d.GetInt64());
  EXPECT_EQ(t.shape, shape);
  const std::vector<float> got = t.to_f32();
  ASSERT_EQ(got.size(), want["bits"].Size());
  for (size_t i = 0; i < got.size(); ++i) {
    const float w = std::bit_cast<float>(static_cast<uint32_t>(want["bits"][i].GetUint()));
    if (std::isnan(w)) {
      EXPECT_TRUE(std::isnan(got[i])) << "element " << i;
    } else {
      EXPECT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(w)) << "element " << i << ": " << got[i] << " vs " << w;
    }
  }
}

rapidjson::Document expected_values() {
  rapidjson::Document doc;
  doc.Parse(read_text(fixtures() / "safetensors" / "expected.json").c_str());
  EXPECT_TRUE(doc.IsObject());
  return doc;
}

// IEEE half value by definition (sign, 5-bit exponent bias 15, 10-bit mantissa), in double.
double half_by_definition(uint16_t h) {
  const int sign = (h >> 15) ? -1 : 1;
  const int exp = (h >> 10) & 0x1f;
  const int mant = h & 0x3ff;
  if (exp == 0x1f) return mant ? std::nan("") : sign * HUGE_VAL;
  if (exp == 0) return sign * std::ldexp(mant, -24);
  return sign * std::ldexp(1024 + mant, exp - 25);
}

TEST(Dtype, F16ToF32IsExactForAllValues) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const float got = hrm::f16_to_f32(static_cast<uint16_t>(h));
    const double want = half_by_definition(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << std::hex << h;
    } else {
      ASSERT_EQ(static_cast<double>(got), want) << std::hex << h;
      ASSERT_EQ(std::signbit(got), std::signbit(want)) << std::hex << h;
    }
  }
}

TEST(Dtype, Bf16ToF32IsTheTopHalf) {
  EXPECT_EQ(hrm::bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(hrm::bf16_to_f32(0xc040), -3.0f);
  EXPECT_EQ(hrm::bf16_to_f32(0x0001), std::ldexp(1.0f, -133));  // smallest subnormal
  EXPECT_EQ(hrm::bf16_to_f32(0xff80), -INFINITY);
  EXPECT_TRUE(std::isnan(hrm::bf16_to_f32(0x7fc0)));
  EXPECT_TRUE(std::signbit(hrm::bf16_to_f32(0x8000)));
}

TEST(Dtype, F32ToF16RoundsToNearestEven) {
  // Every finite half survives the round trip; the midpoint between two neighbours goes to the
  // even one, and a hair off the midpoint goes to the nearer one.
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    const float v = hrm::f16_to_f32(static_cast<uint16_t>(h));
    ASSERT_EQ(hrm::f32_to_f16(v), h) << std::hex << h;
    ASSERT_EQ(hrm::f32_to_f16(-v), h | 0x8000) << std::hex << h;
    if (h + 1 >= 0x7c00) continue;
    const float next = hrm::f16_to_f32(static_cast<uint16_t>(h + 1));
    const float mid = (v + next) / 2;  // exact: halves have 11 significant bits
    const uint32_t even = (h & 1) ? h + 1 : h;
    ASSERT_EQ(hrm::f32_to_f16(mid), even) << std::hex << h;
    ASSERT_EQ(hrm::f32_to_f16(std::nextafter(mid, 0.0f)), h) << std::hex << h;
    ASSERT_EQ(hrm::f32_to_f16(std::nextafter(mid, INFINITY)), h + 1) << std::hex << h;
  }
  EXPECT_EQ(hrm::f32_to_f16(65519.0f), 0x7bff);  // below the 65520 midpoint: largest half
  EXPECT_EQ(hrm::f32_to_f16(65520.0f), 0x7c00);  // tie to even: inf
  EXPECT_EQ(hrm::f32_to_f16(1e30f), 0x7c00);
  EXPECT_EQ(hrm::f32_to_f16(-INFINITY), 0xfc00);
  EXPECT_EQ(hrm::f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // tie between 0 and 2^-24: even 0
  EXPECT_EQ(hrm::f32_to_f16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(hrm::f32_to_f16(1e-30f), 0x0000);
  EXPECT_TRUE(std::isnan(hrm::f16_to_f32(hrm::f32_to_f16(NAN))));
}

#if defined(__FLT16_MAX__) && !defined(__clang__)
TEST(Dtype, F32ToF16AgreesWithTheCompiler) {
  // g++ ≥ 12 implements _Float16 conversions on x86 (libgcc, round to nearest even).
  std::mt19937 rng(1234);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 2'000'000; ++i) {
    uint32_t u = bits(rng);
    // Concentrate on the exponents where halves live, keep the random mantissa and sign.
    if (i % 2) u = (u & 0x807fffffu) | ((100u + (u >> 23) % 45u) << 23);
    const float f = std::bit_cast<float>(u);
    if (std::isnan(f)) continue;
    const _Float16 h = static_cast<_Float16>(f);
    ASSERT_EQ(hrm::f32_to_f16(f), std::bit_cast<uint16_t>(h)) << std::hex << u;
  }
}
#endif

TEST(Dtype, F32ToBf16RoundsToNearestEven) {
  for (uint32_t b = 0; b < 0x7f80; ++b) {
    const float v = hrm::bf16_to_f32(static_cast<uint16_t>(b));
    ASSERT_EQ(hrm::f32_to_bf16(v), b);
    ASSERT_EQ(hrm::f32_to_bf16(-v), b | 0x8000);
    if (b + 1 >= 0x7f80) continue;
    const uint32_t mid = (b << 16) | 0x8000u;  // exactly halfway to b + 1
    ASSERT_EQ(hrm::f32_to_bf16(std::bit_cast<float>(mid)), (b & 1) ? b + 1 : b) << std::hex << b;
    ASSERT_EQ(hrm::f32_to_bf16(std::bit_cast<float>(mid - 1)), b) << std::hex << b;
    ASSERT_EQ(hrm::f32_to_bf16(std::bit_cast<float>(mid + 1)), b + 1) << std::hex << b;
  }
  EXPECT_EQ(hrm::f32_to_bf16(std::bit_cast<float>(0x7f7fffffu)), 0x7f80);  // FLT_MAX rounds to inf
  EXPECT_EQ(hrm::f32_to_bf16(-INFINITY), 0xff80);
  // A NaN whose payload lives only in the dropped bits must stay NaN, not become inf.
  EXPECT_TRUE(std::isnan(hrm::bf16_to_f32(hrm::f32_to_bf16(std::bit_cast<float>(0x7f800001u)))));
}

TEST(Safetensors, LoadsAFileWrittenByPython) {
  rapidjson::Document want = expected_values();
  const hrm::SafetensorsFile f = hrm::SafetensorsFile::open(fixtures() / "safetensors" / "python_small.safetensors");
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("note"), "hrmbench fixture");
  int n = 0;
  for (const auto& [name, t] : f.tensors()) {
    ASSERT_TRUE(want.HasMember(name.c_str())) << name;
    expect_matches(t, want[name.c_str()]);
    EXPECT_NE(t.file.find("python_small.safetensors"), std::string::npos);
    ++n;
  }
  EXPECT_EQ(n, 5);
  EXPECT_EQ(f.tensors().at("scalar").numel(), 1);
  EXPECT_EQ(f.tensors().at("empty").numel(), 0);
}

TEST(Checkpoint, LoadsAShardedDirectoryWrittenByPython) {
  rapidjson::Document want = expected_values();
  hrm::Checkpoint ckpt = hrm::Checkpoint::open(fixtures() / "safetensors" / "sharded");
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"lm_head.weight", "model.embed_tokens.weight", "model.z_L_init"}));
  for (const std::string& name : ckpt.names()) expect_matches(*ckpt.find(name), want[("sharded/" + name).c_str()]);
  EXPECT_NE(ckpt.find("lm_head.weight")->file.find("model-00002-of-00002"), std::string::npos);
  EXPECT_EQ(ckpt.find("nope"), nullptr);
  EXPECT_EQ(&ckpt.require("model.z_L_init", {3}), ckpt.find("model.z_L_init"));
  // The views survive moving the checkpoint.
  hrm::Checkpoint moved = std::move(ckpt);
  EXPECT_EQ(moved.require("lm_head.weight", {4, 3}).to_f32().size(), 12u);
}

TEST(Checkpoint, RequireNamesDirTensorAndBothShapes) {
  const fs::path dir = fixtures() / "safetensors" / "sharded";
  const hrm::Checkpoint ckpt = hrm::Checkpoint::open(dir);
  expect_error([&] { ckpt.require("lm_head.weight", {3, 4}); },
               {dir.string(), "'lm_head.weight'", "[4,3]", "expected [3,4]"});
  expect_error([&] { ckpt.require("model.norm.weight", {3}); }, {dir.string(), "missing tensor 'model.norm.weight'"});
}

TEST(SafetensorsWriter, RoundTripsAllDtypes) {
  const std::vector<float> values = {0.0f, -0.0f, 1.0f, -2.5f, 3.14159f, 1e-6f, 65504.0f, 1e20f, -INFINITY, 7.0f, 0.1f, -1e-8f};
  hrm::SafetensorsWriter w;
  w.add("w.f32", hrm::DType::kF32, {3, 4}, values);
  w.add("w.f16", hrm::DType::kF16, {12}, values);
  w.add("w.bf16", hrm::DType::kBF16, {2, 2, 3}, values);
  w.add("odd", hrm::DType::kBF16, {3}, std::span(values).first(3));  // makes later data 2-byte offset
  w.add("scalar", hrm::DType::kF32, {}, std::span(values).subspan(2, 1));
  w.add("empty", hrm::DType::kF16, {0, 5}, {});
  w.set_metadata("format", "pt");
  w.set_metadata("quote\"key", "line\nbreak");  // must be JSON-escaped
  const std::vector<std::byte> bytes = w.to_bytes();

  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  EXPECT_EQ(header_len % 8, 0u) << "header is padded to 8 bytes like the reference writer";

  const hrm::SafetensorsFile f = hrm::SafetensorsFile::from_bytes(bytes, "mem");
  EXPECT_EQ(f.metadata().at("quote\"key"), "line\nbreak");
  ASSERT_EQ(f.tensors().size(), 6u);
  const auto& t32 = f.tensors().at("w.f32");
  EXPECT_EQ(t32.shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(t32.to_f32(), values);
  // F32 data come first so they stay 4-byte aligned.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t32.data - reinterpret_cast<uintptr_t>(bytes.data())) % 4, 0u);
  const std::vector<float> h = f.tensors().at("w.f16").to_f32();
  const std::vector<float> b = f.tensors().at("w.bf16").to_f32();
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(std::bit_cast<uint32_t>(h[i]), std::bit_cast<uint32_t>(hrm::f16_to_f32(hrm::f32_to_f16(values[i])))) << i;
    EXPECT_EQ(std::bit_cast<uint32_t>(b[i]), std::bit_cast<uint32_t>(hrm::bf16_to_f32(hrm::f32_to_bf16(values[i])))) << i;
  }
  EXPECT_EQ(h[6], 65504.0f);
  EXPECT_EQ(h[7], INFINITY);  // 1e20 overflows half
  EXPECT_EQ(b[2], 1.0f);
  EXPECT_EQ(f.tensors().at("scalar").to_f32(), std::vector<float>{1.0f});
  EXPECT_EQ(f.tensors().at("empty").to_f32().size(), 0u);
}

TEST(SafetensorsWriter, RoundTripsRawBytes) {
  const std::vector<uint16_t> raw = {0x3f80, 0xc000, 0x7f80};
  hrm::SafetensorsWriter w;
  w.add_raw("r", hrm::DType::kBF16, {3}, std::as_bytes(std::span(raw)));
  const std::vector<std::byte> bytes = w.to_bytes();
  const hrm::SafetensorsFile f = hrm::SafetensorsFile::from_bytes(bytes, "mem");
  EXPECT_EQ(f.tensors().at("r").to_f32(), (std::vector<float>{1.0f, -2.0f, INFINITY}));
  expect_error([&] { w.add_raw("s", hrm::DType::kF32, {3}, std::as_bytes(std::span(raw))); }, {"'s'", "6 bytes", "12"});
}

TEST(SafetensorsWriter, RefusesBadInput) {
  hrm::SafetensorsWriter w;
  const std::vector<float> v(6, 1.0f);
  w.add("a", hrm::DType::kF32, {2, 3}, v);
  expect_error([&] { w.add("a", hrm::DType::kF32, {6}, v); }, {"'a'", "twice"});
  expect_error([&] { w.add("b", hrm::DType::kF32, {4}, v); }, {"'b'", "6 values", "4"});
  expect_error([&] { w.add("c", hrm::DType::kF32, {-1}, v); }, {"'c'", "negative"});
  expect_error([&] { w.add("__metadata__", hrm::DType::kF32, {6}, v); }, {"reserved"});
  expect_error([&] { w.add("", hrm::DType::kF32, {6}, v); }, {"empty"});
}

TEST(SafetensorsWriter, WritesSingleAndShardedCheckpoints) {
  TempDir tmp;
  hrm::SafetensorsWriter w;
  std::vector<std::vector<float>> data;
  for (int i = 0; i < 5; ++i) {
    data.emplace_back(10);
    for (int j = 0; j < 10; ++j) data.back()[j] = static_cast<float>(i * 100 + j);
    w.add(hrm::cat("t", i), hrm::DType::kF32, {2, 5}, data.back());  // 40 bytes each
  }
  auto check = [&](const fs::path& dir) {
    const hrm::Checkpoint ckpt = hrm::Checkpoint::open(dir);
    ASSERT_EQ(ckpt.names().size(), 5u);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(ckpt.require(hrm::cat("t", i), {2, 5}).to_f32(), data[i]);
  };

  w.write_checkpoint(tmp.path() / "single");
  EXPECT_TRUE(fs::exists(tmp.path() / "single" / "model.safetensors"));
  check(tmp.path() / "single");

  // 40-byte tensors, at most 100 bytes per shard: shards of 2, 2 and 1 tensors.
  w.write_checkpoint(tmp.path() / "sharded", 100);
  const fs::path sharded = tmp.path() / "sharded";
  EXPECT_FALSE(fs::exists(sharded / "model.safetensors"));
  EXPECT_TRUE(fs::exists(sharded / "model-00003-of-00003.safetensors"));
  EXPECT_FALSE(fs::exists(sharded / "model-00004-of-00004.safetensors"));
  EXPECT_EQ(hrm::SafetensorsFile::open(sharded / "model-00003-of-00003.safetensors").tensors().size(), 1u);
  rapidjson::Document index;
  index.Parse(read_text(sharded / "model.safetensors.index.json").c_str());
  EXPECT_EQ(index["metadata"]["total_size"].GetUint64(), 200u);
  EXPECT_STREQ(index["weight_map"]["t2"].GetString(), "model-00002-of-00003.safetensors");
  check(sharded);
}

TEST(Safetensors, RefusesTruncatedFiles) {
  expect_error([] { hrm::SafetensorsFile::from_bytes({}, "bad.safetensors"); }, {"bad.safetensors", "too short"});
  hrm::SafetensorsWriter w;
  const std::vector<float> v(8, 2.0f);
  w.add("weights", hrm::DType::kF32, {8}, v);
  std::vector<std::byte> bytes = w.to_bytes();
  bytes.pop_back();
  expect_error([&] { hrm::SafetensorsFile::from_bytes(bytes, "cut.safetensors"); },
               {"cut.safetensors", "'weights'", "past the end"});
  bytes.resize(20);  // cuts into the header
  expect_error([&] { hrm::SafetensorsFile::from_bytes(bytes, "cut.safetensors"); },
               {"cut.safetensors", "header length", "exceeds"});
}

TEST(Safetensors, RefusesBadHeaderLengthAndJson) {
  std::vector<std::byte> bytes = image("{}", 0);
  const uint64_t huge = ~uint64_t{0};
  std::memcpy(bytes.data(), &huge, 8);
  expect_error([&] { hrm::SafetensorsFile::from_bytes(bytes, "bad.safetensors"); }, {"bad.safetensors", "header length"});
  expect_header_error("{\"a\": ", 0, {"bad.safetensors", "not valid JSON"});
  expect_header_error("[]", 0, {"bad.safetensors", "JSON object"});
  expect_header_error("", 0, {"bad.safetensors", "not valid JSON"});
}

TEST(Safetensors, RefusesHeadersAboveTheReferenceLimit) {
  // A sparse file just over the 100 MB header limit: mapped, never read, so it costs no disk or RAM.
  TempDir tmp;
  const fs::path path = tmp.path() / "huge_header.safetensors";
  const uint64_t header_len = 100'000'001;
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(&header_len), 8);
  }
  fs::resize_file(path, 8 + header_len);
  expect_error([&] { hrm::SafetensorsFile::open(path); }, {path.string(), "header length 100000001", "limit"});
}

TEST(Safetensors, AcceptsPaddedEmptyHeader) {
  const std::vector<std::byte> bytes = image("{}      ", 0);
  EXPECT_TRUE(hrm::SafetensorsFile::from_bytes(bytes, "ok").tensors().empty());
}

TEST(Safetensors, RefusesUnsupportedDtypeNamingTheTensor) {
  expect_header_error(R"({"ids": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}})", 16,
                      {"bad.safetensors", "'ids'", "unsupported dtype 'I64'"});
  expect_header_error(R"({"x": {"dtype": 5, "shape": [2], "data_offsets": [0, 8]}})", 8, {"'x'", "dtype"});
}

TEST(Safetensors, RefusesBadOffsetsAndShapes) {
  expect_header_error(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}})", 8,
                      {"bad.safetensors", "'w'", "past the end"});
  expect_header_error(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", 8, {"'w'", "begin after end"});
  expect_header_error(R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8, {"'w'", "8 bytes", "needs 12"});
  expect_header_error(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [-1, 7]}})", 8, {"'w'", "data_offsets"});
  expect_header_error(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})", 8, {"'w'", "data_offsets"});
  expect_header_error(R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", 8, {"'w'", "shape"});
  expect_header_error(R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 4], "data_offsets": [0, 8]}})", 8,
                      {"'w'", "overflow"});
  expect_header_error(R"({"w": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 8]}})", 8,
                      {"'w'", "overflow"});
  expect_header_error(R"({"w": {"dtype": "F32", "data_offsets": [0, 8]}})", 8, {"'w'", "shape"});
  expect_header_error(R"({"w": [1, 2]})", 8, {"'w'", "object"});
}

TEST(Safetensors, RefusesOverlapAndDuplicates) {
  expect_header_error(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                          "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                      12, {"bad.safetensors", "'a'", "'b'", "overlap"});
  expect_header_error(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                          "a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})",
                      16, {"'a'", "twice"});
  // Empty tensors share no bytes with anyone.
  const std::vector<std::byte> ok = image(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                             "e": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]}})", 8);
  EXPECT_EQ(hrm::SafetensorsFile::from_bytes(ok, "ok").tensors().size(), 2u);
}

TEST(Safetensors, RefusesBadMetadata) {
  expect_header_error(R"({"__metadata__": {"format": 1}})", 0, {"bad.safetensors", "metadata 'format'", "string"});
  expect_header_error(R"({"__metadata__": [1]})", 0, {"__metadata__", "object"});
}

TEST(Safetensors, OpenNamesAMissingFile) {
  expect_error([] { hrm::SafetensorsFile::open("/nonexistent/x.safetensors"); }, {"/nonexistent/x.safetensors", "cannot open"});
}

TEST(Checkpoint, NamesBothFilesWhenNeitherExists) {
  TempDir tmp;
  expect_error([&] { hrm::Checkpoint::open(tmp.path()); },
               {tmp.path().string(), "model.safetensors", "model.safetensors.index.json"});
}

TEST(Checkpoint, PrefersTheSingleFileOverAnIndex) {
  TempDir tmp;
  hrm::SafetensorsWriter w;
  const std::vector<float> v = {1.0f, 2.0f};
  w.add("only_in_single", hrm::DType::kF32, {2}, v);
  w.write(tmp.path() / "model.safetensors");
  write_text(tmp.path() / "model.safetensors.index.json", R"({"weight_map": {"x": "missing.safetensors"}})");
  EXPECT_EQ(hrm::Checkpoint::open(tmp.path()).names(), std::vector<std::string>{"only_in_single"});
}

TEST(Checkpoint, RefusesBrokenIndexes) {
  TempDir tmp;
  const fs::path dir = tmp.path();
  hrm::SafetensorsWriter w;
  const std::vector<float> v(4, 1.0f);
  w.add("a", hrm::DType::kF32, {4}, v);
  w.write(dir / "shard1.safetensors");
  const fs::path index = dir / "model.safetensors.index.json";

  write_text(index, R"({"weight_map": {"a": "shard1.safetensors", "b": "shard2.safetensors"}})");
  expect_error([&] { hrm::Checkpoint::open(dir); }, {index.string(), "shard 'shard2.safetensors'", "'b'", "does not exist"});

  write_text(index, R"({"weight_map": {"a": "shard1.safetensors", "b": "shard1.safetensors"}})");
  expect_error([&] { hrm::Checkpoint::open(dir); }, {index.string(), "'b'", "shard1.safetensors", "does not contain"});

  write_text(index, R"({"weights": {}})");
  expect_error([&] { hrm::Checkpoint::open(dir); }, {index.string(), "weight_map"});

  write_text(index, R"({"weight_map": {"a": 3}})");
  expect_error([&] { hrm::Checkpoint::open(dir); }, {index.string(), "'a'"});

  write_text(index, R"({"weight_map": {"a": "../shard1.safetensors"}})");
  expect_error([&] { hrm::Checkpoint::open(dir); }, {index.string(), "'a'", "inside the model directory"});

  write_text(index, "{");
  expect_error([&] { hrm::Checkpoint::open(dir); }, {index.string(), "invalid JSON"});

  // The same tensor stored in two shards.
  w.write(dir / "shard2.safetensors");
  write_text(index, R"({"weight_map": {"a": "shard1.safetensors", "b": "shard2.safetensors"}})");
  hrm::SafetensorsWriter w2;
  w2.add("b", hrm::DType::kF32, {4}, v);
  w2.add("a", hrm::DType::kF32, {4}, v);
  w2.write(dir / "shard2.safetensors");
  expect_error([&] { hrm::Checkpoint::open(dir); }, {"'a'", "stored twice"});

  // A valid index of the same files loads.
  w2 = hrm::SafetensorsWriter();
  w2.add("b", hrm::DType::kF32, {4}, v);
  w2.write(dir / "shard2.safetensors");
  EXPECT_EQ(hrm::Checkpoint::open(dir).names(), (std::vector<std::string>{"a", "b"}));
}

}  // namespace
