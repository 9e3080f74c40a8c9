// The CUDA device: caching allocator, one stream, cuBLAS for gemm and kernels for the host API's
// other primitives. The element math is graft/random.h's and the same loops as the CPU's, so the
// CPU tests cover the formulas; tests/gpu compares every primitive against the CPU.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include "device/cuda/module.hpp"
#include "device/tensor_dims.hpp"
#include "graft/cuda/launch.cuh"
#include "graft/random.h"

namespace graft::runtime::cuda {
namespace {

using device::cols;
using device::data;
using device::numel;
using device::rows;
using graft::cuda::blocks_for;
using graft::cuda::first_index;
using graft::cuda::grid_stride;
using graft::cuda::kThreads;

bool on_host(const DLTensor* t) {
  return t->device.device_type == kDLCPU || t->device.device_type == kDLCUDAHost;
}

__global__ void axpby_kernel(float alpha, const float* x, float beta, float* y, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride())
    y[i] = beta == 0.0f ? alpha * x[i] : alpha * x[i] + beta * y[i];
}
__global__ void fill_kernel(float* p, float v, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) p[i] = v;
}
// One thread per column, adding its rows in order: the CPU's order, and no atomics.
__global__ void sum_rows_kernel(const float* x, int64_t r, int64_t c, float beta, float* out) {
  for (int64_t j = first_index(); j < c; j += grid_stride()) {
    float s = beta == 0.0f ? 0.0f : beta * out[j];
    for (int64_t i = 0; i < r; ++i) s += x[i * c + j];
    out[j] = s;
  }
}
// Partial sums per block in double, then one block sums the partials: a fixed order, the same
// bits every run.
__global__ void dot_partial_kernel(const float* a, const float* b, int64_t n, double* partial) {
  __shared__ double cache[kThreads];
  double s = 0.0;
  for (int64_t i = first_index(); i < n; i += grid_stride()) s += double(a[i]) * double(b[i]);
  cache[threadIdx.x] = s;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (int(threadIdx.x) < half) cache[threadIdx.x] += cache[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = cache[0];
}
__global__ void dot_final_kernel(const double* partial, int count, double* out) {
  if (threadIdx.x == 0 && blockIdx.x == 0) {
    double s = 0.0;
    for (int i = 0; i < count; ++i) s += partial[i];
    *out = s;
  }
}
__global__ void uniform_kernel(float* p, int64_t n, uint64_t seed, uint64_t stream, uint64_t offset,
                               float low, float high) {
  for (int64_t i = first_index(); i < n; i += grid_stride())
    p[i] = low + (high - low) * graft_random_uniform(seed, stream, offset + uint64_t(i));
}
__global__ void normal_kernel(float* p, int64_t n, uint64_t seed, uint64_t stream, uint64_t offset,
                              float mean, float stddev) {
  for (int64_t i = first_index(); i < n; i += grid_stride())
    p[i] = mean + stddev * graft_random_normal(seed, stream, offset + uint64_t(i));
}

class CudaDevice final : public Device {
 public:
  CudaDevice(const Options& o, MakeStatus make_status) : options_(o), make_status_(make_status) {}

  // Returns an error text, empty when the device is ready.
  std::string start() {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess)
      return std::string("no CUDA device is present (cudaGetDeviceCount: ") +
             cudaGetErrorString(e) + ")";
    if (count == 0) return "no CUDA device is present (the driver sees 0 GPUs)";
    if (options_.device_index < 0 || options_.device_index >= count)
      return "GPU " + std::to_string(options_.device_index) +
             " was asked for, but this process "
             "sees " +
             std::to_string(count) + " (CUDA_VISIBLE_DEVICES)";
    if ((e = cudaSetDevice(options_.device_index)) != cudaSuccess)
      return std::string("cudaSetDevice: ") + cudaGetErrorString(e);
    cudaDeviceProp prop{};
    cudaGetDeviceProperties(&prop, options_.device_index);
    char memory[32];
    std::snprintf(memory, sizeof memory, "%.1f GiB",
                  double(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0));
    description_ = std::string(prop.name) + ", sm_" + std::to_string(prop.major) +
                   std::to_string(prop.minor) + ", " + memory;
    if ((e = cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)) != cudaSuccess)
      return std::string("cudaStreamCreate: ") + cudaGetErrorString(e);
    if ((e = cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking)) != cudaSuccess)
      return std::string("cudaStreamCreate (copies): ") + cudaGetErrorString(e);
    for (int s = 0; s < kUploadSlots; ++s) {
      if ((e = cudaEventCreateWithFlags(&copied_[s], cudaEventDisableTiming)) != cudaSuccess ||
          (e = cudaEventCreateWithFlags(&released_[s], cudaEventDisableTiming)) != cudaSuccess)
        return std::string("cudaEventCreate: ") + cudaGetErrorString(e);
    }
    if (cublasCreate(&blas_) != CUBLAS_STATUS_SUCCESS) return "cublasCreate failed";
    cublasSetStream(blas_, stream_);
    // TF32 only when asked: the CPU reference and the gradient checks assume float32 products.
    // DEFAULT math keeps float32's mantissa (no TF32) while letting cuBLAS pick its fastest
    // kernels, as PyTorch does; PEDANTIC would also forbid those and may run slower.
    cublasSetMathMode(blas_, options_.tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
    if (options_.deterministic) {
      // A workspace of our own, fixed for the run, so cuBLAS picks the same algorithms.
      constexpr size_t kWorkspace = size_t(32) << 20;
      workspace_ = alloc(kWorkspace);
      if (!workspace_ || cublasSetWorkspace(blas_, workspace_, kWorkspace) != CUBLAS_STATUS_SUCCESS)
        return "deterministic mode: could not set a fixed cuBLAS workspace";
    }
    return {};
  }

  ~CudaDevice() override {
    if (blas_) cublasDestroy(blas_);
    if (stream_) cudaStreamSynchronize(stream_);
    for (auto& [size, ptr] : free_) cudaFree(ptr);
    for (auto& [ptr, size] : used_) cudaFree(ptr);
    if (copy_stream_) cudaStreamSynchronize(copy_stream_);
    for (int s = 0; s < kUploadSlots; ++s) {
      if (copied_[s]) cudaEventDestroy(copied_[s]);
      if (released_[s]) cudaEventDestroy(released_[s]);
    }
    if (copy_stream_) cudaStreamDestroy(copy_stream_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  std::string describe() const override { return description_; }

  void* alloc(size_t bytes) override {
    const size_t size = round(bytes ? bytes : 1);
    std::lock_guard<std::mutex> lock(mutex_);
    // The smallest cached block that fits, if it wastes less than half of itself.
    auto it = free_.lower_bound(size);
    if (it != free_.end() && it->first <= 2 * size) {
      void* p = it->second;
      used_[p] = it->first;
      cached_ -= it->first;
      free_.erase(it);
      return p;
    }
    void* p = nullptr;
    if (cudaMalloc(&p, size) != cudaSuccess) {
      cudaGetLastError();  // clear it; retry once with the cache given back
      cudaStreamSynchronize(stream_);
      for (auto& [s, q] : free_) cudaFree(q);
      free_.clear();
      cached_ = 0;
      if (cudaMalloc(&p, size) != cudaSuccess) {
        cudaGetLastError();
        return nullptr;
      }
    }
    ++mallocs_;
    used_[p] = size;
    return p;
  }

  void free(void* ptr) override {
    if (!ptr) return;
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = used_.find(ptr);
    if (it == used_.end()) return;
    // Reused in stream order: work queued on the stream that reads the block runs before
    // work queued later that writes it.
    free_.emplace(it->second, ptr);
    cached_ += it->second;
    used_.erase(it);
  }

  size_t cached_bytes() const override { return cached_; }
  size_t device_mallocs() const override { return mallocs_; }

  graft_status* gemm(int32_t ta, int32_t tb, float alpha, const DLTensor* a, const DLTensor* b,
                     float beta, DLTensor* c) override {
    const int64_t m = ta ? cols(a) : rows(a), k = ta ? rows(a) : cols(a);
    const int64_t kb = tb ? cols(b) : rows(b), n = tb ? rows(b) : cols(b);
    if (k != kb || rows(c) != m || cols(c) != n) return invalid("gemm: shapes do not agree");
    if (m == 0 || n == 0) return nullptr;
    // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
    const cublasStatus_t s = cublasSgemm(
        blas_, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, int(n), int(m),
        int(k), &alpha, data(b), int(cols(b)), data(a), int(cols(a)), &beta, data(c), int(n));
    return s == CUBLAS_STATUS_SUCCESS
               ? nullptr
               : failed("cublasSgemm returned status " + std::to_string(int(s)));
  }

  graft_status* axpby(float alpha, const DLTensor* x, float beta, DLTensor* y) override {
    const int64_t n = numel(y);
    if (numel(x) != n) return invalid("axpby: element counts differ");
    if (n) axpby_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(alpha, data(x), beta, data(y), n);
    return launched("axpby");
  }
  graft_status* fill(DLTensor* t, float value) override {
    const int64_t n = numel(t);
    if (n) fill_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(data(t), value, n);
    return launched("fill");
  }
  graft_status* copy(const DLTensor* src, DLTensor* dst) override {
    const size_t bytes = size_t(numel(src)) * (src->dtype.bits / 8);
    if (bytes != size_t(numel(dst)) * (dst->dtype.bits / 8))
      return invalid("copy: byte sizes differ");
    const cudaError_t e = cudaMemcpyAsync(static_cast<char*>(dst->data) + dst->byte_offset,
                                          static_cast<const char*>(src->data) + src->byte_offset,
                                          bytes, cudaMemcpyDefault, stream_);
    if (e != cudaSuccess) return failed(std::string("copy: ") + cudaGetErrorString(e));
    // A host side is the caller's to read or reuse as soon as this returns.
    return on_host(src) || on_host(dst) ? synchronize() : nullptr;
  }
  graft_status* sum_rows(const DLTensor* x, float beta, DLTensor* out) override {
    const int64_t r = rows(x), c = cols(x);
    if (numel(out) != c) return invalid("sum_rows: out does not have x's column count");
    if (c) sum_rows_kernel<<<blocks_for(c), kThreads, 0, stream_>>>(data(x), r, c, beta, data(out));
    return launched("sum_rows");
  }
  graft_status* dot(const DLTensor* x, const DLTensor* y, double* out) override {
    const int64_t n = numel(x);
    if (numel(y) != n) return invalid("dot: element counts differ");
    const int blocks = std::max(1, std::min(blocks_for(n), 1024));
    auto* partial = static_cast<double*>(alloc(sizeof(double) * (size_t(blocks) + 1)));
    if (!partial) return failed("dot: out of device memory");
    dot_partial_kernel<<<blocks, kThreads, 0, stream_>>>(data(x), data(y), n, partial);
    dot_final_kernel<<<1, 1, 0, stream_>>>(partial, blocks, partial + blocks);
    cudaMemcpyAsync(out, partial + blocks, sizeof(double), cudaMemcpyDeviceToHost, stream_);
    graft_status* s = synchronize();
    free(partial);
    return s ? s : launched("dot");
  }
  graft_status* fill_uniform(DLTensor* t, uint64_t seed, uint64_t stream, uint64_t offset,
                             float low, float high) override {
    const int64_t n = numel(t);
    if (n)
      uniform_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(data(t), n, seed, stream, offset, low,
                                                              high);
    return launched("fill_uniform");
  }
  graft_status* fill_normal(DLTensor* t, uint64_t seed, uint64_t stream, uint64_t offset,
                            float mean, float stddev) override {
    const int64_t n = numel(t);
    if (n)
      normal_kernel<<<blocks_for(n), kThreads, 0, stream_>>>(data(t), n, seed, stream, offset, mean,
                                                             stddev);
    return launched("fill_normal");
  }
  void* alloc_pinned(size_t bytes) override {
    void* p = nullptr;
    if (cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocPortable) != cudaSuccess) {
      cudaGetLastError();
      return nullptr;
    }
    return p;
  }
  void free_pinned(void* ptr) override {
    if (ptr) cudaFreeHost(ptr);
  }

  graft_status* upload(const void* host, void* device, size_t bytes, int slot) override {
    if (slot < 0 || slot >= kUploadSlots) return invalid("upload: slot out of range");
    cudaError_t e = cudaSuccess;
    if (released_once_[slot]) e = cudaStreamWaitEvent(copy_stream_, released_[slot], 0);
    if (e == cudaSuccess)
      e = cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, copy_stream_);
    if (e == cudaSuccess) e = cudaEventRecord(copied_[slot], copy_stream_);
    if (e == cudaSuccess) e = cudaStreamWaitEvent(stream_, copied_[slot], 0);
    // The host side is the loader's again once the copy read it (the copy engine reads pinned
    // memory directly; pageable memory is staged by the driver before this returns anyway).
    if (e == cudaSuccess) e = cudaEventSynchronize(copied_[slot]);
    return e == cudaSuccess ? nullptr
                            : failed(std::string("batch upload: ") + cudaGetErrorString(e));
  }
  graft_status* release_upload(int slot) override {
    if (slot < 0 || slot >= kUploadSlots) return invalid("release_upload: slot out of range");
    const cudaError_t e = cudaEventRecord(released_[slot], stream_);
    released_once_[slot] = e == cudaSuccess;
    return e == cudaSuccess ? nullptr
                            : failed(std::string("release_upload: ") + cudaGetErrorString(e));
  }

  void* stream() override { return stream_; }
  graft_status* synchronize() override {
    const cudaError_t e = cudaStreamSynchronize(stream_);
    return e == cudaSuccess ? nullptr : failed(std::string("CUDA: ") + cudaGetErrorString(e));
  }

 private:
  // Blocks in multiples of 512 bytes (cudaMalloc's own alignment is 256), so near sizes share.
  static size_t round(size_t bytes) { return (bytes + 511) / 512 * 512; }
  graft_status* invalid(const std::string& m) const {
    return make_status_(GRAFT_ERR_INVALID_ARGUMENT, m.c_str());
  }
  graft_status* failed(const std::string& m) const {
    return make_status_(GRAFT_ERR_RUNTIME, m.c_str());
  }
  graft_status* launched(const char* what) const {
    const char* error = graft::cuda::launch_error();
    return error ? failed(std::string(what) + ": kernel launch: " + error) : nullptr;
  }

  Options options_;
  MakeStatus make_status_;
  std::string description_;
  cudaStream_t stream_ = nullptr;
  cudaStream_t copy_stream_ = nullptr;  // batch uploads
  cudaEvent_t copied_[kUploadSlots] = {}, released_[kUploadSlots] = {};
  bool released_once_[kUploadSlots] = {};
  cublasHandle_t blas_ = nullptr;
  void* workspace_ = nullptr;
  std::mutex mutex_;
  std::multimap<size_t, void*> free_;       // cached blocks by size
  std::unordered_map<void*, size_t> used_;  // handed out, with their rounded sizes
  size_t cached_ = 0, mallocs_ = 0;
};

}  // namespace
}  // namespace graft::runtime::cuda

extern "C" __attribute__((visibility("default"))) graft::runtime::cuda::Device*
graft_device_cuda_start(uint32_t version, const graft::runtime::cuda::Options* options,
                        graft::runtime::cuda::MakeStatus make_status, std::string* error) {
  if (version != GRAFT_DEVICE_CUDA_MODULE_VERSION) {
    *error = "built for another graft (module version " +
             std::to_string(GRAFT_DEVICE_CUDA_MODULE_VERSION) + ", graft expects " +
             std::to_string(version) + "); rebuild graft";
    return nullptr;
  }
  auto* device = new graft::runtime::cuda::CudaDevice(*options, make_status);
  *error = device->start();
  if (!error->empty()) {
    delete device;
    return nullptr;
  }
  return device;
}
