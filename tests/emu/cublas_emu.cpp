// cuBLAS of the host emulation (see emu.h): handles, and cublasGemmEx with cuBLAS's exact
// column-major semantics for the type combinations the backend uses, accumulating in fp32.
//
// Not for: anything else. A type, compute type or pointer mode other than those below is refused
// with CUBLAS_STATUS_NOT_SUPPORTED and a message on stderr; functions not defined here fail to link.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <tbb/blocked_range2d.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "common/error.h"
#include "runtime/cpu/ops.h"
#include "tests/emu/emu.h"

struct cublasContext {
  cudaStream_t stream = nullptr;
};

namespace {

// One operand read as fp32 into `out`, rows x cols row-major, where element (r, c) of the operand
// is at src[r * rstride + c * cstride] (elements of type `type`).
void load(const void* src, cudaDataType type, int64_t rows, int64_t cols, int64_t rstride, int64_t cstride,
          float* out) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, rows, 16), [&](const auto& range) {
    for (int64_t r = range.begin(); r < range.end(); ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        const int64_t i = r * rstride + c * cstride;
        out[r * cols + c] = type == CUDA_R_32F ? static_cast<const float*>(src)[i]
                                               : __bfloat162float(static_cast<const __nv_bfloat16*>(src)[i]);
      }
    }
  });
}

bool supported(cudaDataType a, cudaDataType b, cudaDataType c) {
  if (a != b) return false;
  if (a == CUDA_R_16BF) return c == CUDA_R_16BF || c == CUDA_R_32F;
  return a == CUDA_R_32F && c == CUDA_R_32F;
}

const char* type_name(cudaDataType t) {
  switch (t) {
    case CUDA_R_16BF: return "CUDA_R_16BF";
    case CUDA_R_32F: return "CUDA_R_32F";
    case CUDA_R_16F: return "CUDA_R_16F";
    default: return "another cudaDataType";
  }
}

size_t type_bytes(cudaDataType t) { return t == CUDA_R_32F ? 4 : 2; }

}  // namespace

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  *handle = new cublasContext;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void* workspace, size_t bytes) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  hrm::emu::check_device(workspace, bytes, "cublasSetWorkspace");
  return CUBLAS_STATUS_SUCCESS;
}

const char* cublasGetStatusName(cublasStatus_t st) {
  switch (st) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS (emulation: unnamed status)";
  }
}

const char* cublasGetStatusString(cublasStatus_t st) {
  switch (st) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    default: return "unknown status (emulation)";
  }
}

// C = alpha op(A) op(B) + beta C, column-major: op(A) is m x k, op(B) k x n, C m x n. alpha and beta
// are host floats (the default pointer mode; compute type 32F); beta == 0 does not read C.
cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void* alpha, const void* A, cudaDataType Atype, int lda, const void* B,
                            cudaDataType Btype, int ldb, const void* beta, void* C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (compute != CUBLAS_COMPUTE_32F || !supported(Atype, Btype, Ctype) ||
      (transa != CUBLAS_OP_N && transa != CUBLAS_OP_T) || (transb != CUBLAS_OP_N && transb != CUBLAS_OP_T)) {
    std::fprintf(stderr,
                 "cuBLAS emulation: cublasGemmEx with A %s, B %s, C %s, compute type %d, ops %d/%d is not "
                 "emulated (only bf16/bf16 -> bf16 or fp32 and fp32/fp32 -> fp32, CUBLAS_COMPUTE_32F, N or T)\n",
                 type_name(Atype), type_name(Btype), type_name(Ctype), static_cast<int>(compute),
                 static_cast<int>(transa), static_cast<int>(transb));
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  const bool ta = transa == CUBLAS_OP_T, tb = transb == CUBLAS_OP_T;
  // Stored shapes: A is (ta ? k x m : m x k), B (tb ? n x k : k x n), C m x n, leading dimensions the
  // stored row counts at least.
  const int64_t a_rows = ta ? k : m, a_cols = ta ? m : k, b_rows = tb ? n : k, b_cols = tb ? k : n;
  if (m < 0 || n < 0 || k < 0 || lda < std::max<int64_t>(1, a_rows) || ldb < std::max<int64_t>(1, b_rows) ||
      ldc < std::max(1, m))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  auto extent = [](int64_t rows, int64_t cols, int64_t ld) { return cols == 0 ? 0 : ld * (cols - 1) + rows; };
  const size_t a_bytes = static_cast<size_t>(extent(a_rows, a_cols, lda)) * type_bytes(Atype);
  const size_t b_bytes = static_cast<size_t>(extent(b_rows, b_cols, ldb)) * type_bytes(Btype);
  const size_t c_bytes = static_cast<size_t>(extent(m, n, ldc)) * type_bytes(Ctype);
  hrm::emu::submit(handle->stream, [=] {
    hrm::emu::check_device(A, a_bytes, "cublasGemmEx A");
    hrm::emu::check_device(B, b_bytes, "cublasGemmEx B");
    hrm::emu::check_device(C, c_bytes, "cublasGemmEx C");
    // op(A) as m rows of k, op(B)^T as n rows of k: every output is one dot product of two rows, the
    // CPU reference's matmul_nt (fixed-order fp32 sums).
    std::vector<float> a(static_cast<size_t>(m) * k), b(static_cast<size_t>(n) * k), ab(static_cast<size_t>(m) * n);
    // op(A)(i, p) is A[p + i*lda] transposed, A[i + p*lda] otherwise.
    load(A, Atype, m, k, ta ? lda : 1, ta ? 1 : lda, a.data());
    // op(B)(p, j) is B[j + p*ldb] transposed, B[p + j*ldb] otherwise; row j of op(B)^T holds p.
    load(B, Btype, n, k, tb ? 1 : ldb, tb ? ldb : 1, b.data());
    hrm::cpu::matmul_nt(a.data(), m, k, b.data(), n, ab.data());
    tbb::parallel_for(tbb::blocked_range2d<int64_t>(0, n, 4, 0, m, 64), [&](const auto& r) {
      for (int64_t j = r.rows().begin(); j < r.rows().end(); ++j) {
        for (int64_t i = r.cols().begin(); i < r.cols().end(); ++i) {
          const float acc = al * ab[static_cast<size_t>(i) * n + j];
          const int64_t c = i + j * ldc;
          if (Ctype == CUDA_R_32F) {
            float* y = static_cast<float*>(C) + c;
            *y = be == 0.f ? acc : acc + be * *y;
          } else {
            __nv_bfloat16* y = static_cast<__nv_bfloat16*>(C) + c;
            *y = __float2bfloat16(be == 0.f ? acc : acc + be * __bfloat162float(*y));
          }
        }
      }
    });
  });
  return CUBLAS_STATUS_SUCCESS;
}
