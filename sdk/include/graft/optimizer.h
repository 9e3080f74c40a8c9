/* The optimizer kind: updates one parameter from its gradient and its own state tensors.
 * The learning-rate schedule and gradient clipping are the host's. */
#ifndef GRAFT_OPTIMIZER_H
#define GRAFT_OPTIMIZER_H

#include "graft/host.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GRAFT_MAX_OPTIMIZER_STATE 4

typedef struct graft_optimizer_desc {
  size_t struct_size;
  size_t n_state; /* state tensors per parameter, each shaped like it, zero at the start */
  const char* state_names[GRAFT_MAX_OPTIMIZER_STATE]; /* saved in checkpoints by these names */
} graft_optimizer_desc;

typedef struct graft_param_update {
  size_t struct_size;
  DLTensor* param;
  const DLTensor* grad;
  DLTensor* const* state; /* n_state tensors */
  float lr;               /* this step's rate, after the schedule */
  int64_t step;           /* 1 for the first update */
  int32_t weight_decay;   /* 0 for biases and norms when the optimizer excludes them */
} graft_param_update;

typedef struct graft_optimizer_vtable {
  size_t struct_size;
  graft_status* (*create)(const graft_host_api* host, const graft_options* options, void** self);
  void (*destroy)(void* self);
  graft_status* (*describe)(void* self, graft_optimizer_desc* out);
  graft_status* (*step)(void* self, const graft_exec_ctx* ctx, const graft_param_update* update);
} graft_optimizer_vtable;

#ifdef __cplusplus
}
#endif

#endif
