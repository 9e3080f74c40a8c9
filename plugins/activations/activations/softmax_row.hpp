// Softmax over one row, forward and backward, shared by the CPU loop and a CUDA kernel
// (GRAFT_HD): the row maximum is subtracted first so exp never overflows.
#pragma once

#include <math.h>
#include <stdint.h>

#include "graft/random.h"

namespace graft::softmax {

// y = exp(x - max x) / sum exp(x - max x) over c elements.
GRAFT_HD inline void forward_row(const float* x, float* y, int64_t c) {
  float largest = x[0];
  for (int64_t j = 1; j < c; ++j) largest = x[j] > largest ? x[j] : largest;
  float total = 0.0f;
  for (int64_t j = 0; j < c; ++j) {
    y[j] = expf(x[j] - largest);
    total += y[j];
  }
  const float inverse = 1.0f / total;
  for (int64_t j = 0; j < c; ++j) y[j] *= inverse;
}

// dx = y * (dy - sum(dy * y)): the Jacobian diag(y) - y y^T applied to dy. dx may alias dy.
GRAFT_HD inline void backward_row(const float* y, const float* dy, float* dx, int64_t c) {
  float weighted = 0.0f;
  for (int64_t j = 0; j < c; ++j) weighted += dy[j] * y[j];
  for (int64_t j = 0; j < c; ++j) dx[j] = y[j] * (dy[j] - weighted);
}

}  // namespace graft::softmax
