/* graft plugin ABI: version numbers, plugin kinds, the plugin-info struct and its one entry symbol.
 * Only C crosses the boundary, so plugins survive compiler and standard-library changes. */
#ifndef GRAFT_ABI_H
#define GRAFT_ABI_H

#include <stddef.h>
#include <stdint.h>

#include "graft/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A plugin loads when its major equals the host's and its minor is <= the host's.
 * Structs only grow at their end; readers compare struct_size before touching a newer field. */
#define GRAFT_ABI_MAJOR 1
#define GRAFT_ABI_MINOR 4

#define GRAFT_ENTRY_SYMBOL "graft_get_plugin_info"

typedef enum graft_kind {
  GRAFT_KIND_LAYER = 1,
  GRAFT_KIND_ACTIVATION = 2,
  GRAFT_KIND_LOSS = 3,
  GRAFT_KIND_OPTIMIZER = 4,
  GRAFT_KIND_DATASET = 5,
  GRAFT_KIND_STRATEGY = 6
} graft_kind;

/* Option types of a plugin's options schema; values arrive already checked against it. */
typedef enum graft_option_type {
  GRAFT_OPT_BOOL = 1,
  GRAFT_OPT_INT = 2,
  GRAFT_OPT_FLOAT = 3,
  GRAFT_OPT_STRING = 4,
  GRAFT_OPT_INT_LIST = 5,
  GRAFT_OPT_FLOAT_LIST = 6,
  GRAFT_OPT_STRING_LIST = 7
} graft_option_type;

typedef struct graft_option_spec {
  size_t struct_size;
  const char* name;
  graft_option_type type;
  const char*
      default_value; /* TOML literal ("0.9", "true", "\"relu\"", "[1, 2]"); NULL: required */
  double min;        /* inclusive bounds for numbers (each list element too) */
  double max;
  const char* choices; /* strings only: "a|b|c", or NULL for any string */
  const char* doc;     /* one line */
} graft_option_spec;

typedef struct graft_option_value {
  const char* name;
  graft_option_type type;
  int64_t int_value;        /* BOOL (0/1) and INT */
  double float_value;       /* FLOAT */
  const char* string_value; /* STRING */
  size_t count;             /* lists */
  const int64_t* ints;
  const double* floats;
  const char* const* strings;
} graft_option_value;

/* A plugin's own table, validated and with every default filled in. Valid only during create(). */
typedef struct graft_options {
  size_t struct_size;
  size_t count;
  const graft_option_value* values;
} graft_options;

typedef struct graft_plugin_entry {
  size_t struct_size;
  graft_kind kind;
  const char* name;    /* unique per kind across all loaded libraries */
  const char* summary; /* one line */
  size_t n_options;
  const graft_option_spec* options;
  const void* vtable; /* graft_layer_vtable*, graft_loss_vtable*, ... by kind */
  uint32_t flags;     /* GRAFT_ENTRY_* */
} graft_plugin_entry;

/* The plugin ships CUDA kernels for its vtable functions. */
#define GRAFT_ENTRY_HAS_CUDA 1u
/* A layer whose shard() accepts GRAFT_SHARD_COLUMN / GRAFT_SHARD_ROW (strategy.h). */
#define GRAFT_ENTRY_SHARD_COLUMN 2u
#define GRAFT_ENTRY_SHARD_ROW 4u
/* An activation that maps each element on its own, so it runs on any shard of its input. On an
 * optimizer (SDK 1.2): it updates each element from that element's parameter, gradient and
 * state alone, so the host may hand step() any 1-D slice of a parameter ([parallel] zero). */
#define GRAFT_ENTRY_ELEMENTWISE 8u
/* A layer whose training forward mixes the rows of its batch (batch statistics, as batch_norm):
 * computed on part of a batch (a data-parallel shard, a micro-batch) it gives another result. */
#define GRAFT_ENTRY_BATCH_STATISTICS 16u
/* A layer whose shard() accepts GRAFT_SHARD_PART (strategy.h): element-wise over its input's
 * last axis, so it runs on one tensor-parallel part of it (dropout between Megatron's linears).
 * A host that predates it never asks. */
#define GRAFT_ENTRY_SHARD_PART 32u
/* A layer whose backward has read every element of y it needs before it writes any element of
 * dx, and reads no element of y after: the host may then hand it a dx in y's own memory (the
 * same data pointer) when the input has no more elements per sample than the output, and so
 * keep one buffer where it would keep two. x, dy and the workspace are never in that memory.
 * A host that predates it gives dx memory of its own. */
#define GRAFT_ENTRY_DX_OVER_OUTPUT 64u
/* A layer whose shard() accepts GRAFT_SHARD_PAIR (strategy.h, SDK 1.3): a whole Megatron pair
 * in one layer (attention split by heads). */
#define GRAFT_ENTRY_SHARD_PAIR 128u

typedef struct graft_plugin_info {
  size_t struct_size;
  uint32_t abi_major;
  uint32_t abi_minor;
  const char* library_name;
  const char* library_version;
  const char* build_info; /* compiler, C++ standard, CUDA version or "cuda none" */
  size_t n_entries;
  const graft_plugin_entry* entries;
} graft_plugin_info;

struct graft_host_api;
/* The one exported symbol. Called once per library, after load; the result lives as long as
 * the library (which is never unloaded). */
typedef const graft_plugin_info* (*graft_get_plugin_info_fn)(const struct graft_host_api* host);

#ifdef __cplusplus
}
#endif

#endif
