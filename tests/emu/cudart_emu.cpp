// The CUDA runtime of the host emulation (see emu.h): tracked "device" allocations in host memory,
// copies that check their direction, streams whose work runs when the host waits for it, events that
// time it on the host clock, and graphs that record a capture and replay it.
//
// Not for: concurrency. Work runs on the calling thread, in submission order per stream, when the
// host synchronizes (so a result read before a synchronization is stale, as on a GPU); two streams'
// work never overlaps, so a race between streams is not found.
// A misuse the real runtime would report (a bad pointer, a wrong copy direction, a call that is not
// allowed while a stream is being captured) is reported too: an hrm::Error naming the call and the
// argument for a pointer error, the CUDA error code otherwise. Functions the host code does not use
// are not defined, so a new use fails to link rather than doing nothing.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

#include "common/error.h"
#include "tests/emu/emu.h"

// The runtime's handle types are pointers to these (driver_types.h declares them, CUDA defines
// them); the emulation defines its own.
struct CUstream_st {
  int id = 0;
};
struct CUevent_st {
  bool recorded = false;
  std::chrono::steady_clock::time_point at{};
};
struct CUgraph_st {
  std::vector<std::function<void()>> work;
};
struct CUgraphExec_st {
  // Shared with launches still pending, which CUDA completes after cudaGraphExecDestroy.
  std::shared_ptr<const std::vector<std::function<void()>>> work;
};

