/* The host API: what the runtime lends every plugin — allocation, logging, errors,
 * counter-based random numbers and the compute primitives dispatched on the tensors' device. */
#ifndef GRAFT_HOST_H
#define GRAFT_HOST_H

#include <stddef.h>
#include <stdint.h>

#include "graft/abi.h"
#include "graft/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque; made by host->make_status and owned by the host. NULL means success. */
typedef struct graft_status graft_status;

typedef enum graft_status_code {
  GRAFT_OK = 0,
  GRAFT_ERR_INVALID_ARGUMENT = 1, /* bad option, shape or input: the user's to fix */
  GRAFT_ERR_RUNTIME = 2,
  GRAFT_ERR_IO = 3,
  GRAFT_ERR_UNSUPPORTED = 4,
  GRAFT_ERR_OUT_OF_MEMORY = 5,
  GRAFT_ERR_CORRUPT_DATA = 6
} graft_status_code;

typedef enum graft_log_level {
  GRAFT_LOG_DEBUG = 0,
  GRAFT_LOG_INFO = 1,
  GRAFT_LOG_WARN = 2,
  GRAFT_LOG_ERROR = 3
} graft_log_level;

struct graft_host_api;

/* Everything a call needs to know about where and why it runs. Passed explicitly, never global. */
typedef struct graft_exec_ctx {
  size_t struct_size;
  const struct graft_host_api* host;
  DLDevice device;
  void* stream;         /* CUDA stream on cuda; NULL on cpu */
  int32_t training;     /* 1 in training, 0 in evaluation */
  int64_t step;         /* optimizer steps taken so far (0-based step being computed) */
  uint64_t seed;        /* the run seed */
  int64_t global_batch; /* rows in the whole global batch of this step */
  int64_t row_offset;   /* index of this tensor's first row within the global batch */
  int32_t layer_index;  /* position of the called layer in the model; -1 outside layers.
                         * Layers inside residual blocks are numbered after the top-level
                         * ones, in order, so every layer has its own number. */
  int32_t rank;
  int32_t world;
  int32_t slot; /* buffer set (micro-batch in flight); 0 when only one */
  /* Added after 1.0's first release (structs grow only at their end): read it only when
   * struct_size reaches past it. Gradient accumulation: a train step passes the global batch
   * whole and the strategy runs it as this many micro-batches (row ranges, each with its
   * row_offset), summing their gradients before one optimizer step; the model's buffers are
   * planned for ceil(global_batch / micro_batches) rows. 0 or 1: one. */
  int32_t micro_batches;
  /* Added in ABI 1.3: for a layer's call, (rows, scratch_per_sample) floats of the memory its
   * graft_layer_desc.scratch_per_sample asked for, shared with other layers' calls; NULL when
   * it asked for none, or from a host (or test harness) that lends none. */
  DLTensor* scratch;
} graft_exec_ctx;

typedef struct graft_host_api {
  size_t struct_size;
  uint32_t abi_major;
  uint32_t abi_minor;

  /* Memory: 64-byte aligned, accounted by the host. NULL when out of memory. */
  void* (*alloc)(DLDevice device, size_t bytes);
  void (*free)(DLDevice device, void* ptr);

  graft_status* (*make_status)(int32_t code, const char* message);
  void (*log)(int32_t level, const char* message);

  /* Counter-based random numbers (Philox-4x32-10): element i of t gets the value keyed by
   * (seed, stream, offset + i), so a value never depends on how a tensor is split. */
  graft_status* (*fill_uniform)(const graft_exec_ctx* ctx, DLTensor* t, uint64_t seed,
                                uint64_t stream, uint64_t offset, float low, float high);
  graft_status* (*fill_normal)(const graft_exec_ctx* ctx, DLTensor* t, uint64_t seed,
                               uint64_t stream, uint64_t offset, float mean, float stddev);

  /* c = alpha * op(a) @ op(b) + beta * c on row-major float32 matrices; a tensor of more than
   * two dimensions is viewed as (shape[0], product of the rest). */
  graft_status* (*gemm)(const graft_exec_ctx* ctx, int32_t transpose_a, int32_t transpose_b,
                        float alpha, const DLTensor* a, const DLTensor* b, float beta, DLTensor* c);
  /* y = alpha * x + beta * y, element-wise over equal element counts. */
  graft_status* (*axpby)(const graft_exec_ctx* ctx, float alpha, const DLTensor* x, float beta,
                         DLTensor* y);
  graft_status* (*fill)(const graft_exec_ctx* ctx, DLTensor* t, float value);
  /* Copies between any devices; equal byte sizes. */
  graft_status* (*copy)(const graft_exec_ctx* ctx, const DLTensor* src, DLTensor* dst);
  /* out[j] = beta * out[j] + sum_i x[i, j] for x viewed as (rows, cols): the bias gradient. */
  graft_status* (*sum_rows)(const graft_exec_ctx* ctx, const DLTensor* x, float beta,
                            DLTensor* out);
  /* *out = sum_i x[i] * y[i] in double precision (x == y gives the squared norm). */
  graft_status* (*dot)(const graft_exec_ctx* ctx, const DLTensor* x, const DLTensor* y,
                       double* out);

  /* Added in ABI 1.1 (use it only when struct_size reaches it; graft/cpp/parallel.hpp does):
   * runs body(user, begin, end) over contiguous, disjoint ranges covering [0, n), at the same
   * time on the host's CPU threads ([run] threads), each range at least `grain` long so that
   * short loops stay on the calling thread; returns when every range has run. A call made
   * while the threads are busy (from inside a body, or from another thread) runs on the
   * calling thread alone. body must not throw or longjmp. For loops outside gemm (optimizer
   * updates, element-wise passes) on host memory. */
  void (*parallel_for)(const graft_exec_ctx* ctx, int64_t n, int64_t grain,
                       void (*body)(void* user, int64_t begin, int64_t end), void* user);
} graft_host_api;

#ifdef __cplusplus
}
#endif

#endif
