// batch_norm's CUDA kernels (batch_norm_cuda.cu) on batch_norm_math.hpp's formulas: per-channel
// sums by one block per channel, in a fixed order (no atomics), in double as on the CPU.
// Each returns NULL, or CUDA's text for a failed launch.
#pragma once

#include <cstdint>

namespace graft::batch_norm::cuda {

// x (n, channels, spatial): M = n * spatial values per channel.
struct Dims {
  int64_t n, channels, spatial;
};

// Per-channel device scratch (channels floats each), filled by one call and read by the next.
struct Statistics {
  float* mean;
  float* inv_std;
  float* mean_dy;        // backward: mean(dy) over the channel's M values (0 in evaluation)
  float* mean_dy_x_hat;  // backward: mean(dy * x_hat) (0 in evaluation)
};

// mean and inv_std from x's batch (biased variance); when running_mean is not NULL the running
// statistics are updated too (PyTorch's momentum, unbiased variance).
const char* batch_statistics(const float* x, Dims d, float eps, Statistics s, float* running_mean,
                             float* running_var, double momentum, void* stream);
// mean = running_mean, inv_std = 1 / sqrt(running_var + eps): evaluation.
const char* running_statistics(const float* running_mean, const float* running_var,
                               int64_t channels, float eps, Statistics s, void* stream);
// y = x * scale + shift per channel; weight and bias NULL without affine.
const char* normalize(const float* x, float* y, Dims d, const float* weight, const float* bias,
                      Statistics s, void* stream);
// grad_weight += sum(dy * x_hat), grad_bias += sum(dy) per channel (NULL without affine), and
// dx (when not NULL) through the batch statistics in training or the constants in evaluation.
const char* backward(const float* x, const float* dy, float* dx, Dims d, bool training,
                     const float* weight, Statistics s, float* grad_weight, float* grad_bias,
                     void* stream);

}  // namespace graft::batch_norm::cuda
