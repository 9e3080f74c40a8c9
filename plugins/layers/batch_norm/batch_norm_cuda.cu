// batch_norm.cpp's loops on the GPU: one block per channel for the sums (a grid-stride loop over
// channels, each thread summing a fixed stride of the channel's values, then a tree), one thread
// per element for y and dx, on the same batch_norm_math.hpp functions.
#include "batch_norm_cuda.hpp"
#include "batch_norm_math.hpp"
#include "graft/cuda/reduce.cuh"

namespace graft::batch_norm::cuda {
namespace {

using graft::cuda::block_sum;
using graft::cuda::kThreads;

// Value m (of M = n * spatial) of channel c in x (n, channels, spatial).
__device__ inline int64_t at(int64_t m, int64_t c, const Dims& d) {
  return ((m / d.spatial) * d.channels + c) * d.spatial + m % d.spatial;
}

// Two passes as on the CPU: the mean, then the sum of squared deviations from it.
__global__ void statistics_kernel(const float* x, Dims d, float eps, Statistics s,
                                  float* running_mean, float* running_var, double momentum) {
  __shared__ double shared[kThreads];
  const int64_t count = d.n * d.spatial;
  for (int64_t c = blockIdx.x; c < d.channels; c += gridDim.x) {
    double total = 0.0;
    for (int64_t m = threadIdx.x; m < count; m += blockDim.x) total += x[at(m, c, d)];
    const double mean = block_sum(total, shared) / double(count);
    double squares = 0.0;
    for (int64_t m = threadIdx.x; m < count; m += blockDim.x) {
      const double deviation = x[at(m, c, d)] - mean;
      squares += deviation * deviation;
    }
    squares = block_sum(squares, shared);
    if (threadIdx.x != 0) continue;
    const double variance = squares / double(count);
    s.mean[c] = float(mean);
    s.inv_std[c] = inverse_std(float(variance), eps);
    if (!running_mean) continue;
    running_mean[c] = float(running_update(running_mean[c], mean, momentum));
    running_var[c] =
        float(running_update(running_var[c], unbiased_variance(variance, count), momentum));
  }
}

__global__ void running_statistics_kernel(const float* running_mean, const float* running_var,
                                          int64_t channels, float eps, Statistics s) {
  for (int64_t c = graft::cuda::first_index(); c < channels; c += graft::cuda::grid_stride()) {
    s.mean[c] = running_mean[c];
    s.inv_std[c] = inverse_std(running_var[c], eps);
  }
}

__global__ void normalize_kernel(const float* x, float* y, Dims d, const float* weight,
                                 const float* bias, Statistics s) {
  const int64_t total = d.n * d.channels * d.spatial;
  for (int64_t e = graft::cuda::first_index(); e < total; e += graft::cuda::grid_stride()) {
    const int64_t c = (e / d.spatial) % d.channels;
    const float scale = channel_scale(weight ? weight[c] : 1.0f, s.inv_std[c]);
    const float shift = channel_shift(bias ? bias[c] : 0.0f, s.mean[c], scale);
    y[e] = batch_norm::normalize(x[e], scale, shift);
  }
}

// sum(dy) and sum(dy * x_hat) per channel: into the affine gradients and, in training, the
// means dx needs.
__global__ void gradient_sums_kernel(const float* x, const float* dy, Dims d, bool training,
                                     Statistics s, float* grad_weight, float* grad_bias) {
  __shared__ double shared[kThreads];
  const int64_t count = d.n * d.spatial;
  for (int64_t c = blockIdx.x; c < d.channels; c += gridDim.x) {
    double sum_dy = 0.0, sum_dy_x_hat = 0.0;
    for (int64_t m = threadIdx.x; m < count; m += blockDim.x) {
      const int64_t e = at(m, c, d);
      const float x_hat = normalized(x[e], s.mean[c], s.inv_std[c]);
      sum_dy += dy[e];
      sum_dy_x_hat += double(dy[e]) * x_hat;
    }
    sum_dy = block_sum(sum_dy, shared);
    sum_dy_x_hat = block_sum(sum_dy_x_hat, shared);
    if (threadIdx.x != 0) continue;
    if (grad_weight) {
      grad_weight[c] += float(sum_dy_x_hat);
      grad_bias[c] += float(sum_dy);
    }
    s.mean_dy[c] = training ? float(sum_dy / double(count)) : 0.0f;
    s.mean_dy_x_hat[c] = training ? float(sum_dy_x_hat / double(count)) : 0.0f;
  }
}

__global__ void input_gradient_kernel(const float* x, const float* dy, float* dx, Dims d,
                                      const float* weight, Statistics s) {
  const int64_t total = d.n * d.channels * d.spatial;
  for (int64_t e = graft::cuda::first_index(); e < total; e += graft::cuda::grid_stride()) {
    const int64_t c = (e / d.spatial) % d.channels;
    const float scale = channel_scale(weight ? weight[c] : 1.0f, s.inv_std[c]);
    const float x_hat = normalized(x[e], s.mean[c], s.inv_std[c]);
    dx[e] = input_gradient(dy[e], x_hat, scale, s.mean_dy[c], s.mean_dy_x_hat[c]);
  }
}

// One block per channel, as many as the grid allows; short channels get smaller blocks.
unsigned channel_blocks(const Dims& d) { return unsigned(d.channels < 65535 ? d.channels : 65535); }
unsigned channel_threads(const Dims& d) {
  return unsigned(graft::cuda::reduce_threads(d.n * d.spatial));
}

}  // namespace

const char* batch_statistics(const float* x, Dims d, float eps, Statistics s, float* running_mean,
                             float* running_var, double momentum, void* stream) {
  if (d.channels == 0) return nullptr;
  statistics_kernel<<<channel_blocks(d), channel_threads(d), 0,
                      static_cast<cudaStream_t>(stream)>>>(x, d, eps, s, running_mean, running_var,
                                                           momentum);
  return graft::cuda::launch_error();
}

const char* running_statistics(const float* running_mean, const float* running_var,
                               int64_t channels, float eps, Statistics s, void* stream) {
  if (channels == 0) return nullptr;
  running_statistics_kernel<<<graft::cuda::blocks_for(channels), kThreads, 0,
                              static_cast<cudaStream_t>(stream)>>>(running_mean, running_var,
                                                                   channels, eps, s);
  return graft::cuda::launch_error();
}

const char* normalize(const float* x, float* y, Dims d, const float* weight, const float* bias,
                      Statistics s, void* stream) {
  const int64_t total = d.n * d.channels * d.spatial;
  if (total == 0) return nullptr;
  normalize_kernel<<<graft::cuda::blocks_for(total), kThreads, 0,
                     static_cast<cudaStream_t>(stream)>>>(x, y, d, weight, bias, s);
  return graft::cuda::launch_error();
}

const char* backward(const float* x, const float* dy, float* dx, Dims d, bool training,
                     const float* weight, Statistics s, float* grad_weight, float* grad_bias,
                     void* stream) {
  const int64_t total = d.n * d.channels * d.spatial;
  if (total == 0) return nullptr;
  const auto cuda_stream = static_cast<cudaStream_t>(stream);
  gradient_sums_kernel<<<channel_blocks(d), channel_threads(d), 0, cuda_stream>>>(
      x, dy, d, training, s, grad_weight, grad_bias);
  if (const char* error = graft::cuda::launch_error()) return error;
  if (!dx) return nullptr;
  input_gradient_kernel<<<graft::cuda::blocks_for(total), kThreads, 0, cuda_stream>>>(x, dy, dx, d,
                                                                                      weight, s);
  return graft::cuda::launch_error();
}

}  // namespace graft::batch_norm::cuda
