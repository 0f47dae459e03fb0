// Helpers shared by the CUDA tests (tests/cuda/): the skip-without-GPU fixture, bf16 conversions on
// the host, random inputs, poisoned device buffers (so an element a kernel forgets to write fails)
// and the relative-error comparison every op test prints.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "runtime/cuda/cuda_check.h"
#include "runtime/cuda/cuda_model.h"
#include "runtime/cuda_backend.h"

namespace hrm::cuda {

constexpr uint8_t kPoison = 0xFF;  // NaN as fp32, bf16 and fp8 e4m3; -1 as int32

class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!hrm::cuda_available(&why)) GTEST_SKIP() << why;
  }
};

inline float bf16_round(float x) { return __bfloat162float(__float2bfloat16(x)); }
inline uint16_t bits_of(bf16 x) { return static_cast<__nv_bfloat16_raw>(x).x; }

inline std::vector<float> normal(std::mt19937& rng, size_t n, float sd = 1.f) {
  std::normal_distribution<float> dist(0.f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}
inline std::vector<float> bf16_normal(std::mt19937& rng, size_t n, float sd = 1.f) {
  std::vector<float> v = normal(rng, n, sd);
  for (float& x : v) x = bf16_round(x);
  return v;
}
inline std::vector<bf16> to_bf16(std::span<const float> v) {
  std::vector<bf16> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = __float2bfloat16(v[i]);
  return out;
}
inline std::vector<float> to_float(std::span<const bf16> v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = __bfloat162float(v[i]);
  return out;
}
// Uniform in [0, 1) with 24 random bits (std::uniform_real_distribution<float> may return 1).
inline float unit_float(std::mt19937& rng) { return static_cast<float>(rng() >> 8) * 0x1p-24f; }

// ---- device memory ----

inline DeviceBuffer poisoned(size_t bytes) {
  DeviceBuffer b(bytes);
  HRM_CUDA_CHECK(cudaMemset(b.as<void>(), kPoison, bytes));
  return b;
}
template <typename T>
DeviceBuffer upload(const std::vector<T>& v) {
  DeviceBuffer b(v.size() * sizeof(T));
  HRM_CUDA_CHECK(cudaMemcpy(b.as<void>(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return b;
}
// Waits for the launches before (so a kernel fault surfaces here, named) and copies n elements
// back.
template <typename T>
std::vector<T> download(const DeviceBuffer& b, size_t n) {
  HRM_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<T> v(n);
  HRM_CUDA_CHECK(cudaMemcpy(v.data(), b.as<void>(), n * sizeof(T), cudaMemcpyDeviceToHost));
  return v;
}

// ---- comparison ----

struct Diff {
  double rel = 0;         // ||got - want|| / ||want|| over the finite elements of got
  int64_t nonfinite = 0;  // elements of got that are NaN or inf (unwritten poison, or overflow)
};
inline Diff diff(std::span<const float> got, std::span<const float> want) {
  double num = 0, den = 0;
  Diff d;
  for (size_t i = 0; i < got.size(); ++i) {
    den += static_cast<double>(want[i]) * want[i];
    if (!std::isfinite(got[i])) {
      ++d.nonfinite;
      continue;
    }
    const double e = static_cast<double>(got[i]) - want[i];
    num += e * e;
  }
  d.rel = std::sqrt(num / std::max(den, 1e-300));
  return d;
}
inline void expect_close(std::span<const float> got, std::span<const float> want, double tol,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  const Diff d = diff(got, want);
  std::printf("  %-64s rel err %.2e (tol %.0e)\n", what.c_str(), d.rel, tol);
  EXPECT_EQ(d.nonfinite, 0) << what << ": elements left unwritten (NaN poison) or not finite";
  EXPECT_LT(d.rel, tol) << what;
}

// RoPE inverse frequencies for theta 10000, as runtime/model.cpp computes them.
inline std::vector<float> rope_inv_freq(int head_dim, float theta = 10000.f) {
  std::vector<float> inv_freq(head_dim / 2);
  for (int i = 0; i < head_dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv_freq[i] = 1.0f / std::pow(theta, exponent);
  }
  return inv_freq;
}

}  // namespace hrm::cuda