namespace hrm::emu {
namespace {

// The emulated device: 4 GiB, so that a KV cache sized to "what is left" is the same on every
// machine (and small enough to allocate for real).
constexpr size_t kDeviceBytes = size_t{4} << 30;
constexpr size_t kAllocAlign = 256;  // cudaMalloc's alignment
constexpr unsigned char kPoison = 0xFF;  // fresh device memory: NaN as fp32/bf16/fp8, -1 as int32
constexpr int kSmCount = 132;            // an H100 SXM's, so decode split counts are as on one

enum class Kind { kDevice, kPinned };
struct Alloc {
  size_t bytes;
  Kind kind;
};

struct State {
  std::mutex mu;
  std::map<uintptr_t, Alloc> allocs;  // by start address
  size_t device_bytes = 0;
  std::map<cudaStream_t, CUgraph_st*> capturing;  // streams being captured, and their graphs
  std::set<cudaStream_t> invalidated;             // captures broken by a prohibited call
  std::set<cudaStream_t> streams;
  std::set<cudaStream_t> blocking;  // streams created without cudaStreamNonBlocking
  int next_stream = 1;
  // Work submitted but not yet run, per stream, numbered in submission order.
  std::map<cudaStream_t, std::deque<std::pair<uint64_t, std::function<void()>>>> pending;
  uint64_t submitted = 0;
  // HRM_CUDA_EMU_SYNC=1 runs work at submission (simpler to debug; hides missing synchronization).
  bool deferred = [] {
    const char* env = std::getenv("HRM_CUDA_EMU_SYNC");
    return env == nullptr || std::strcmp(env, "1") != 0;
  }();
};
State& state() {
  static State s;
  return s;
}

thread_local cudaError_t last_error = cudaSuccess;

cudaError_t fail(cudaError_t err) {
  last_error = err;
  return err;
}

// The allocation holding p (any kind), or null; the caller holds the lock.
const std::pair<const uintptr_t, Alloc>* find_alloc(State& s, const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  auto it = s.allocs.upper_bound(a);
  if (it == s.allocs.begin()) return nullptr;
  --it;
  if (a >= it->first + it->second.bytes) return nullptr;
  return &*it;
}

bool is_device(const void* p) {
  State& s = state();
  std::lock_guard lock(s.mu);
  const auto* a = find_alloc(s, p);
  return a && a->second.kind == Kind::kDevice;
}

// A call that CUDA refuses while this thread captures a stream (cudaStreamCaptureModeThreadLocal and
// Global): the capture is broken, as in CUDA, and the call fails.
cudaError_t refuse_if_capturing(const char* call) {
  State& s = state();
  std::lock_guard lock(s.mu);
  if (s.capturing.empty()) return cudaSuccess;
  std::fprintf(stderr, "cuda emulation: %s while a stream is being captured\n", call);
  for (const auto& [stream, graph] : s.capturing) s.invalidated.insert(stream);
  return fail(cudaErrorStreamCaptureUnsupported);
}

// An error of work that ran inside a call made from a destructor (cudaFree, ...), kept to be thrown
// by the next call that waits for the device, as CUDA keeps a kernel fault for later calls.
std::exception_ptr sticky;

// Runs the pending work of `streams` (every stream when empty) in submission order. Work on the
// legacy default stream is ordered with every blocking stream, as in CUDA, so waiting for one of
// them waits for all of them. Work that throws discards what was still pending on those streams, as
// a kernel fault ends a CUDA context.
void flush(std::set<cudaStream_t> streams) {
  if (sticky) std::rethrow_exception(std::exchange(sticky, nullptr));
  State& s = state();
  if (streams.contains(nullptr) || std::any_of(streams.begin(), streams.end(), [&](cudaStream_t st) {
        std::lock_guard lock(s.mu);
        return s.blocking.contains(st);
      })) {
    std::lock_guard lock(s.mu);
    streams.insert(nullptr);
    streams.insert(s.blocking.begin(), s.blocking.end());
  }
  for (;;) {
    std::function<void()> work;
    {
      std::lock_guard lock(s.mu);
      std::deque<std::pair<uint64_t, std::function<void()>>>* next = nullptr;
      for (auto& [st, queue] : s.pending) {
        if (queue.empty() || (!streams.empty() && !streams.contains(st))) continue;
        if (next == nullptr || queue.front().first < next->front().first) next = &queue;
      }
      if (next == nullptr) return;
      work = std::move(next->front().second);
      next->pop_front();
    }
    try {
      work();
    } catch (...) {
      std::lock_guard lock(s.mu);
      for (auto& [st, queue] : s.pending)
        if (streams.empty() || streams.contains(st)) queue.clear();
      throw;
    }
  }
}
void flush_stream(cudaStream_t stream) { flush({stream}); }
void flush_all() { flush({}); }
// For the calls that destructors make (their errors are ignored there): the error is reported now
// and thrown by the next synchronizing call.
void flush_in_destructor(const char* call, std::set<cudaStream_t> streams = {}) {
  try {
    flush(std::move(streams));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cuda emulation: work that ran at %s failed: %s\n", call, e.what());
    sticky = std::current_exception();
  }
}

bool is_pinned(const void* p) {
  State& s = state();
  std::lock_guard lock(s.mu);
  const auto* a = find_alloc(s, p);
  return a && a->second.kind == Kind::kPinned;
}

void check_copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, const char* call) {
  if (bytes == 0) return;
  switch (kind) {
    case cudaMemcpyHostToDevice:
      check_device(dst, bytes, cat(call, " dst (host to device)").c_str());
      if (is_device(src)) throw Error(cat(call, ": host-to-device copy from a device pointer"));
      return;
    case cudaMemcpyDeviceToHost:
      check_device(src, bytes, cat(call, " src (device to host)").c_str());
      if (is_device(dst)) throw Error(cat(call, ": device-to-host copy into a device pointer"));
      return;
    case cudaMemcpyDeviceToDevice:
      check_device(dst, bytes, cat(call, " dst (device to device)").c_str());
      check_device(src, bytes, cat(call, " src (device to device)").c_str());
      return;
    case cudaMemcpyHostToHost:
      if (is_device(dst) || is_device(src)) throw Error(cat(call, ": host-to-host copy of a device pointer"));
      return;
    case cudaMemcpyDefault:  // direction from the pointers: check whichever side is device memory
      if (is_device(dst)) check_device(dst, bytes, cat(call, " dst").c_str());
      if (is_device(src)) check_device(src, bytes, cat(call, " src").c_str());
      return;
  }
  throw Error(cat(call, ": unknown cudaMemcpyKind ", static_cast<int>(kind)));
}

}  // namespace

