// positional_embedding's CUDA kernels (positional_embedding_cuda.cu) on positional_math.hpp.
// Each returns NULL, or CUDA's text for a failed launch.
#pragma once

#include <cstdint>

namespace graft::positional::cuda {

// y (n, t, c) = x + table[first + t] per sample.
const char* forward(const float* x, const float* table, int64_t n, int64_t t, int64_t c,
                    int64_t first, float* y, void* stream);
// grad[first + t] += the sum over the n samples of dy (n, t, c), in sample order.
const char* weight_gradient(const float* dy, int64_t n, int64_t t, int64_t c, int64_t first,
                            float* grad, void* stream);

}  // namespace graft::positional::cuda
