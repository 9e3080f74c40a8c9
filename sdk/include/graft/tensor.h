/* Tensors cross the ABI as DLPack views; this header adds per-sample shapes and the
 * dtype/device constants graft uses. */
#ifndef GRAFT_TENSOR_H
#define GRAFT_TENSOR_H

#include <dlpack/dlpack.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GRAFT_MAX_DIMS 6

/* The shape of one sample (no batch axis). A scalar target has ndim 0. */
typedef struct graft_shape {
  int32_t ndim;
  int64_t dims[GRAFT_MAX_DIMS];
} graft_shape;

static inline int64_t graft_shape_numel(const graft_shape* s) {
  int64_t n = 1;
  for (int32_t i = 0; i < s->ndim; ++i) n *= s->dims[i];
  return n;
}

/* graft computes in float32 (kDLFloat, 32, 1); class labels are int32 (kDLInt, 32, 1). */

#ifdef __cplusplus
}
#endif

#endif