void submit(cudaStream_t stream, std::function<void()> work) {
  State& s = state();
  {
    std::lock_guard lock(s.mu);
    auto it = s.capturing.find(stream);
    if (it != s.capturing.end()) {
      it->second->work.push_back(std::move(work));
      return;
    }
    // The legacy default stream synchronizes with every other stream: CUDA refuses it during a
    // capture (cudaErrorStreamCaptureImplicit).
    if (stream == nullptr && !s.capturing.empty())
      throw Error("cuda emulation: work submitted to the default stream while a stream is being captured");
    if (stream != nullptr && !s.streams.contains(stream))
      throw Error("cuda emulation: work submitted to a stream that does not exist (destroyed?)");
    if (s.deferred) {
      s.pending[stream].emplace_back(s.submitted++, std::move(work));
      return;
    }
  }
  work();
}

void check_device(const void* p, size_t bytes, const char* what) {
  if (bytes == 0) return;  // nothing is touched
  State& s = state();
  std::lock_guard lock(s.mu);
  const auto* a = find_alloc(s, p);
  if (a == nullptr || a->second.kind != Kind::kDevice)
    throw Error(cat("cuda emulation: ", what, ": ", p, " (", bytes, " bytes) is not in any live device allocation",
                    a ? " (it is pinned host memory)" : ""));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p);
  if (begin + bytes > a->first + a->second.bytes)
    throw Error(cat("cuda emulation: ", what, ": ", bytes, " bytes at offset ", begin - a->first,
                    " overrun the device allocation of ", a->second.bytes, " bytes"));
}

}  // namespace hrm::emu

using hrm::Error;
using hrm::cat;
using namespace hrm::emu;

// ---- errors ----

cudaError_t cudaGetLastError() {
  const cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    default: return "cudaError (emulation: unnamed code)";
  }
}

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorIllegalState: return "the operation is not permitted in the current state";
    default: return "unknown error (emulation)";
  }
}

// ---- device ----

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice); }

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return fail(cudaErrorInvalidDevice);
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof prop->name, "host emulation");
  prop->totalGlobalMem = hrm::emu::kDeviceBytes;
  prop->multiProcessorCount = hrm::emu::kSmCount;
  prop->major = 9, prop->minor = 0;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->sharedMemPerBlock = 48 << 10;
  prop->sharedMemPerBlockOptin = 227 << 10;
  prop->sharedMemPerMultiprocessor = 228 << 10;
  prop->regsPerBlock = 64 << 10;
  prop->l2CacheSize = 50 << 20;
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  State& s = state();
  std::lock_guard lock(s.mu);
  *free_bytes = kDeviceBytes - s.device_bytes;
  *total_bytes = kDeviceBytes;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() {
  if (const cudaError_t e = refuse_if_capturing("cudaDeviceSynchronize"); e != cudaSuccess) return e;
  flush_all();
  return cudaSuccess;
}

// ---- memory ----

