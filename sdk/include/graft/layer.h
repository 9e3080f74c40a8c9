/* The layer kind: options + per-sample input shape in; output shape, parameters,
 * forward and backward out. */
#ifndef GRAFT_LAYER_H
#define GRAFT_LAYER_H

#include "graft/host.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum graft_init {
  GRAFT_INIT_ZEROS = 0,
  GRAFT_INIT_ONES = 1,
  GRAFT_INIT_XAVIER_UNIFORM = 2, /* U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)) */
  GRAFT_INIT_KAIMING_NORMAL = 3, /* N(0, gain * sqrt(2 / fan_in)) */
  GRAFT_INIT_KAIMING_UNIFORM =
      4,                  /* U(-a, a), a = gain * sqrt(3 / fan_in) (PyTorch's Linear default) */
  GRAFT_INIT_NORMAL = 5,  /* N(0, gain) */
  GRAFT_INIT_UNIFORM = 6, /* U(-gain, gain) */
  GRAFT_INIT_CONSTANT = 7 /* every element = gain */
} graft_init;

typedef struct graft_param_spec {
  size_t struct_size;
  const char* name; /* "weight", "bias": unique within the layer */
  graft_shape shape;
  int32_t init; /* graft_init */
  int64_t fan_in;
  int64_t fan_out;
  float gain;
  int32_t is_bias_or_norm; /* excluded from weight decay when the optimizer is told so */
  /* A buffer the layer updates itself in forward (running statistics): initialised and saved
   * in checkpoints like a parameter, never updated by the optimizer. */
  int32_t is_buffer;
  /* Added for tensor parallelism: after shard(), the axis of the whole tensor this one is an
   * equal part of (part `index` of `count`); -1 when the layer holds it whole. The host
   * initialises the whole tensor and keeps the part, so values never depend on the layout, and
   * gathers parts into whole tensors for checkpoints. fan_in/fan_out stay the whole layer's. */
  int32_t shard_axis;
} graft_param_spec;

/* How a layer uses its workspace (graft_layer_desc.workspace_use, ABI 1.1), which tells the
 * host what memory it may lend for it. */
typedef enum graft_workspace_use {
  /* Forward leaves data in it for backward: the layer's own memory from a forward to the
   * backward after it on the same slot. The host calls backward at most once per forward, so
   * backward may overwrite it; the next forward starts from whatever is there. */
  GRAFT_WORKSPACE_KEPT = 0,
  /* Scratch inside each call only: the host may give several layers the same memory. */
  GRAFT_WORKSPACE_SCRATCH = 1,
  /* Scratch, and backward also works when the workspace is the memory dy is in (the same data
   * pointer and offset): it reads each element of dy before it writes that element of the
   * workspace and reads no element of dy after writing it. The host lends the buffer of the
   * output's gradient, dy's own when the model computed it, which nothing reads after the
   * call; workspace_per_sample must not exceed the output's size. */
  GRAFT_WORKSPACE_SCRATCH_OVER_DY = 2
} graft_workspace_use;

/* What a layer answers once it is created. Pointers stay valid until destroy(). */
typedef struct graft_layer_desc {
  size_t struct_size;
  graft_shape output;
  size_t n_params;
  const graft_param_spec* params;
  /* float32 scratch per sample that forward leaves for backward (masks, pre-activations);
   * planned and owned by the host, handed back as a (batch, workspace_per_sample) tensor. */
  int64_t workspace_per_sample;
  /* Added in ABI 1.1: a graft_workspace_use; 0 (KEPT) when absent in an older plugin. */
  int32_t workspace_use;
  /* Added in ABI 1.3: float32 per sample that forward and backward may use during the call
   * only, besides the workspace: the host lends memory that other layers' calls share, as
   * graft_exec_ctx.scratch. A layer keeps in its workspace only what backward needs, so that
   * the rest of its working memory is not held from forward to backward once per layer. */
  int64_t scratch_per_sample;
} graft_layer_desc;

/* All tensors carry the batch as axis 0. params[i] and grads[i] follow desc.params.
 * backward ACCUMULATES into grads (the host zeroes them), so micro-batches add up; dx is NULL
 * when nobody needs it (the first layer). */
typedef struct graft_layer_vtable {
  size_t struct_size;
  graft_status* (*create)(const graft_host_api* host, const graft_options* options,
                          const graft_shape* input, void** self);
  void (*destroy)(void* self);
  graft_status* (*describe)(void* self, graft_layer_desc* out);
  graft_status* (*forward)(void* self, const graft_exec_ctx* ctx, const DLTensor* const* params,
                           const DLTensor* x, DLTensor* y, DLTensor* workspace);
  graft_status* (*backward)(void* self, const graft_exec_ctx* ctx, const DLTensor* const* params,
                            const DLTensor* x, const DLTensor* y, const DLTensor* dy, DLTensor* dx,
                            DLTensor* const* grads, DLTensor* workspace);
  /* Added for tensor parallelism (NULL or absent: the layer cannot shard). Called once, after
   * create and before describe; `mode` is a graft_shard_mode (strategy.h). */
  graft_status* (*shard)(void* self, int32_t mode, int32_t index, int32_t count);
  /* Added in ABI 1.3 for generation with a key-value cache (graft generate). NULL or absent:
   * the layer treats each position of a sample alone (per-position layers), so it runs as it
   * is. first >= 0: the next forward calls see positions [first, first + t) of the same N
   * sequences (t the per-sample length the layer was created for), whose positions before
   * `first` forward calls saw since the call with first = 0; the layer keeps what it needs of
   * them (attention: keys and values) for up to `capacity` positions. first = -1 returns to
   * training and evaluation, where each sample is a whole sequence from position 0. No
   * backward is called while first >= 0. */
  graft_status* (*set_positions)(void* self, int64_t first, int64_t capacity);
} graft_layer_vtable;

#ifdef __cplusplus
}
#endif

#endif
