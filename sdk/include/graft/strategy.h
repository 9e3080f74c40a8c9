/* The strategy kind: how one training or evaluation step runs over a global batch.
 * It drives the host's model through graft_model_api and never touches layers directly. */
#ifndef GRAFT_STRATEGY_H
#define GRAFT_STRATEGY_H

#include "graft/comm.h"
#include "graft/loss.h"
#include "graft/mesh.h"

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

/* One ZeRO unit (graft_model_api::zero_unit): consecutive top-level layers [begin, end) whose
 * gradients and parameters are 1-D float32 views of `parts` equal parts of `part` floats each
 * (the last part ends in zero padding); this rank owns part `index`. own_gradients and
 * own_parameters are this rank's part (`part` floats): at zero 1 the part `index` of the views
 * above; at zero 2 (gradients) and 3 (also parameters) kept apart, while the whole views are a
 * window the unit shares with the units two before and after it (so a strategy may gather the
 * next unit while one computes): gradients are whole there only during the unit's backward,
 * parameters only once gathered. Views stay valid while the model lives. */
typedef struct graft_zero_unit {
  size_t struct_size;
  int64_t begin, end;
  int64_t part;
  int32_t parts, index;
  DLTensor gradients, parameters;
  DLTensor own_gradients, own_parameters;
} graft_zero_unit;

typedef struct graft_model_api {
  size_t struct_size;
  int64_t (*layer_count)(graft_model* model);
  /* Runs layers [begin, end) on x; *y is the planned output buffer of layer end-1 for
   * ctx->slot, valid until the next forward or backward on that slot (backward may write a
   * layer's dx over its output, GRAFT_ENTRY_DX_OVER_OUTPUT; never the model's last layer's). */
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

  /* Added for the parallel strategies (read them only when struct_size reaches them). */
  /* A 1-D float32 view of the gradients (parameters) of top-level layers [begin, end): they
   * are contiguous, in layer order, so a strategy can all-reduce them in buckets. Buffers
   * (running statistics) have no gradient entries of their own but do occupy their place.
   * The model fills *out whole; its shape array is the model's and stays valid while it lives. */
  graft_status* (*gradients)(graft_model* model, int64_t begin, int64_t end, DLTensor* out);
  graft_status* (*parameters)(graft_model* model, int64_t begin, int64_t end, DLTensor* out);
  /* Sum of squared gradients of the trainable parameters of layers [begin, end); tensor-parallel
   * shards always count, whole (replicated) tensors only when count_replicated is 1, so ranks
   * can sum their parts into the global norm without counting a replica twice. */
  graft_status* (*grad_sq_norm)(graft_model* model, int64_t begin, int64_t end,
                                int32_t count_replicated, double* out);
  /* optimizer_step restricted to layers [begin, end) (a pipeline stage); clipping uses
   * grad_sq_norm_total when it is >= 0 (the strategy's all-reduced global value) and otherwise
   * the norm of these layers. */
  graft_status* (*optimizer_step_layers)(graft_model* model, const graft_exec_ctx* ctx,
                                         int64_t begin, int64_t end, double grad_sq_norm_total);
  /* The plan the model was built with: the stage and shard of top-level layer i. */
  int32_t (*layer_stage)(graft_model* model, int64_t layer);
  int32_t (*layer_shard)(graft_model* model, int64_t layer);

  /* Added in SDK 1.2, for ZeRO (graft_mesh::zero >= 1 with a data degree D > 1). The host lays
   * this rank's parameters out in units of whole top-level layers, each padded with zeros to D
   * equal parts; data rank d owns part d of every unit: it alone keeps that part's optimizer
   * state and updates it. zero_unit_count is 0 without ZeRO. */
  int64_t (*zero_unit_count)(graft_model* model);
  graft_status* (*zero_unit)(graft_model* model, int64_t unit, graft_zero_unit* out);
  /* Sum of squared gradients of this rank's part of `unit`, counted as grad_sq_norm counts. */
  graft_status* (*zero_part_sq_norm)(graft_model* model, int64_t unit, int32_t count_replicated,
                                     double* out);
  /* The update in three calls, so that parts (ZeRO) or chunks are updated under one schedule
   * step: step_begin fixes this step's learning rate and its clipping factor for the global
   * squared gradient norm grad_sq_norm_total; step_part updates this rank's part of `unit`
   * (its gradients scaled by that factor); step_end counts the step. */
  graft_status* (*step_begin)(graft_model* model, const graft_exec_ctx* ctx,
                              double grad_sq_norm_total);
  graft_status* (*step_part)(graft_model* model, const graft_exec_ctx* ctx, int64_t unit);
  graft_status* (*step_end)(graft_model* model);
  /* Added in ABI 1.3: the sum over the tensor group that the model runs itself around layers
   * the plan places as GRAFT_SHARD_PAIR (an attention layer split by heads, or a residual block
   * whose inner layers end in a Megatron pair): on their output after forward, and on their
   * input's gradient after backward, so that such a layer takes and gives whole tensors and
   * the layers before it inside a block see whole gradients. A strategy that places PAIR
   * layers sets it before it runs the model; `reduce` sums t in place over its tensor group
   * and names it `what` to the watchdog. */
  void (*set_tensor_reduce)(graft_model* model,
                            graft_status* (*reduce)(void* user, DLTensor* t, const char* what),
                            void* user);
  /* Added in ABI 1.4: parameters tied by the config (a layer's `tie`, e.g. GPT's output
   * projection and token embedding) whose layers sit on different pipeline stages. Each of the
   * two stages keeps a copy; their gradients must be summed before the norm and the step so
   * that the copies stay equal. unpack 0 packs this rank's gradients of those parameters into
   * one buffer (zeros where it holds neither copy) and points *out at it; the strategy sums
   * *out in place over its pipeline group (after any data-parallel sum); unpack 1 writes the
   * sums back. out->shape[0] is the same on every rank, and 0 when no tie crosses stages.
   * Ties within a stage need nothing: the model keeps them as one tensor. */
  graft_status* (*tied_gradients)(graft_model* model, int32_t unpack, DLTensor* out);
} graft_model_api;

