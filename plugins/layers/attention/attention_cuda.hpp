// attention's CUDA kernels (attention_cuda.cu) on attention_math.hpp's formulas, with the CPU
// path's layouts (attention_cpu.hpp); the projections go through the host's gemm (cuBLAS).
// Each returns NULL, or CUDA's text for a failed launch.
#pragma once

#include <cstdint>

#include "attention_math.hpp"

namespace graft::attention::cuda {

// qkv (N*T, 3P) += bias (when not NULL), then q and k turned (when rope) at positions
// first + (row mod T); sign -1 turns gradients back.
const char* bias_and_rope(const Geometry& g, float* qkv, int64_t samples, const float* bias,
                          bool rope, double rope_base, int64_t first, float sign, void* stream);
// y (rows, width) += bias (width,) on every row.
const char* add_bias(float* y, const float* bias, int64_t rows, int64_t width, void* stream);
// attn (N*T, P) and lse (N, H, T) from qkv (N*T, 3P).
const char* forward(const Geometry& g, int64_t samples, const float* qkv, float* attn, float* lse,
                    const DropoutDraw& drop, void* stream);
// dqkv (N*T, 3P, before un-roping) from dattn (N*T, P).
const char* backward(const Geometry& g, int64_t samples, const float* qkv, const float* attn,
                     const float* lse, const float* dattn, float* dqkv, const DropoutDraw& drop,
                     void* stream);
// Generation: appends the new k and v to cache (N, H, 2, capacity, d), then attends.
const char* forward_cached(const Geometry& g, int64_t samples, const float* qkv, float* cache,
                           int64_t capacity, int64_t first, float* attn, void* stream);

}  // namespace graft::attention::cuda
