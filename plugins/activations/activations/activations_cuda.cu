// The same element math as the CPU loops (graft/cpp/elementwise.hpp, softmax_row.hpp), one grid-
// stride kernel per direction; the kind is a runtime argument here (one kernel for all).
#include "activations_cuda.hpp"
#include "graft/cuda/launch.cuh"
#include "softmax_row.hpp"

namespace graft::activations_cuda {
namespace {

__global__ void forward_kernel(elementwise::Kind kind, const float* x, float* y, int64_t n,
                               float slope) {
  for (int64_t i = graft::cuda::first_index(); i < n; i += graft::cuda::grid_stride())
    y[i] = elementwise::apply(kind, x[i], slope);
}
__global__ void backward_kernel(elementwise::Kind kind, const float* x, const float* y,
                                const float* dy, float* dx, int64_t n, float slope) {
  for (int64_t i = graft::cuda::first_index(); i < n; i += graft::cuda::grid_stride())
    dx[i] = dy[i] * elementwise::derivative(kind, x[i], y[i], slope);
}
__global__ void softmax_forward_kernel(const float* x, float* y, int64_t rows, int64_t c) {
  for (int64_t r = graft::cuda::first_index(); r < rows; r += graft::cuda::grid_stride())
    softmax::forward_row(x + r * c, y + r * c, c);
}
__global__ void softmax_backward_kernel(const float* y, const float* dy, float* dx, int64_t rows,
                                        int64_t c) {
  for (int64_t r = graft::cuda::first_index(); r < rows; r += graft::cuda::grid_stride())
    softmax::backward_row(y + r * c, dy + r * c, dx + r * c, c);
}

}  // namespace

const char* forward(elementwise::Kind kind, const float* x, float* y, int64_t n, float slope,
                    void* stream) {
  if (n == 0) return nullptr;
  forward_kernel<<<graft::cuda::blocks_for(n), graft::cuda::kThreads, 0,
                   static_cast<cudaStream_t>(stream)>>>(kind, x, y, n, slope);
  return graft::cuda::launch_error();
}
const char* backward(elementwise::Kind kind, const float* x, const float* y, const float* dy,
                     float* dx, int64_t n, float slope, void* stream) {
  if (n == 0) return nullptr;
  backward_kernel<<<graft::cuda::blocks_for(n), graft::cuda::kThreads, 0,
                    static_cast<cudaStream_t>(stream)>>>(kind, x, y, dy, dx, n, slope);
  return graft::cuda::launch_error();
}
const char* softmax_forward(const float* x, float* y, int64_t rows, int64_t c, void* stream) {
  if (rows == 0) return nullptr;
  softmax_forward_kernel<<<graft::cuda::blocks_for(rows), graft::cuda::kThreads, 0,
                           static_cast<cudaStream_t>(stream)>>>(x, y, rows, c);
  return graft::cuda::launch_error();
}
const char* softmax_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t c,
                             void* stream) {
  if (rows == 0) return nullptr;
  softmax_backward_kernel<<<graft::cuda::blocks_for(rows), graft::cuda::kThreads, 0,
                            static_cast<cudaStream_t>(stream)>>>(y, dy, dx, rows, c);
  return graft::cuda::launch_error();
}

}  // namespace graft::activations_cuda
