// The CUDA kernels of max_pool2d and avg_pool2d: one thread per output in forward and per input
// in backward (a gather, so no atomics), on the GRAFT_HD window functions the CPU loops share.
#include "graft/cuda/launch.cuh"
#include "pooling_cuda.hpp"

namespace graft::pool::cuda {
namespace {

using graft::cuda::first_index;
using graft::cuda::grid_stride;
using graft::cuda::kThreads;

__global__ void max_forward_kernel(Window2d window, const float* x, int64_t planes, float* y,
                                   float* winners) {
  const int64_t ow_count = window.out_width(), out_plane = window.out_height() * ow_count;
  const int64_t in_plane = window.height * window.width;
  for (int64_t e = first_index(); e < planes * out_plane; e += grid_stride()) {
    const int64_t plane = e / out_plane, o = e % out_plane;
    int64_t winner = 0;
    y[e] = max_window(window, x + plane * in_plane, o / ow_count, o % ow_count, &winner);
    winners[e] = static_cast<float>(winner);
  }
}

__global__ void max_backward_kernel(Window2d window, const float* dy, const float* winners,
                                    int64_t planes, float* dx) {
  const int64_t out_plane = window.out_height() * window.out_width();
  const int64_t in_plane = window.height * window.width;
  for (int64_t e = first_index(); e < planes * in_plane; e += grid_stride()) {
    const int64_t plane = e / in_plane, at = e % in_plane;
    dx[e] = max_input_gradient(window, dy + plane * out_plane, winners + plane * out_plane,
                               at / window.width, at % window.width);
  }
}

__global__ void avg_forward_kernel(Window2d window, const float* x, int64_t planes,
                                   bool count_padding, float* y) {
  const int64_t ow_count = window.out_width(), out_plane = window.out_height() * ow_count;
  const int64_t in_plane = window.height * window.width;
  for (int64_t e = first_index(); e < planes * out_plane; e += grid_stride()) {
    const int64_t plane = e / out_plane, o = e % out_plane;
    y[e] = window_mean(window, x + plane * in_plane, o / ow_count, o % ow_count, count_padding);
  }
}

__global__ void avg_backward_kernel(Window2d window, const float* dy, int64_t planes,
                                    bool count_padding, float* dx) {
  const int64_t out_plane = window.out_height() * window.out_width();
  const int64_t in_plane = window.height * window.width;
  for (int64_t e = first_index(); e < planes * in_plane; e += grid_stride()) {
    const int64_t plane = e / in_plane, at = e % in_plane;
    dx[e] = avg_input_gradient(window, dy + plane * out_plane, at / window.width, at % window.width,
                               count_padding);
  }
}

cudaStream_t as_stream(void* stream) { return static_cast<cudaStream_t>(stream); }
int64_t outputs(const Window2d& window, int64_t planes) {
  return planes * window.out_height() * window.out_width();
}
int64_t inputs(const Window2d& window, int64_t planes) {
  return planes * window.height * window.width;
}

}  // namespace

const char* max_forward(const Window2d& window, const float* x, int64_t planes, float* y,
                        float* winners, void* stream) {
  const int64_t count = outputs(window, planes);
  if (count == 0) return nullptr;
  max_forward_kernel<<<graft::cuda::blocks_for(count), kThreads, 0, as_stream(stream)>>>(
      window, x, planes, y, winners);
  return graft::cuda::launch_error();
}

const char* max_backward(const Window2d& window, const float* dy, const float* winners,
                         int64_t planes, float* dx, void* stream) {
  const int64_t count = inputs(window, planes);
  if (count == 0) return nullptr;
  max_backward_kernel<<<graft::cuda::blocks_for(count), kThreads, 0, as_stream(stream)>>>(
      window, dy, winners, planes, dx);
  return graft::cuda::launch_error();
}

const char* avg_forward(const Window2d& window, const float* x, int64_t planes, bool count_padding,
                        float* y, void* stream) {
  const int64_t count = outputs(window, planes);
  if (count == 0) return nullptr;
  avg_forward_kernel<<<graft::cuda::blocks_for(count), kThreads, 0, as_stream(stream)>>>(
      window, x, planes, count_padding, y);
  return graft::cuda::launch_error();
}

const char* avg_backward(const Window2d& window, const float* dy, int64_t planes,
                         bool count_padding, float* dx, void* stream) {
  const int64_t count = inputs(window, planes);
  if (count == 0) return nullptr;
  avg_backward_kernel<<<graft::cuda::blocks_for(count), kThreads, 0, as_stream(stream)>>>(
      window, dy, planes, count_padding, dx);
  return graft::cuda::launch_error();
}

}  // namespace graft::pool::cuda
