// A primitive's view of a dense float32 tensor, shared by the CPU and CUDA paths: its element
// count, the (rows, cols) matrix the host API's calls see it as, and its first element.
#pragma once

#include <cstdint>

#include "graft/graft.h"

namespace graft::runtime::device {

inline int64_t numel(const DLTensor* t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; ++i) n *= t->shape[i];
  return n;
}
// A tensor of more than two dimensions is (shape[0], product of the rest).
inline int64_t rows(const DLTensor* t) { return t->ndim ? t->shape[0] : 1; }
inline int64_t cols(const DLTensor* t) { return t->ndim ? numel(t) / t->shape[0] : 1; }
inline float* data(const DLTensor* t) {
  return reinterpret_cast<float*>(static_cast<char*>(t->data) + t->byte_offset);
}

}  // namespace graft::runtime::device
