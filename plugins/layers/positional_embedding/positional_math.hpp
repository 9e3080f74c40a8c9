// The position arithmetic of positional_embedding, written once for the CPU loops and the CUDA
// kernels (GRAFT_HD): element e of a batch (N, T, C) whose first position is `first` reads row
// first + t of the table (max_positions, C).
#pragma once

#include <stdint.h>

#include "graft/random.h"

namespace graft::positional {

// The table element that element e of a (N, T, C) batch adds.
GRAFT_HD inline int64_t table_index(int64_t e, int64_t positions, int64_t width, int64_t first) {
  const int64_t per_sample = positions * width;
  return first * width + e % per_sample;
}

// grad[first + t, c] += the sum over the batch of dy[n, t, c], n in order (the CPU's order).
GRAFT_HD inline float column_sum(const float* dy, int64_t n, int64_t per_sample, int64_t j) {
  float total = 0.0f;
  for (int64_t i = 0; i < n; ++i) total += dy[i * per_sample + j];
  return total;
}

}  // namespace graft::positional
