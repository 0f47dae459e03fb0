// Sum all-reduce of GPU buffers across data-parallel ranks over NCCL, bootstrapped by the trainer's
// host communicator (MPI): rank 0 makes the NCCL unique id, the host communicator broadcasts it, and
// every rank joins with ncclCommInitRank on its current device.
//
// NCCL is loaded with dlopen("libnccl.so.2") when the first multi-rank job asks for it, so a binary
// built here runs on machines without NCCL as long as it trains on one GPU; without the library,
// available() says why and the CUDA backend falls back to all-reducing through host memory.
// Not for: host buffers (dist.h), or anything but float sums.
//
// Example:
//   std::string why;
//   if (hrm::cuda::NcclAllReduce::available(&why)) {
//     hrm::cuda::NcclAllReduce nccl(comm, stream);
//     nccl.sum(grad_device_ptr, n);     // enqueued on `stream`
//   }
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <memory>
#include <string>

#include "runtime/dist.h"

namespace hrm::cuda {

class NcclAllReduce {
 public:
  // Whether libnccl.so.2 can be loaded; otherwise `why` says what failed.
  static bool available(std::string* why = nullptr);
  // Collective over `bootstrap`'s ranks. Throws hrm::Error naming the NCCL call that failed.
  NcclAllReduce(Communicator& bootstrap, cudaStream_t stream);
  ~NcclAllReduce();
  NcclAllReduce(const NcclAllReduce&) = delete;
  NcclAllReduce& operator=(const NcclAllReduce&) = delete;

  // In place, element-wise sum over the ranks, enqueued on the stream.
  void sum(float* device_data, size_t n);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hrm::cuda
