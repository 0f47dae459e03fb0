// A host emulation of the CUDA runtime and cuBLAS, so the CUDA backend's host code
// (runtime/cuda/*.cpp: model, engine, training backend) runs in CI on a machine without a GPU.
//
// What it is for: the orchestration — buffer sizes and offsets, the order of launches, graph capture
// and replay, paging, truncated backprop, the held optimizer state — checked against the CPU
// reference by the same tests as on a GPU (tests/cuda/). What it is not: a test of the CUDA kernels.
// Each launcher of kernels.h / train_kernels.h is re-implemented here on the host, from the contract
// its header states, in the precision it states (bf16 where the header says bf16); the real kernels
// (*.cu) are tested only on a GPU.
//
// Semantics:
// - "Device" memory is host memory from cudaMalloc; every allocation is tracked, and every launcher
//   and copy checks that the ranges it touches lie inside one live allocation (a host pointer passed
//   as a device pointer, a wrong size or a use after free is an error naming the launcher and the
//   argument) and that a copy's direction matches where its pointers live.
// - Work runs as on a GPU, later: it is queued per stream and runs, in submission order, when the
//   host waits for it (cudaStreamSynchronize, cudaDeviceSynchronize, cudaMemcpy on the default
//   stream, a device-to-host cudaMemcpyAsync into pageable memory, cudaFree), so a result read
//   without waiting is stale and the test fails. Launchers therefore capture their arguments by
//   value and touch memory only inside the submitted work. HRM_CUDA_EMU_SYNC=1 runs work at
//   submission instead (for debugging: a test that passes only so lacks a synchronization).
// - While its stream is being captured, work is recorded instead and runs at each cudaGraphLaunch,
//   with the arguments captured at launch time, exactly as a CUDA graph freezes kernel parameters.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <functional>

namespace hrm::emu {

// Queues `work` on `stream` (runs it now with HRM_CUDA_EMU_SYNC=1), or records it into the graph
// being captured on `stream`.
void submit(cudaStream_t stream, std::function<void()> work);

// Throws hrm::Error naming `what` unless [p, p + bytes) lies inside one live device allocation.
void check_device(const void* p, size_t bytes, const char* what);

// check_device for n elements of T; returns p, for use inline in launchers.
template <typename T>
T* device(T* p, int64_t n, const char* what) {
  check_device(p, static_cast<size_t>(n < 0 ? 0 : n) * sizeof(T), what);
  return p;
}

}  // namespace hrm::emu
