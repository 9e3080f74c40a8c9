// cross_entropy's CUDA kernels (losses_cuda.cu), one thread per row on loss_rows.hpp's math.
// Each returns NULL, or CUDA's text for a failed launch.
#pragma once

#include <cstdint>

namespace graft::losses::cuda {

// Per row i of z (n, c): row_loss[i], row_correct[i] (1 when argmax is the label), and
// row_bad[i] = 1 for a label outside 0..c-1 (its loss is then 0: the host reports the row).
const char* cross_entropy_rows(const float* z, const int32_t* labels, int64_t n, int64_t c,
                               float smoothing, float* row_loss, int32_t* row_correct,
                               int32_t* row_bad, void* stream);
// dz (n, c) = scale * (softmax(z) - q) per row; rows with a bad label get zeros.
const char* cross_entropy_gradient(const float* z, const int32_t* labels, int64_t n, int64_t c,
                                   float smoothing, float scale, float* dz, void* stream);

}  // namespace graft::losses::cuda
