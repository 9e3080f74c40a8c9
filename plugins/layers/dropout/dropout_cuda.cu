#include <cuda_runtime.h>

#include <algorithm>

#include "dropout_cuda.hpp"
#include "dropout_mask.hpp"

namespace graft::dropout::cuda {
namespace {

constexpr int kThreads = 256;
int blocks(int64_t n) { return int(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535)); }
const char* launched() {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

__global__ void forward_kernel(const float* x, float* y, float* mask, int64_t n, int64_t features,
                               int64_t whole_features, int64_t offset, int64_t step,
                               int64_t global_batch, int64_t first_row, uint64_t seed,
                               uint64_t stream, float p, float keep_scale) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n * features;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / features, j = e % features;
    const uint64_t counter =
        index(step, global_batch, first_row + i, whole_features, offset + j);
    const graft_philox_block block = graft_philox(seed, stream, counter >> 2);
    const float m = multiplier(graft_u32_to_unit(block.v[counter & 3u]), p, keep_scale);
    mask[e] = m;
    y[e] = x[e] * m;
  }
}

__global__ void backward_kernel(const float* dy, const float* mask, float* dx, int64_t count) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < count;
       e += int64_t(gridDim.x) * blockDim.x)
    dx[e] = dy[e] * mask[e];
}

}  // namespace

const char* forward(const float* x, float* y, float* mask, int64_t n, int64_t features,
                    int64_t whole_features, int64_t offset, int64_t step, int64_t global_batch,
                    int64_t first_row, uint64_t seed, uint64_t stream, float p, float keep_scale,
                    void* cuda_stream) {
  if (n * features == 0) return nullptr;
  forward_kernel<<<blocks(n * features), kThreads, 0, static_cast<cudaStream_t>(cuda_stream)>>>(
      x, y, mask, n, features, whole_features, offset, step, global_batch, first_row, seed,
      stream, p, keep_scale);
  return launched();
}

const char* backward(const float* dy, const float* mask, float* dx, int64_t count,
                     void* cuda_stream) {
  if (count == 0) return nullptr;
  backward_kernel<<<blocks(count), kThreads, 0, static_cast<cudaStream_t>(cuda_stream)>>>(
      dy, mask, dx, count);
  return launched();
}

}  // namespace graft::dropout::cuda
