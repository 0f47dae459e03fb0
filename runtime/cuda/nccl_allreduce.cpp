// NCCL through dlopen (see nccl_allreduce.h). nccl.h gives the types and signatures; the symbols come
// from libnccl.so.2 at run time.
#include "runtime/cuda/nccl_allreduce.h"

#include <dlfcn.h>
#include <nccl.h>

#include <cstring>
#include <mutex>

#include "common/error.h"

namespace hrm::cuda {
namespace {

struct NcclApi {
  decltype(&ncclGetUniqueId) get_unique_id = nullptr;
  decltype(&ncclCommInitRank) comm_init_rank = nullptr;
  decltype(&ncclAllReduce) all_reduce = nullptr;
  decltype(&ncclCommDestroy) comm_destroy = nullptr;
  decltype(&ncclGetErrorString) error_string = nullptr;
  std::string error;  // why loading failed, or empty
};

const NcclApi& api() {
  static NcclApi a;
  static std::once_flag once;
  std::call_once(once, [] {
    void* lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* e = dlerror();
      a.error = cat("cannot load libnccl.so.2 (", e ? e : "unknown error", ")");
      return;
    }
    const auto sym = [&](const char* name) {
      void* p = dlsym(lib, name);
      if (!p && a.error.empty()) a.error = cat("libnccl.so.2 lacks ", name);
      return p;
    };
    a.get_unique_id = reinterpret_cast<decltype(a.get_unique_id)>(sym("ncclGetUniqueId"));
    a.comm_init_rank = reinterpret_cast<decltype(a.comm_init_rank)>(sym("ncclCommInitRank"));
    a.all_reduce = reinterpret_cast<decltype(a.all_reduce)>(sym("ncclAllReduce"));
    a.comm_destroy = reinterpret_cast<decltype(a.comm_destroy)>(sym("ncclCommDestroy"));
    a.error_string = reinterpret_cast<decltype(a.error_string)>(sym("ncclGetErrorString"));
  });
  return a;
}

void check(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) throw Error(cat("NCCL: ", what, " failed: ", api().error_string(r)));
}

}  // namespace

struct NcclAllReduce::Impl {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
};

bool NcclAllReduce::available(std::string* why) {
  const NcclApi& a = api();
  if (why) *why = a.error;
  return a.error.empty();
}

NcclAllReduce::NcclAllReduce(Communicator& bootstrap, cudaStream_t stream) : impl_(std::make_unique<Impl>()) {
  std::string why;
  if (!available(&why)) throw Error(cat("NCCL all-reduce: ", why));
  const NcclApi& a = api();
  ncclUniqueId id;
  std::memset(&id, 0, sizeof id);
  if (bootstrap.rank() == 0) check(a.get_unique_id(&id), "ncclGetUniqueId");
  bootstrap.broadcast(std::as_writable_bytes(std::span<ncclUniqueId>(&id, 1)), 0);
  check(a.comm_init_rank(&impl_->comm, bootstrap.world_size(), id, bootstrap.rank()), "ncclCommInitRank");
  impl_->stream = stream;
}

NcclAllReduce::~NcclAllReduce() {
  if (impl_ && impl_->comm) api().comm_destroy(impl_->comm);
}

void NcclAllReduce::sum(float* device_data, size_t n) {
  check(api().all_reduce(device_data, device_data, n, ncclFloat32, ncclSum, impl_->comm, impl_->stream),
        "ncclAllReduce");
}

}  // namespace hrm::cuda
