// The id check of the embedding lookup, written once for the CPU loops and the CUDA kernels
// (GRAFT_HD): ids arrive as float32 and must be exact integers within the table.
#pragma once

#include <stdint.h>

#include "graft/random.h"

namespace graft::embedding {

// Float32 holds every integer up to 2^24 exactly; a larger table could not be addressed.
constexpr int64_t kLargestTable = int64_t{1} << 24;

// The row of value v, or -1 when v is not an integer in [0, rows) (NaN included): the range
// is tested before the conversion, which is undefined for values an int64 cannot hold.
GRAFT_HD inline int64_t row_of(float v, int64_t rows) {
  if (!(v >= 0.0f && v < (float)rows)) return -1;
  const int64_t id = (int64_t)v;
  return (float)id == v ? id : -1;
}

}  // namespace graft::embedding
