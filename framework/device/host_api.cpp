// The host API table handed to every plugin: accounted allocation, statuses, logging, and
// compute primitives dispatched on the tensors' device (CPU, or the CUDA module once started).
#include "device/host_api.hpp"

#include <cblas.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <thread>

#include "device/cpu/cpu_parallel.hpp"
#include "device/cpu/cpu_primitives.hpp"
#include "device/cuda_loader.hpp"
#include "util/errors.hpp"

namespace graft::runtime {

namespace {

std::atomic<size_t> g_allocated{0};
std::atomic<size_t> g_peak{0};
std::atomic<int> g_log_level{GRAFT_LOG_INFO};
std::atomic<int> g_threads{0};

// A header before each block keeps its size for accounting on free.
constexpr size_t kHeader = 64;

void* host_alloc(DLDevice device, size_t bytes) {
  if (device.device_type == kDLCUDA) {
    cuda::Device* gpu = cuda_device();
    return gpu ? gpu->alloc(bytes) : nullptr;
  }
  if (device.device_type == kDLCUDAHost) {  // page-locked, for batches the GPU copies
    cuda::Device* gpu = cuda_device();
    return gpu ? gpu->alloc_pinned(bytes) : nullptr;
  }
  if (device.device_type != kDLCPU) return nullptr;
  void* raw = std::aligned_alloc(64, ((bytes + kHeader + 63) / 64) * 64);
  if (!raw) return nullptr;
  *static_cast<size_t*>(raw) = bytes;
  size_t now = g_allocated.fetch_add(bytes) + bytes;
  size_t peak = g_peak.load();
  while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {
  }
  return static_cast<char*>(raw) + kHeader;
}

void host_free(DLDevice device, void* ptr) {
  if (!ptr) return;
  if (device.device_type == kDLCUDA) {
    if (cuda::Device* gpu = cuda_device()) gpu->free(ptr);
    return;
  }
  if (device.device_type == kDLCUDAHost) {
    if (cuda::Device* gpu = cuda_device()) gpu->free_pinned(ptr);
    return;
  }
  void* raw = static_cast<char*>(ptr) - kHeader;
  g_allocated.fetch_sub(*static_cast<size_t*>(raw));
  std::free(raw);
}

graft_status* make_status(int32_t code, const char* message) {
  return new graft_status{code, message ? message : ""};
}

void host_log(int32_t level, const char* message) {
  if (level < g_log_level.load()) return;
  static const char* names[] = {"debug", "info", "warning", "error"};
  std::fprintf(stderr, "graft %s: %s\n", names[level < 0 ? 0 : level > 3 ? 3 : level], message);
}

bool all_cpu(std::initializer_list<const DLTensor*> ts) {
  for (const DLTensor* t : ts)
    if (t && t->device.device_type != kDLCPU) return false;
  return true;
}

graft_status* unsupported_device() {
  return new graft_status{GRAFT_ERR_UNSUPPORTED,
                          "tensor on a device this build of graft does not support"};
}

// The started CUDA device when every tensor given is in its memory (NULL entries skipped).
cuda::Device* all_cuda(std::initializer_list<const DLTensor*> ts) {
  for (const DLTensor* t : ts)
    if (t && t->device.device_type != kDLCUDA) return nullptr;
  return cuda_device();
}

graft_status* gemm(const graft_exec_ctx* ctx, int32_t ta, int32_t tb, float alpha,
                   const DLTensor* a, const DLTensor* b, float beta, DLTensor* c) {
  if (all_cpu({a, b, c})) return cpu::gemm(ctx, ta, tb, alpha, a, b, beta, c);
  if (cuda::Device* gpu = all_cuda({a, b, c})) return gpu->gemm(ta, tb, alpha, a, b, beta, c);
  return unsupported_device();
}
graft_status* axpby(const graft_exec_ctx* ctx, float alpha, const DLTensor* x, float beta,
                    DLTensor* y) {
  if (all_cpu({x, y})) return cpu::axpby(ctx, alpha, x, beta, y);
  if (cuda::Device* gpu = all_cuda({x, y})) return gpu->axpby(alpha, x, beta, y);
  return unsupported_device();
}
graft_status* fill(const graft_exec_ctx* ctx, DLTensor* t, float v) {
  if (all_cpu({t})) return cpu::fill(ctx, t, v);
  if (cuda::Device* gpu = all_cuda({t})) return gpu->fill(t, v);
  return unsupported_device();
}
graft_status* copy(const graft_exec_ctx* ctx, const DLTensor* s, DLTensor* d) {
  if (all_cpu({s, d})) return cpu::copy(ctx, s, d);
  // Host <-> device or device <-> device: the device copies (UVA tells the direction).
  if (cuda::Device* gpu = cuda_device()) return gpu->copy(s, d);
  return unsupported_device();
}
graft_status* sum_rows(const graft_exec_ctx* ctx, const DLTensor* x, float beta, DLTensor* out) {
  if (all_cpu({x, out})) return cpu::sum_rows(ctx, x, beta, out);
  if (cuda::Device* gpu = all_cuda({x, out})) return gpu->sum_rows(x, beta, out);
  return unsupported_device();
}
graft_status* dot(const graft_exec_ctx* ctx, const DLTensor* x, const DLTensor* y, double* out) {
  if (all_cpu({x, y})) return cpu::dot(ctx, x, y, out);
  if (cuda::Device* gpu = all_cuda({x, y})) return gpu->dot(x, y, out);
  return unsupported_device();
}
graft_status* fill_uniform(const graft_exec_ctx* ctx, DLTensor* t, uint64_t seed, uint64_t stream,
                           uint64_t offset, float lo, float hi) {
  if (all_cpu({t})) return cpu::fill_uniform(ctx, t, seed, stream, offset, lo, hi);
  if (cuda::Device* gpu = all_cuda({t})) return gpu->fill_uniform(t, seed, stream, offset, lo, hi);
  return unsupported_device();
}
graft_status* fill_normal(const graft_exec_ctx* ctx, DLTensor* t, uint64_t seed, uint64_t stream,
                          uint64_t offset, float mean, float sd) {
  if (all_cpu({t})) return cpu::fill_normal(ctx, t, seed, stream, offset, mean, sd);
  if (cuda::Device* gpu = all_cuda({t})) return gpu->fill_normal(t, seed, stream, offset, mean, sd);
  return unsupported_device();
}

void parallel_for(const graft_exec_ctx*, int64_t n, int64_t grain,
                  void (*body)(void*, int64_t, int64_t), void* user) {
  cpu::parallel_for(n, grain, body, user);
}

const graft_host_api kHostApi = {sizeof(graft_host_api),
                                 GRAFT_ABI_MAJOR,
                                 GRAFT_ABI_MINOR,
                                 host_alloc,
                                 host_free,
                                 make_status,
                                 host_log,
                                 fill_uniform,
                                 fill_normal,
                                 gemm,
                                 axpby,
                                 fill,
                                 copy,
                                 sum_rows,
                                 dot,
                                 parallel_for};

}  // namespace

const graft_host_api* host_api() { return &kHostApi; }

void throw_if_failed(graft_status* s, const std::string& who) {
  if (!s) return;
  StatusPtr owned = take(s);
  std::string message = who + ": " + owned->message;
  switch (owned->code) {
    case GRAFT_ERR_INVALID_ARGUMENT:
    case GRAFT_ERR_CORRUPT_DATA:
    case GRAFT_ERR_IO:
    case GRAFT_ERR_UNSUPPORTED: throw UserError(message);
    default: throw Failure(message);
  }
}

size_t allocated_bytes() { return g_allocated.load(); }
size_t peak_allocated_bytes() { return g_peak.load(); }

void set_cpu_threads(int threads) {
  int n = threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
  g_threads.store(n);
  openblas_set_num_threads(n);
  cpu::set_parallel_threads(n);
}
int cpu_threads() {
  int n = g_threads.load();
  return n > 0 ? n : static_cast<int>(std::thread::hardware_concurrency());
}

void set_log_level(int level) { g_log_level.store(level); }

std::string blas_core_name() { return openblas_get_corename(); }

}  // namespace graft::runtime