typedef struct graft_world {
  size_t struct_size;
  int32_t rank;
  int32_t size;
  /* Added for the parallel strategies. NULL when the world is only being planned
   * (`graft validate --world N` makes one per rank and never communicates). */
  graft_comm* comm;
  const graft_comm_api* comm_api;
  double timeout_s; /* [parallel] timeout_s, already applied by the host's watchdog */
  /* Added in SDK 1.2: the mesh this rank sits on (mesh.h). A one-axis strategy's world is a
   * one-axis mesh (data_parallel: data = world size). NULL from an older host. */
  const graft_mesh* mesh;
} graft_world;

/* How a layer is split across tensor-parallel ranks (DESIGN.md §4, Megatron's pairs).
 * COLUMN: the output's last axis is split in `count` equal parts; rank `index` computes its
 * part from the whole input. ROW: the input's last axis is split; the output keeps its shape
 * and holds a partial sum the strategy all-reduces; only index 0 adds the bias. PART: the
 * input's last axis is split and the layer, element-wise, computes on part `index` exactly what
 * the whole layer computes on those elements (created with the whole input shape, as ROW is).
 * PAIR (SDK 1.3): COLUMN then ROW inside one layer (attention: its heads split, the QKV
 * projection by columns, the output projection by rows): the input is whole, the output a
 * partial sum the strategy all-reduces, and dx a partial sum it all-reduces too. */
typedef enum graft_shard_mode {
  GRAFT_SHARD_NONE = 0,
  GRAFT_SHARD_COLUMN = 1,
  GRAFT_SHARD_ROW = 2,
  GRAFT_SHARD_PART = 3,
  GRAFT_SHARD_PAIR = 4
} graft_shard_mode;

