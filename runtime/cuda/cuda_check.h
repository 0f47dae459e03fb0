// Error checking for CUDA runtime and cuBLAS calls: every failure becomes an hrm::Error that names the
// call, the source line and the library's own message. Host code only.
//
// Example:
//   HRM_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, stream));
//   HRM_CUDA_CHECK(cudaGetLastError());  // after every kernel launch
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "common/error.h"

namespace hrm::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* what, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t st, const char* what, const char* file, int line);

}  // namespace hrm::cuda

#define HRM_CUDA_CHECK(expr)                                                         \
  do {                                                                               \
    const cudaError_t hrm_cuda_err_ = (expr);                                        \
    if (hrm_cuda_err_ != cudaSuccess)                                                \
      ::hrm::cuda::throw_cuda_error(hrm_cuda_err_, #expr, __FILE__, __LINE__);       \
  } while (0)

#define HRM_CUBLAS_CHECK(expr)                                                       \
  do {                                                                               \
    const cublasStatus_t hrm_cublas_st_ = (expr);                                    \
    if (hrm_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                     \
      ::hrm::cuda::throw_cublas_error(hrm_cublas_st_, #expr, __FILE__, __LINE__);    \
  } while (0)
