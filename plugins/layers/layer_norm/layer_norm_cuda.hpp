// layer_norm's CUDA kernels (layer_norm_cuda.cu) on layer_norm_math.hpp's formulas: row sums by
// one block per row and parameter gradients by one thread column per element, each in a fixed
// order (no atomics), in double as on the CPU. Each returns NULL, or CUDA's text for a failed
// launch.
#pragma once

#include <cstdint>

namespace graft::layer_norm::cuda {

// y (rows, length) from x: each row normalised, then scaled and shifted per element (weight and
// bias NULL without elementwise_affine); statistics (rows, 2), when not NULL, receives each
// row's mean and inverse standard deviation.
const char* forward(const float* x, float* y, int64_t rows, int64_t length, float eps,
                    const float* weight, const float* bias, float* statistics, void* stream);
// dx (when not NULL) through each row's statistics; grad_weight += sum over rows of dy * x_hat
// and grad_bias += sum of dy (both NULL without elementwise_affine).
const char* backward(const float* x, const float* dy, float* dx, int64_t rows, int64_t length,
                     const float* weight, const float* statistics, float* grad_weight,
                     float* grad_bias, void* stream);

}  // namespace graft::layer_norm::cuda
