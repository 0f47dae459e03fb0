// Turning CUDA and cuBLAS status codes into hrm::Error (see cuda_check.h).
#include "runtime/cuda/cuda_check.h"

namespace hrm::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* what, const char* file, int line) {
  throw Error(cat("CUDA error ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ") in ", what, " at ",
                  file, ":", line));
}

[[noreturn]] void throw_cublas_error(cublasStatus_t st, const char* what, const char* file, int line) {
  throw Error(cat("cuBLAS error ", cublasGetStatusName(st), " (", cublasGetStatusString(st), ") in ", what,
                  " at ", file, ":", line));
}

}  // namespace hrm::cuda
