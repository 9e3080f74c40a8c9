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

// Calls run(ctx, x rows, y rows, last) for each of ctx's micro-batches: ceil(rows / n) rows each
// (the last may be shorter), with row_offset moved to the range's first row; `last` is true for
// the final one (data_parallel starts its gradient sums in that one's backward).
template <class Run>
void for_each_micro_batch(const Context& ctx, const DLTensor& x, const DLTensor& y, Run&& run) {
  const int64_t rows = x.ndim ? x.shape[0] : 0;
  const int64_t n = micro_batches(ctx);
  if (n == 1) {
    run(ctx, x, y, true);
    return;
  }
  GRAFT_CHECK(x.ndim <= GRAFT_MAX_DIMS + 1 && y.ndim <= GRAFT_MAX_DIMS + 1,
              "a batch tensor has more than " << GRAFT_MAX_DIMS + 1 << " axes");
  const int64_t size = (rows + n - 1) / n;
  int64_t x_shape[GRAFT_MAX_DIMS + 1], y_shape[GRAFT_MAX_DIMS + 1];
  for (int64_t begin = 0; begin < rows; begin += size) {
    const int64_t end = begin + size < rows ? begin + size : rows;
    Context part = ctx;
    part.row_offset = ctx.row_offset + begin;
    const DLTensor px = row_range(x, begin, end, x_shape);
    const DLTensor py = row_range(y, begin, end, y_shape);
    run(part, px, py, end == rows);
  }
}

}  // namespace graft
