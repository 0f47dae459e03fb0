// The CUDA backend's entry points in a build without CUDA (HRM_CUDA=OFF): they report that.
#include "common/error.h"
#include "runtime/cuda_backend.h"

namespace hrm {

bool cuda_available(std::string* why) {
  if (why) *why = "this hrmbench was built without CUDA (configure with nvcc present, -DHRM_CUDA=ON)";
  return false;
}

std::unique_ptr<Engine> make_cuda_engine(const ModelConfig&, const ModelWeights&, CudaOptions, EngineOptions) {
  std::string why;
  cuda_available(&why);
  throw Error(cat("--backend cuda: ", why));
}

std::unique_ptr<TrainBackend> make_cuda_train_backend(const CudaTrainOptions&) {
  std::string why;
  cuda_available(&why);
  throw Error(cat("--backend cuda: ", why));
}

}  // namespace hrm
