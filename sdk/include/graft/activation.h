/* The activation kind: a parameter-free map over the last axis. May stand as a layer in a
 * model (type = "relu"); element-wise ones are also fused into linear by name. */
#ifndef GRAFT_ACTIVATION_H
#define GRAFT_ACTIVATION_H

#include "graft/host.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Element-wise: y[i] depends on x[i] only (softmax is not). */
#define GRAFT_ACTIVATION_ELEMENTWISE 1u

typedef struct graft_activation_vtable {
  size_t struct_size;
  graft_status* (*create)(const graft_host_api* host, const graft_options* options, void** self);
  void (*destroy)(void* self);
  uint32_t (*flags)(void* self);
  graft_status* (*forward)(void* self, const graft_exec_ctx* ctx, const DLTensor* x, DLTensor* y);
  graft_status* (*backward)(void* self, const graft_exec_ctx* ctx, const DLTensor* x,
                            const DLTensor* y, const DLTensor* dy, DLTensor* dx);
} graft_activation_vtable;

#ifdef __cplusplus
}
#endif

#endif
