/* Communicators: how the ranks of a job exchange tensors. The host owns them (framework/comm:
 * `local` for a world of one, `mpi` on host memory) and lends a strategy its world's
 * communicator through graft_world. Every call is collective over the communicator except
 * send/recv; `what` names the call in watchdog reports ("gradient bucket 2", "stage 1 -> 2
 * activations") and may be NULL. A call that waits longer than [parallel] timeout_s does not
 * return: the host aborts the job naming the ranks that have not joined. */
#ifndef GRAFT_COMM_H
#define GRAFT_COMM_H

#include "graft/host.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct graft_comm graft_comm;       /* opaque, the host's */
typedef struct graft_request graft_request; /* an operation in flight; wait() frees it */

typedef enum graft_reduce_op { GRAFT_REDUCE_SUM = 0, GRAFT_REDUCE_AVG = 1 } graft_reduce_op;

typedef struct graft_comm_api {
  size_t struct_size;
  int32_t (*rank)(const graft_comm* comm);
  int32_t (*size)(const graft_comm* comm);
  /* In place, float32 tensors; every rank passes the same element count. */
  graft_status* (*all_reduce)(graft_comm* comm, DLTensor* t, int32_t op, const char* what);
  /* Starts an all-reduce and returns at once; the tensor must not be touched until wait(). */
  graft_status* (*all_reduce_start)(graft_comm* comm, DLTensor* t, int32_t op, const char* what,
                                    graft_request** request);
  graft_status* (*wait)(graft_comm* comm, graft_request* request);
  /* Double-precision sums or averages of n values (losses, metric sums, norms), in place. */
  graft_status* (*all_reduce_f64)(graft_comm* comm, double* values, int64_t n, int32_t op,
                                  const char* what);
  graft_status* (*broadcast)(graft_comm* comm, DLTensor* t, int32_t root, const char* what);
  /* out holds size() x in's bytes: rank r's `in` lands in the r-th equal part. */
  graft_status* (*all_gather)(graft_comm* comm, const DLTensor* in, DLTensor* out,
                              const char* what);
  /* in holds size() equal parts; rank r receives the reduction of every rank's part r. */
  graft_status* (*reduce_scatter)(graft_comm* comm, const DLTensor* in, DLTensor* out, int32_t op,
                                  const char* what);
  /* Point to point, matched by (peer, tag) in order. The *_start forms return at once. */
  graft_status* (*send)(graft_comm* comm, const DLTensor* t, int32_t peer, int32_t tag,
                        const char* what);
  graft_status* (*recv)(graft_comm* comm, DLTensor* t, int32_t peer, int32_t tag, const char* what);
  graft_status* (*send_start)(graft_comm* comm, const DLTensor* t, int32_t peer, int32_t tag,
                              const char* what, graft_request** request);
  graft_status* (*recv_start)(graft_comm* comm, DLTensor* t, int32_t peer, int32_t tag,
                              const char* what, graft_request** request);
  graft_status* (*barrier)(graft_comm* comm, const char* what);
  /* Collective: ranks passing the same color form a new communicator, ordered by key.
   * The host owns the result and frees it with its parent. */
  graft_status* (*split)(graft_comm* comm, int32_t color, int32_t key, graft_comm** out);

  /* Added in SDK 1.2, for ZeRO: reduce_scatter and all_gather started and left running, as
   * all_reduce_start is; neither tensor may be touched until wait(). all_gather (either form)
   * may run in place: `in` then is rank r's own part of `out` (in->data == out's data plus r
   * parts), and the other parts arrive around it. */
  graft_status* (*reduce_scatter_start)(graft_comm* comm, const DLTensor* in, DLTensor* out,
                                        int32_t op, const char* what, graft_request** request);
  graft_status* (*all_gather_start)(graft_comm* comm, const DLTensor* in, DLTensor* out,
                                    const char* what, graft_request** request);
} graft_comm_api;

#ifdef __cplusplus
}
#endif

#endif
