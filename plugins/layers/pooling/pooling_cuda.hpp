// max_pool2d's and avg_pool2d's CUDA kernels (pooling_cuda.cu), one thread per element written
// on pool_window.hpp's GRAFT_HD functions. Each returns NULL, or CUDA's text for a failed launch.
#pragma once

#include <cstdint>

#include "pool_window.hpp"

namespace graft::pool::cuda {

// `planes` is N * C: every (H, W) plane of x (N, C, H, W) is pooled on its own.

// y (planes, OH, OW) and each window's winner, its place ih * W + iw as a float.
const char* max_forward(const Window2d& window, const float* x, int64_t planes, float* y,
                        float* winners, void* stream);
// dx (planes, H, W), overwritten: each input gathers dy of the windows it won.
const char* max_backward(const Window2d& window, const float* dy, const float* winners,
                         int64_t planes, float* dx, void* stream);
const char* avg_forward(const Window2d& window, const float* x, int64_t planes, bool count_padding,
                        float* y, void* stream);
// dx (planes, H, W), overwritten: each input gathers dy / divisor of the windows over it.
const char* avg_backward(const Window2d& window, const float* dy, int64_t planes,
                         bool count_padding, float* dx, void* stream);

}  // namespace graft::pool::cuda
