// Row ranges of a batch, for strategies that split a global batch into shards or micro-batches.
#pragma once

#include <cstddef>
#include <cstdint>

#include "graft/cpp/kinds.hpp"

namespace graft {

// ctx.micro_batches, from a host new enough to pass it (older ones mean one).
inline int64_t micro_batches(const Context& ctx) {
  const size_t end = offsetof(graft_exec_ctx, micro_batches) + sizeof(ctx.micro_batches);
  if (ctx.struct_size < end || ctx.micro_batches < 1) return 1;
  return ctx.micro_batches;
}

// Rows [begin, end) of a (rows, ...) tensor as a view; `shape` (ndim entries) holds its shape.
// A strided tensor keeps its strides; a dense one (strides NULL) stays dense.
inline DLTensor row_range(const DLTensor& t, int64_t begin, int64_t end, int64_t* shape) {
  DLTensor view = t;
  int64_t row_elements = 1;
  for (int axis = 0; axis < t.ndim; ++axis) {
    shape[axis] = t.shape[axis];
    if (axis > 0) row_elements *= t.shape[axis];
  }
  shape[0] = end - begin;
  view.shape = shape;
  const int64_t row_stride = t.strides ? t.strides[0] : row_elements;
  const uint64_t element_bytes = (uint64_t(t.dtype.bits) * t.dtype.lanes + 7) / 8;
  view.byte_offset = t.byte_offset + uint64_t(begin * row_stride) * element_bytes;
  return view;
}

}  // namespace graft
