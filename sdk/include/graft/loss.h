/* The loss kind: predictions and targets in, a summed loss and its gradient out. */
#ifndef GRAFT_LOSS_H
#define GRAFT_LOSS_H

#include "graft/host.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GRAFT_MAX_METRICS 4

/* What the dataset's targets look like: int32 class labels (classes > 0, target ndim 0)
 * or float32 values. */
typedef struct graft_target_info {
  size_t struct_size;
  graft_shape shape;
  DLDataType dtype;
  int64_t classes;
} graft_target_info;

typedef struct graft_loss_desc {
  size_t struct_size;
  size_t n_metrics;
  const char* metric_names[GRAFT_MAX_METRICS]; /* e.g. "accuracy": a per-row mean */
} graft_loss_desc;

/* forward returns SUMS over the rows it is given (loss and each metric), so any split of a
 * batch over ranks or micro-batches adds up to the same totals; the host divides.
 * backward writes dpred = scale * d(loss sum)/d(pred); the host passes scale = 1/global batch. */
typedef struct graft_loss_vtable {
  size_t struct_size;
  graft_status* (*create)(const graft_host_api* host, const graft_options* options,
                          const graft_shape* prediction, const graft_target_info* target,
                          void** self);
  void (*destroy)(void* self);
  graft_status* (*describe)(void* self, graft_loss_desc* out);
  graft_status* (*forward)(void* self, const graft_exec_ctx* ctx, const DLTensor* prediction,
                           const DLTensor* target, double* loss_sum, double* metric_sums);
  graft_status* (*backward)(void* self, const graft_exec_ctx* ctx, const DLTensor* prediction,
                            const DLTensor* target, float scale, DLTensor* dprediction);
} graft_loss_vtable;

#ifdef __cplusplus
}
#endif

#endif
