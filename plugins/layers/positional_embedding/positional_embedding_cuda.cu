// positional_embedding.cpp's loops on the GPU: the add is element-wise; the weight gradient
// gives each (position, element) one thread that sums the batch in sample order, so it is the
// CPU's sum in the CPU's order, without atomics.
#include "graft/cuda/launch.cuh"
#include "positional_embedding_cuda.hpp"
#include "positional_math.hpp"

namespace graft::positional::cuda {
namespace {

__global__ void forward_kernel(const float* x, const float* table, int64_t count, int64_t positions,
                               int64_t width, int64_t first, float* y) {
  for (int64_t e = graft::cuda::first_index(); e < count; e += graft::cuda::grid_stride())
    y[e] = x[e] + table[table_index(e, positions, width, first)];
}

__global__ void gradient_kernel(const float* dy, int64_t n, int64_t per_sample, int64_t first,
                                int64_t width, float* grad) {
  for (int64_t j = graft::cuda::first_index(); j < per_sample; j += graft::cuda::grid_stride())
    grad[first * width + j] += column_sum(dy, n, per_sample, j);
}

}  // namespace

const char* forward(const float* x, const float* table, int64_t n, int64_t t, int64_t c,
                    int64_t first, float* y, void* stream) {
  const int64_t count = n * t * c;
  if (count == 0) return nullptr;
  forward_kernel<<<graft::cuda::blocks_for(count), graft::cuda::kThreads, 0,
                   static_cast<cudaStream_t>(stream)>>>(x, table, count, t, c, first, y);
  return graft::cuda::launch_error();
}

const char* weight_gradient(const float* dy, int64_t n, int64_t t, int64_t c, int64_t first,
                            float* grad, void* stream) {
  if (t * c == 0) return nullptr;
  gradient_kernel<<<graft::cuda::blocks_for(t * c), graft::cuda::kThreads, 0,
                    static_cast<cudaStream_t>(stream)>>>(dy, n, t * c, first, c, grad);
  return graft::cuda::launch_error();
}

}  // namespace graft::positional::cuda
