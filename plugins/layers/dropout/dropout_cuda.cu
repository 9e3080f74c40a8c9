// dropout.cpp's loops on the GPU, one thread per element: each draws its own mask element from
// dropout_mask.hpp's counter-based Philox, so the masks are the CPU's bit for bit.
#include "dropout_cuda.hpp"
#include "dropout_mask.hpp"
#include "graft/cuda/launch.cuh"

namespace graft::dropout::cuda {
namespace {

__global__ void forward_kernel(const float* x, float* y, float* mask, int64_t n, int64_t features,
                               int64_t whole_features, int64_t offset, int64_t step,
                               int64_t global_batch, int64_t first_row, uint64_t seed,
                               uint64_t stream, float p, float keep_scale) {
  for (int64_t e = graft::cuda::first_index(); e < n * features; e += graft::cuda::grid_stride()) {
    const int64_t i = e / features, j = e % features;
    const uint64_t counter = index(step, global_batch, first_row + i, whole_features, offset + j);
    const graft_philox_block block = graft_philox(seed, stream, counter >> 2);
    const float m = multiplier(graft_u32_to_unit(block.v[counter & 3u]), p, keep_scale);
    mask[e] = m;
    y[e] = x[e] * m;
  }
}

__global__ void backward_kernel(const float* dy, const float* mask, float* dx, int64_t count) {
  for (int64_t e = graft::cuda::first_index(); e < count; e += graft::cuda::grid_stride())
    dx[e] = dy[e] * mask[e];
}

}  // namespace

const char* forward(const float* x, float* y, float* mask, int64_t n, int64_t features,
                    int64_t whole_features, int64_t offset, int64_t step, int64_t global_batch,
                    int64_t first_row, uint64_t seed, uint64_t stream, float p, float keep_scale,
                    void* cuda_stream) {
  if (n * features == 0) return nullptr;
  forward_kernel<<<graft::cuda::blocks_for(n * features), graft::cuda::kThreads, 0,
                   static_cast<cudaStream_t>(cuda_stream)>>>(
      x, y, mask, n, features, whole_features, offset, step, global_batch, first_row, seed, stream,
      p, keep_scale);
  return graft::cuda::launch_error();
}

const char* backward(const float* dy, const float* mask, float* dx, int64_t count,
                     void* cuda_stream) {
  if (count == 0) return nullptr;
  backward_kernel<<<graft::cuda::blocks_for(count), graft::cuda::kThreads, 0,
                    static_cast<cudaStream_t>(cuda_stream)>>>(dy, mask, dx, count);
  return graft::cuda::launch_error();
}

}  // namespace graft::dropout::cuda
