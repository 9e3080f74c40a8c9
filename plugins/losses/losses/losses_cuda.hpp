// The losses' CUDA kernels (losses_cuda.cu) on loss_rows.hpp's math: cross_entropy one thread
// per row; mse, mae and bce_with_logits one block per row, its sum a tree in a fixed order (no
// atomics). Each returns NULL, or CUDA's text for a failed launch.
#pragma once

#include <cstdint>

#include "loss_rows.hpp"

namespace graft::losses::cuda {

// Per row i of z (n, c): row_loss[i], row_correct[i] (1 when argmax is the label), and
// row_bad[i] = 1 for a label outside 0..c-1 (its loss is then 0: the host reports the row).
const char* cross_entropy_rows(const float* z, const int32_t* labels, int64_t n, int64_t c,
                               float smoothing, float* row_loss, int32_t* row_correct,
                               int32_t* row_bad, void* stream);
// dz (n, c) = scale * (softmax(z) - q) per row; rows with a bad label get zeros.
const char* cross_entropy_gradient(const float* z, const int32_t* labels, int64_t n, int64_t c,
                                   float smoothing, float scale, float* dz, void* stream);

// Per row i of p, t (n, e): row_loss[i] = the sum of element_loss over the row (the host
// divides by e) and, when row_hits is not NULL, row_hits[i] = the row's count of element_hit.
const char* element_rows(ElementLoss kind, const float* p, const float* t, int64_t n, int64_t e,
                         double* row_loss, double* row_hits, void* stream);
// d = element_gradient(kind, p, t, factor) over count elements.
const char* element_gradient(ElementLoss kind, const float* p, const float* t, int64_t count,
                             float factor, float* d, void* stream);

}  // namespace graft::losses::cuda