/* What the host tells plan() about top-level layer i, before any layer is created. */
typedef struct graft_layer_info {
  size_t struct_size;
  const char* type;   /* the plugin's name, or "residual" */
  int32_t kind;       /* GRAFT_KIND_LAYER or GRAFT_KIND_ACTIVATION (a residual block: LAYER) */
  uint32_t flags;     /* GRAFT_ENTRY_* of its entry; GRAFT_ENTRY_ELEMENTWISE set by the host
                         for activations (and linears with an element-wise fused activation);
                         GRAFT_ENTRY_SHARD_COLUMN/ROW cleared where this layer's options make
                         its shard() refuse the mode (the host tries it as part 0 of 1) */
  int64_t parameters; /* of the whole, unsharded layer */
  graft_shape input;  /* per sample, unsharded */
  graft_shape output;
} graft_layer_info;

typedef struct graft_layer_placement {
  size_t struct_size;
  int32_t stage; /* pipeline stage (consecutive ranks hold consecutive stages); 0 if none */
  int32_t shard; /* graft_shard_mode for this rank's copy */
} graft_layer_placement;

/* Filled by plan(). The host pre-fills defaults: one stage, no shards, one slot, rows = global
 * batch, layers[i] = {stage 0, NONE}. */
typedef struct graft_plan {
  size_t struct_size;
  int32_t stages;        /* pipeline stages */
  int32_t shards;        /* tensor-parallel ranks a sharded layer is split over */
  int32_t slots;         /* buffer sets the model plans: micro-batches in flight at once */
  int64_t rows_per_slot; /* the most rows one forward call on this rank sees */
  int64_t n_layers;
  graft_layer_placement* layers; /* n_layers entries, owned by the host */
  /* For `graft validate --world N`: what one training step sends from this rank. */
  int64_t messages_per_step;
  int64_t message_bytes_per_step;
  int32_t stage_index; /* this rank's pipeline stage */
  int32_t shard_index; /* this rank's part of every sharded layer (0 .. shards-1) */
  /* Added in SDK 1.2, for `graft validate --world N`: of message_bytes_per_step, the bytes
   * this rank sends on each mesh axis's group (graft_axis order); the host pre-fills zeros. */
  int64_t axis_bytes_per_step[GRAFT_MESH_AXES];
  /* A strategy that shards over its data group ([parallel] zero >= 1) sets it: the host closes
   * a ZeRO unit (whole top-level layers, the last first) once it holds at least this many
   * floats; 0: one unit per layer. The host pre-fills -1: the strategy does not shard, and
   * the host refuses zero >= 1 with it. */
  int64_t zero_unit_floats;
} graft_plan;

/* What a strategy says about the training steps since its last report (a pipeline: the
 * measured idle fraction of each stage next to the predicted bubble). Rank 0 prints `message`
 * and writes the values to metrics.jsonl as {"event":"strategy","strategy":..,"step":..,
 * "epoch":.., name: value, ...}. Everything pointed to is the strategy's, valid until its
 * next call. */
typedef struct graft_strategy_report {
  size_t struct_size;
  const char* message; /* one line for the log, or NULL */
  int64_t n_values;
  const char* const* names; /* n_values names, e.g. "idle_stage0" */
  const double* values;
} graft_strategy_report;

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

  /* Added for the parallel strategies (may be NULL, or absent in an older plugin: then one
   * stage, no shards, every rank reads the whole batch). */
  /* Before the model is built: places layers on stages and shards, and sizes the buffers.
   * A layout the config cannot have (more stages than layers, a world size the degree does
   * not divide) is a GRAFT_ERR_INVALID_ARGUMENT naming the key to change. */
  graft_status* (*plan)(void* self, const graft_layer_info* layers, int64_t n_layers,
                        int64_t global_batch, graft_plan* plan);
  /* The rows [*begin, *end) of a global batch of `rows` that this rank must read; the host
   * passes train_step/eval_step exactly those, with ctx->row_offset = *begin. A rank that needs
   * none (a middle pipeline stage) sets *begin = *end. */
  void (*batch_rows)(void* self, int64_t rows, int32_t training, int64_t* begin, int64_t* end);
  /* (optional) At the end of each training epoch the host calls it on every rank at the same
   * point, so it may communicate (gather per-rank figures); it resets what it reports. Leaving
   * *out as the host cleared it (no message, no values) says nothing. */
  graft_status* (*report)(void* self, graft_strategy_report* out);
} graft_strategy_vtable;

#ifdef __cplusplus
}
#endif

#endif
