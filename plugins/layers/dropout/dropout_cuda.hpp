// dropout's CUDA kernels (dropout_cuda.cu) on dropout_mask.hpp's counter-based masks, so a GPU
// draws the mask elements the CPU draws. Each returns NULL, or CUDA's text for a failed launch.
#pragma once

#include <cstdint>

namespace graft::dropout::cuda {

// y = x * mask and mask itself over (n, features): row i is global row first_row + i, element j
// is element offset + j of a whole row of whole_features.
const char* forward(const float* x, float* y, float* mask, int64_t n, int64_t features,
                    int64_t whole_features, int64_t offset, int64_t step, int64_t global_batch,
                    int64_t first_row, uint64_t seed, uint64_t stream, float p, float keep_scale,
                    void* cuda_stream);
// dx = dy * mask over count elements.
const char* backward(const float* dy, const float* mask, float* dx, int64_t count,
                     void* cuda_stream);

}  // namespace graft::dropout::cuda
