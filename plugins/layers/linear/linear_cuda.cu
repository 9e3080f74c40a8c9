// The CPU loops of linear.cpp, one thread per element, on the same graft/cpp/elementwise.hpp.
#include "graft/cuda/launch.cuh"
#include "linear_cuda.hpp"

namespace graft::linear_cuda {
namespace {

__global__ void bias_activation_kernel(elementwise::Kind kind, float* y, const float* bias,
                                       float* pre, int64_t n, int64_t h, float slope) {
  for (int64_t e = graft::cuda::first_index(); e < n * h; e += graft::cuda::grid_stride()) {
    const float z = bias ? y[e] + bias[e % h] : y[e];
    if (pre) pre[e] = z;
    y[e] = elementwise::apply(kind, z, slope);
  }
}

__global__ void activation_gradient_kernel(elementwise::Kind kind, const float* dy, const float* y,
                                           float* dz, bool dz_holds_pre, int64_t count,
                                           float slope) {
  for (int64_t i = graft::cuda::first_index(); i < count; i += graft::cuda::grid_stride()) {
    // As on the CPU: relu and leaky_relu read x > 0 from y > 0.
    const float x = dz_holds_pre ? dz[i] : y[i];
    dz[i] = dy[i] * elementwise::derivative(kind, x, y[i], slope);
  }
}

}  // namespace

const char* bias_activation(elementwise::Kind kind, float* y, const float* bias, float* pre,
                            int64_t n, int64_t h, float slope, void* stream) {
  if (n * h == 0) return nullptr;
  bias_activation_kernel<<<graft::cuda::blocks_for(n * h), graft::cuda::kThreads, 0,
                           static_cast<cudaStream_t>(stream)>>>(kind, y, bias, pre, n, h, slope);
  return graft::cuda::launch_error();
}

const char* activation_gradient(elementwise::Kind kind, const float* dy, const float* y, float* dz,
                                bool dz_holds_pre, int64_t count, float slope, void* stream) {
  if (count == 0) return nullptr;
  activation_gradient_kernel<<<graft::cuda::blocks_for(count), graft::cuda::kThreads, 0,
                               static_cast<cudaStream_t>(stream)>>>(kind, dy, y, dz, dz_holds_pre,
                                                                    count, slope);
  return graft::cuda::launch_error();
}

}  // namespace graft::linear_cuda
