/* The dataset kind: a reader that serves any set of samples on demand, so data larger than
 * memory trains. read() is called from one background thread at a time. */
#ifndef GRAFT_DATASET_H
#define GRAFT_DATASET_H

#include "graft/loss.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct graft_dataset_args {
  size_t struct_size;
  const char* split;      /* "train" or "test" */
  const char* config_dir; /* relative paths in options resolve against it */
  const char* cache_dir;  /* a folder the reader may write (unpacked archives, indexes) */
  uint64_t seed;
  int32_t rank;
  int32_t world;
} graft_dataset_args;

typedef struct graft_dataset_info {
  size_t struct_size;
  int64_t samples;
  graft_shape input; /* float32 */
  graft_target_info target;
} graft_dataset_info;

typedef struct graft_dataset_vtable {
  size_t struct_size;
  graft_status* (*create)(const graft_host_api* host, const graft_options* options,
                          const graft_dataset_args* args, void** self);
  void (*destroy)(void* self);
  graft_status* (*describe)(void* self, graft_dataset_info* out);
  /* x: (n, input...) float32, y: (n, target...) on the CPU; indices in [0, samples). */
  graft_status* (*read)(void* self, const int64_t* indices, int64_t n, DLTensor* x, DLTensor* y);
  /* Added in ABI 1.3: a dataset of token sequences (text) turns ids into text and text into ids,
   * for graft generate and the samples a text run prints; NULL or absent for other datasets.
   * decode: the UTF-8 text of ids[0..n), at most `capacity` bytes of it written to out, and
   * *length set to the bytes the whole text takes (call again with more room when it is more).
   * encode: the ids of the UTF-8 text[0..length), at most `capacity` of them written to ids,
   * and *count set to how many the whole text gives. */
  graft_status* (*decode)(void* self, const int32_t* ids, int64_t n, char* out, int64_t capacity,
                          int64_t* length);
  graft_status* (*encode)(void* self, const char* text, int64_t length, int32_t* ids,
                          int64_t capacity, int64_t* count);
} graft_dataset_vtable;

#ifdef __cplusplus
}
#endif

#endif
