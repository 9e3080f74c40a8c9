// Tensor-parallel parts (layer.h's shard_axis): a part is the index-th of `count` equal slices
// of a whole tensor along one axis. Used to initialise parts from whole tensors, to gather
// parts into whole tensors for checkpoints and to slice whole tensors again on resume.
#pragma once

#include <cstdint>
#include <cstring>

#include "graft/graft.h"

namespace graft::runtime {

// The whole tensor's shape: the part's with `axis` multiplied by `count`.
inline graft_shape whole_shape(const graft_shape& part, int axis, int32_t count) {
  graft_shape whole = part;
  if (axis >= 0 && axis < part.ndim) whole.dims[axis] *= count;
  return whole;
}

// A (outer, part length, inner) view of the part's shape around `axis`.
struct PartGeometry {
  int64_t outer = 1, length = 1, inner = 1;
  PartGeometry(const graft_shape& part, int axis) {
    for (int d = 0; d < part.ndim; ++d) {
      if (d < axis)
        outer *= part.dims[d];
      else if (d == axis)
        length = part.dims[d];
      else
        inner *= part.dims[d];
    }
  }
};

// part = whole[..., index * length : (index + 1) * length, ...] along `axis`.
inline void copy_part_from_whole(const float* whole, float* part, const graft_shape& part_shape,
                                 int axis, int32_t index, int32_t count) {
  const PartGeometry g(part_shape, axis);
  const int64_t block = g.length * g.inner;  // one outer row of the part
  for (int64_t o = 0; o < g.outer; ++o)
    std::memcpy(part + o * block, whole + (o * count + index) * block,
                size_t(block) * sizeof(float));
}

// The inverse: writes the part into its place in the whole.
inline void copy_part_into_whole(const float* part, float* whole, const graft_shape& part_shape,
                                 int axis, int32_t index, int32_t count) {
  const PartGeometry g(part_shape, axis);
  const int64_t block = g.length * g.inner;
  for (int64_t o = 0; o < g.outer; ++o)
    std::memcpy(whole + (o * count + index) * block, part + o * block,
                size_t(block) * sizeof(float));
}

}  // namespace graft::runtime
