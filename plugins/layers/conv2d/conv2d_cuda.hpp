// conv2d's im2col path as CUDA kernels (conv2d_cuda.cu), one thread per element on im2col.hpp's
// GRAFT_HD functions; the matrix products go through the host's gemm (cuBLAS by device).
// Each returns NULL, or CUDA's text for a failed launch.
#pragma once

#include <cstdint>

#include "graft/cpp/elementwise.hpp"
#include "im2col.hpp"

namespace graft::conv::cuda {

// Dimension letters as in im2col.hpp: B samples, O output channels, P output pixels.

// x (B, C, H, W) -> col (C*k*k, B*P).
const char* im2col(const Lowering& lowering, const float* x, int64_t batch, float* col,
                   void* stream);
// dx (B, C, H, W) = col2im(dcol), overwritten; each element gathers its own taps.
const char* col2im(const Lowering& lowering, const float* dcol, int64_t batch, float* dx,
                   void* stream);
// y (B, O, P) = f(product (O, B*P) + bias); bias may be NULL; pre (B, O, P), when given,
// receives the pre-activation.
const char* scatter_output(const Lowering& lowering, elementwise::Kind kind, const float* product,
                           int64_t batch, const float* bias, float* y, float* pre, float slope,
                           void* stream);
// dz (O, B*P) = dy * f'(.), f' from pre when given (gelu), else from y.
const char* output_gradient(const Lowering& lowering, elementwise::Kind kind, const float* dy,
                            const float* y, const float* pre, int64_t batch, float* dz, float slope,
                            void* stream);
// bias_grad (O,) += the sums of dz's rows, in the CPU's order (no atomics: the same bits on
// every run).
const char* bias_gradient(const Lowering& lowering, const float* dz, int64_t batch,
                          float* bias_grad, void* stream);

}  // namespace graft::conv::cuda
