// The same element math as the CPU loops (graft/cpp/elementwise.hpp, softmax_row.hpp), one
// grid-stride kernel per direction; the kind is a runtime argument here (one kernel for all).
#include <cuda_runtime.h>

#include <algorithm>

#include "activations_cuda.hpp"
#include "softmax_row.hpp"

namespace graft::activations_cuda {
namespace {

constexpr int kThreads = 256;
int blocks(int64_t n) { return int(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535)); }
const char* launched() {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

__global__ void forward_kernel(elementwise::Kind kind, const float* x, float* y, int64_t n,
                               float slope) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] = elementwise::apply(kind, x[i], slope);
}
__global__ void backward_kernel(elementwise::Kind kind, const float* x, const float* y,
                                const float* dy, float* dx, int64_t n, float slope) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    dx[i] = dy[i] * elementwise::derivative(kind, x[i], y[i], slope);
}
__global__ void softmax_forward_kernel(const float* x, float* y, int64_t rows, int64_t c) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < rows;
       r += int64_t(gridDim.x) * blockDim.x)
    softmax::forward_row(x + r * c, y + r * c, c);
}
__global__ void softmax_backward_kernel(const float* y, const float* dy, float* dx, int64_t rows,
                                        int64_t c) {
  for (int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; r < rows;
       r += int64_t(gridDim.x) * blockDim.x)
    softmax::backward_row(y + r * c, dy + r * c, dx + r * c, c);
}

}  // namespace

const char* forward(elementwise::Kind kind, const float* x, float* y, int64_t n, float slope,
                    void* stream) {
  if (n == 0) return nullptr;
  forward_kernel<<<blocks(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(kind, x, y, n,
                                                                                 slope);
  return launched();
}
const char* backward(elementwise::Kind kind, const float* x, const float* y, const float* dy,
                     float* dx, int64_t n, float slope, void* stream) {
  if (n == 0) return nullptr;
  backward_kernel<<<blocks(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(kind, x, y, dy,
                                                                                  dx, n, slope);
  return launched();
}
const char* softmax_forward(const float* x, float* y, int64_t rows, int64_t c, void* stream) {
  if (rows == 0) return nullptr;
  softmax_forward_kernel<<<blocks(rows), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      x, y, rows, c);
  return launched();
}
const char* softmax_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t c,
                             void* stream) {
  if (rows == 0) return nullptr;
  softmax_backward_kernel<<<blocks(rows), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      y, dy, dx, rows, c);
  return launched();
}

}  // namespace graft::activations_cuda
