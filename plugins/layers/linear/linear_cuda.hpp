// linear's two element-wise passes as CUDA kernels (linear_cuda.cu); the matrix products and
// the bias gradient go through the host's gemm and sum_rows, which run on the GPU by device.
// Each returns NULL, or CUDA's text for a failed launch.
#pragma once

#include <cstdint>

#include "graft/cpp/elementwise.hpp"

namespace graft::linear_cuda {

// y = f(y + b) over (n, h); bias may be NULL; pre (n, h), when given, receives y + b.
const char* bias_activation(elementwise::Kind kind, float* y, const float* bias, float* pre,
                            int64_t n, int64_t h, float slope, void* stream);
// dz = dy * f'(.): from pre (held in dz on entry) when dz_holds_pre, else from y.
const char* activation_gradient(elementwise::Kind kind, const float* dy, const float* y, float* dz,
                                bool dz_holds_pre, int64_t count, float slope, void* stream);

}  // namespace graft::linear_cuda