namespace {

cudaError_t allocate(void** p, size_t bytes, Kind kind) {
  if (p == nullptr) return fail(cudaErrorInvalidValue);
  *p = nullptr;
  if (bytes == 0) return cudaSuccess;
  State& s = state();
  {
    std::lock_guard lock(s.mu);
    if (kind == Kind::kDevice && bytes > kDeviceBytes - s.device_bytes) return fail(cudaErrorMemoryAllocation);
  }
  const size_t rounded = (bytes + kAllocAlign - 1) / kAllocAlign * kAllocAlign;
  void* mem = std::aligned_alloc(kAllocAlign, rounded);
  if (mem == nullptr) return fail(cudaErrorMemoryAllocation);
  // Fresh device memory holds garbage on a GPU; here it holds NaN, so a read of what nothing
  // wrote shows in the results.
  if (kind == Kind::kDevice) std::memset(mem, kPoison, rounded);
  std::lock_guard lock(s.mu);
  s.allocs.emplace(reinterpret_cast<uintptr_t>(mem), Alloc{bytes, kind});
  if (kind == Kind::kDevice) s.device_bytes += bytes;
  *p = mem;
  return cudaSuccess;
}

cudaError_t release(void* p, Kind kind, const char* call) {
  if (p == nullptr) return cudaSuccess;
  State& s = state();
  {
    std::lock_guard lock(s.mu);
    auto it = s.allocs.find(reinterpret_cast<uintptr_t>(p));
    if (it == s.allocs.end() || it->second.kind != kind)
      throw Error(cat("cuda emulation: ", call, "(", p, "): not the start of a live ",
                      kind == Kind::kDevice ? "device" : "pinned host", " allocation (double free?)"));
    if (kind == Kind::kDevice) s.device_bytes -= it->second.bytes;
    s.allocs.erase(it);
  }
  std::free(p);
  return cudaSuccess;
}

}  // namespace

cudaError_t cudaMalloc(void** p, size_t bytes) {
  if (const cudaError_t e = refuse_if_capturing("cudaMalloc"); e != cudaSuccess) return e;
  return allocate(p, bytes, Kind::kDevice);
}
// cudaFree and cudaFreeHost wait for the device (work still pending on the memory completes).
cudaError_t cudaFree(void* p) {
  if (const cudaError_t e = refuse_if_capturing("cudaFree"); e != cudaSuccess) return e;
  flush_in_destructor("cudaFree");
  return release(p, Kind::kDevice, "cudaFree");
}
cudaError_t cudaMallocHost(void** p, size_t bytes) { return allocate(p, bytes, Kind::kPinned); }
cudaError_t cudaFreeHost(void* p) {
  flush_in_destructor("cudaFreeHost");
  return release(p, Kind::kPinned, "cudaFreeHost");
}

// On the legacy default stream, and the host waits for it: it does not wait for work on streams
// created with cudaStreamNonBlocking.
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (const cudaError_t e = refuse_if_capturing("cudaMemcpy"); e != cudaSuccess) return e;
  check_copy(dst, src, bytes, kind, "cudaMemcpy");
  flush_stream(nullptr);
  if (bytes > 0) std::memmove(dst, src, bytes);
  return cudaSuccess;
}

// As in CUDA: pinned host memory is read or written when the copy runs; pageable host memory is
// staged at the call (host to device) or written before the call returns (device to host).
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  check_copy(dst, src, bytes, kind, "cudaMemcpyAsync");
  if (bytes == 0) return cudaSuccess;
  const bool src_pageable = !is_device(src) && !is_pinned(src), dst_pageable = !is_device(dst) && !is_pinned(dst);
  if (src_pageable && !dst_pageable) {
    std::vector<unsigned char> staged(static_cast<const unsigned char*>(src),
                                      static_cast<const unsigned char*>(src) + bytes);
    submit(stream, [=, staged = std::move(staged)] {
      check_copy(dst, staged.data(), bytes, kind, "cudaMemcpyAsync (running)");
      std::memcpy(dst, staged.data(), bytes);
    });
    return cudaSuccess;
  }
  submit(stream, [=] {
    check_copy(dst, src, bytes, kind, "cudaMemcpyAsync (running)");
    std::memmove(dst, src, bytes);
  });
  if (dst_pageable && !src_pageable) {
    State& s = state();
    bool capturing = false;
    {
      std::lock_guard lock(s.mu);
      capturing = s.capturing.contains(stream);
    }
    if (!capturing) flush_stream(stream);
  }
  return cudaSuccess;
}

// Asynchronous with respect to the host, on the legacy default stream.
cudaError_t cudaMemset(void* p, int value, size_t bytes) {
  if (const cudaError_t e = refuse_if_capturing("cudaMemset"); e != cudaSuccess) return e;
  check_device(p, bytes, "cudaMemset");
  submit(nullptr, [=] {
    check_device(p, bytes, "cudaMemset (running)");
    if (bytes > 0) std::memset(p, value, bytes);
  });
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t stream) {
  check_device(p, bytes, "cudaMemsetAsync");
  submit(stream, [=] {
    check_device(p, bytes, "cudaMemsetAsync (running)");
    if (bytes > 0) std::memset(p, value, bytes);
  });
  return cudaSuccess;
}

