// The contract between the runtime and libgraft_device_cuda.so, the CUDA device built as a
// module (with nvcc, when -DGRAFT_CUDA finds it) and opened only when a config asks for
// [run] device = "cuda": a CPU run never loads the CUDA runtime, and a build made with CUDA still
// runs where no driver is installed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "graft/graft.h"

// Bumped whenever Device, Options or the entry change, so a stale module is refused.
#define GRAFT_DEVICE_CUDA_MODULE_VERSION 2u
#define GRAFT_DEVICE_CUDA_ENTRY "graft_device_cuda_start"
#define GRAFT_DEVICE_CUDA_LIBRARY "libgraft_device_cuda.so"

namespace graft::runtime::cuda {

struct Options {
  int32_t device_index = 0;    // which GPU of this process's visible ones
  bool tf32 = false;           // [run] tf32: cuBLAS may round fp32 inputs to TF32
  bool deterministic = false;  // [run] deterministic: a fixed cuBLAS workspace, no atomics
};

// One GPU for the process: one compute stream, a cuBLAS handle, and a caching allocator (memory
// freed by graft goes back to a cache in the stream's order; cudaMalloc is called only when the
// cache has no block to fit, so a training step, which reuses the same sizes, calls none).
// The primitives are graft_host_api's for tensors in this device's memory; copy also moves
// between host and device. Errors come back as statuses made with the runtime's make_status.
class Device {
 public:
  virtual ~Device() = default;
  virtual std::string describe() const = 0;  // "NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB"
  virtual void* alloc(size_t bytes) = 0;     // NULL when out of memory (after emptying the cache)
  virtual void free(void* ptr) = 0;
  virtual size_t cached_bytes() const = 0;    // held by the cache, not in use
  virtual size_t device_mallocs() const = 0;  // cudaMalloc calls so far

  virtual graft_status* gemm(int32_t ta, int32_t tb, float alpha, const DLTensor* a,
                             const DLTensor* b, float beta, DLTensor* c) = 0;
  virtual graft_status* axpby(float alpha, const DLTensor* x, float beta, DLTensor* y) = 0;
  virtual graft_status* fill(DLTensor* t, float value) = 0;
  virtual graft_status* copy(const DLTensor* src, DLTensor* dst) = 0;
  virtual graft_status* sum_rows(const DLTensor* x, float beta, DLTensor* out) = 0;
  virtual graft_status* dot(const DLTensor* x, const DLTensor* y, double* out) = 0;
  virtual graft_status* fill_uniform(DLTensor* t, uint64_t seed, uint64_t stream, uint64_t offset,
                                     float low, float high) = 0;
  virtual graft_status* fill_normal(DLTensor* t, uint64_t seed, uint64_t stream, uint64_t offset,
                                    float mean, float stddev) = 0;
  virtual void* stream() = 0;               // the cudaStream_t kernels run on
  virtual graft_status* synchronize() = 0;  // waits for the stream

  // Page-locked host memory (cudaHostAlloc): batches read into it are copied to the GPU by the
  // copy engine directly, asynchronously. NULL when none is left.
  virtual void* alloc_pinned(size_t bytes) = 0;
  virtual void free_pinned(void* ptr) = 0;
  // Batches go up on a copy stream of their own, so a batch's copy overlaps the kernels still
  // running for the step before. `slot` (0..kUploadSlots-1) names a device buffer the caller
  // cycles through: the copy first waits until the compute stream released the slot (the
  // kernels of the step that last read it are done), and the compute stream's next kernels
  // wait for the copy. Returns once the copy has read `host`, which the caller may then reuse.
  static constexpr int kUploadSlots = 4;
  virtual graft_status* upload(const void* host, void* device, size_t bytes, int slot) = 0;
  // Called after the kernels that read slot's buffers were queued (the step is launched).
  virtual graft_status* release_upload(int slot) = 0;
};

using MakeStatus = graft_status* (*)(int32_t code, const char* message);

}  // namespace graft::runtime::cuda

extern "C" {
// Starts the device, or returns NULL with *error set ("no CUDA device is present: ...").
typedef graft::runtime::cuda::Device* (*graft_device_cuda_start_fn)(
    uint32_t version, const graft::runtime::cuda::Options* options,
    graft::runtime::cuda::MakeStatus make_status, std::string* error);
}
