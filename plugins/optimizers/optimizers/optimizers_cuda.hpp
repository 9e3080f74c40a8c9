// The optimizers' update loops as CUDA kernels (optimizers_cuda.cu), one instantiation per
// combination of flags as on the CPU, on the same update_math.hpp. Each returns NULL, or CUDA's
// text for a failed launch. State a combination does not use may be NULL.
#pragma once

#include <cstdint>

#include "update_math.hpp"

namespace graft::optimizers::cuda {

const char* sgd(const SgdCoefficients& c, float* param, const float* grad, float* buffer, int64_t n,
                void* stream);
const char* adam(const AdamCoefficients& c, float* param, const float* grad, float* exp_avg,
                 float* exp_avg_sq, float* max_exp_avg_sq, int64_t n, void* stream);
const char* rmsprop(const RmspropCoefficients& c, float* param, const float* grad,
                    float* square_avg, float* buffer, float* grad_avg, int64_t n, void* stream);

}  // namespace graft::optimizers::cuda
