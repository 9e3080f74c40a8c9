// cuBLAS's own sgemm rate on the matrix products one training step of an MLP performs, timed
// with CUDA events around cublasSgemm: the ceiling graft's CUDA device, which calls it, can reach.
#pragma once

#include <cstdint>
#include <vector>

#include "sgemm_rate.hpp"

namespace graft::bench {

// Which cuBLAS math mode the products run in; neither lets cuBLAS round inputs to TF32.
// standard: CUBLAS_DEFAULT_MATH, what PyTorch sets with allow_tf32 off. pedantic:
// CUBLAS_PEDANTIC_MATH, what graft's CUDA device sets with [run] tf32 = false.
enum class CublasMath { standard, pedantic };

const char* cublas_math_name(CublasMath math);  // "CUBLAS_DEFAULT_MATH", ...

// The products of one step on GPU `device` (the same m, n, k, transposes, leading dimensions
// and beta as plugins/layers/linear through the CUDA device's gemm), each timed with events,
// repeated until `seconds` have passed after two untimed rounds (kernel loading, clocks).
// Throws std::runtime_error with CUDA's or cuBLAS's own text on failure.
SgemmRate measure_cublas_sgemm(const std::vector<int64_t>& widths, int64_t batch, double seconds,
                               CublasMath math, int device = 0);

}  // namespace graft::bench