// ---- streams ----

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
  State& s = state();
  std::lock_guard lock(s.mu);
  auto* st = new CUstream_st{s.next_stream++};
  s.streams.insert(st);
  if (!(flags & cudaStreamNonBlocking)) s.blocking.insert(st);
  *stream = st;
  return cudaSuccess;
}

// The stream's pending work still completes, as in CUDA.
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  State& s = state();
  {
    std::lock_guard lock(s.mu);
    if (!s.streams.contains(stream)) return fail(cudaErrorInvalidResourceHandle);
    if (s.capturing.contains(stream)) throw Error("cuda emulation: cudaStreamDestroy of a stream being captured");
  }
  flush_in_destructor("cudaStreamDestroy", {stream});
  std::lock_guard lock(s.mu);
  s.streams.erase(stream);
  s.blocking.erase(stream);
  s.pending.erase(stream);
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  State& s = state();
  {
    std::lock_guard lock(s.mu);
    if (stream != nullptr && !s.streams.contains(stream)) return fail(cudaErrorInvalidResourceHandle);
    if (s.capturing.contains(stream)) {
      std::fprintf(stderr, "cuda emulation: cudaStreamSynchronize of a stream being captured\n");
      s.invalidated.insert(stream);
      return fail(cudaErrorStreamCaptureUnsupported);
    }
  }
  flush_stream(stream);
  return cudaSuccess;
}

// ---- events: the host clock when the work before them has run ----

cudaError_t cudaEventCreate(cudaEvent_t* event) {
  *event = new CUevent_st;
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  if (event != nullptr && !event->recorded) flush_in_destructor("cudaEventDestroy");  // a record may be pending
  delete event;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (event == nullptr) return fail(cudaErrorInvalidResourceHandle);
  event->recorded = false;  // until the work before it has run
  submit(stream, [event] {
    event->recorded = true;
    event->at = std::chrono::steady_clock::now();
  });
  return cudaSuccess;
}

// cudaErrorNotReady until both events' work has run (the host did not wait for it).
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (start == nullptr || end == nullptr) return fail(cudaErrorInvalidResourceHandle);
  if (!start->recorded || !end->recorded) return fail(cudaErrorNotReady);
  *ms = std::chrono::duration<float, std::milli>(end->at - start->at).count();
  return cudaSuccess;
}

// ---- graphs: a capture records the submitted work; a launch runs it again ----

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode) {
  State& s = state();
  std::lock_guard lock(s.mu);
  if (stream == nullptr) return fail(cudaErrorStreamCaptureUnsupported);  // the legacy stream cannot be captured
  if (!s.streams.contains(stream)) return fail(cudaErrorInvalidResourceHandle);
  if (s.capturing.contains(stream)) return fail(cudaErrorIllegalState);
  s.capturing.emplace(stream, new CUgraph_st);
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  State& s = state();
  std::lock_guard lock(s.mu);
  *graph = nullptr;
  auto it = s.capturing.find(stream);
  if (it == s.capturing.end()) return fail(cudaErrorIllegalState);
  CUgraph_st* g = it->second;
  s.capturing.erase(it);
  if (s.invalidated.erase(stream)) {
    delete g;
    return fail(cudaErrorStreamCaptureInvalidated);
  }
  *graph = g;
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (graph == nullptr) return fail(cudaErrorInvalidValue);
  *exec = new CUgraphExec_st{std::make_shared<const std::vector<std::function<void()>>>(graph->work)};
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (exec == nullptr) return fail(cudaErrorInvalidValue);
  submit(stream, [work = exec->work] {
    for (const auto& w : *work) w();
  });
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}
