// The activations' CUDA kernels (activations_cuda.cu), called from activations.cpp when the
// tensors are in GPU memory. Each returns NULL, or CUDA's text for a failed launch.
#pragma once

#include <cstdint>

#include "graft/cpp/elementwise.hpp"

namespace graft::activations_cuda {

const char* forward(elementwise::Kind kind, const float* x, float* y, int64_t n, float slope,
                    void* stream);
const char* backward(elementwise::Kind kind, const float* x, const float* y, const float* dy,
                     float* dx, int64_t n, float slope, void* stream);
// Rows of c elements, one thread per row (softmax_row.hpp, as on the CPU).
const char* softmax_forward(const float* x, float* y, int64_t rows, int64_t c, void* stream);
const char* softmax_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t c,
                             void* stream);

}  // namespace graft::activations_cuda
