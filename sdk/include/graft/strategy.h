/* The strategy kind: how one training or evaluation step runs over a global batch.
 * It drives the host's model through graft_model_api and never touches layers directly. */
#ifndef GRAFT_STRATEGY_H
#define GRAFT_STRATEGY_H

#include "graft/loss.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct graft_model graft_model; /* opaque, the host's */

/* Sums over the rows a step saw; the host turns them into means. */
typedef struct graft_step_result {
  size_t struct_size;
  double loss_sum;
  double metric_sums[GRAFT_MAX_METRICS];
  int64_t rows;
} graft_step_result;

typedef struct graft_model_api {
  size_t struct_size;
  int64_t (*layer_count)(graft_model* model);
  /* Runs layers [begin, end) on x; *y is the planned output buffer of layer end-1 for
   * ctx->slot, valid until the next forward on that slot. */
  graft_status* (*forward)(graft_model* model, const graft_exec_ctx* ctx, int64_t begin,
                           int64_t end, const DLTensor* x, const DLTensor** y);
  /* Loss of prediction against target, added into *result; when dprediction is not NULL it
   * receives the planned gradient buffer d(loss sum)/d(prediction) / ctx->global_batch. */
  graft_status* (*loss)(graft_model* model, const graft_exec_ctx* ctx, const DLTensor* prediction,
                        const DLTensor* target, graft_step_result* result,
                        const DLTensor** dprediction);
  /* Backward through layers [begin, end) in reverse, from dy (the gradient of layer end-1's
   * output). *dx is the gradient of layer begin's input (NULL when begin == 0). Parameter
   * gradients accumulate. on_layer_done (may be NULL) is called as each layer finishes. */
  graft_status* (*backward)(graft_model* model, const graft_exec_ctx* ctx, int64_t begin,
                            int64_t end, const DLTensor* dy, const DLTensor** dx,
                            void (*on_layer_done)(void* user, int64_t layer), void* user);
  graft_status* (*zero_grad)(graft_model* model);
  /* Clips by global norm when configured, applies the schedule and updates every parameter. */
  graft_status* (*optimizer_step)(graft_model* model, const graft_exec_ctx* ctx);
} graft_model_api;

typedef struct graft_world {
  size_t struct_size;
  int32_t rank;
  int32_t size;
} graft_world;

typedef struct graft_strategy_vtable {
  size_t struct_size;
  graft_status* (*create)(const graft_host_api* host, const graft_options* options,
                          const graft_world* world, void** self);
  void (*destroy)(void* self);
  /* x: (global batch, input...), y: (global batch, target...). */
  graft_status* (*train_step)(void* self, const graft_model_api* api, graft_model* model,
                              const graft_exec_ctx* ctx, const DLTensor* x, const DLTensor* y,
                              graft_step_result* result);
  graft_status* (*eval_step)(void* self, const graft_model_api* api, graft_model* model,
                             const graft_exec_ctx* ctx, const DLTensor* x, const DLTensor* y,
                             graft_step_result* result);
} graft_strategy_vtable;

#ifdef __cplusplus
}
#endif

#endif
