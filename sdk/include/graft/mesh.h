/* The device mesh (SDK 1.2): the job's ranks laid out on three axes, data x pipeline x tensor,
 * as [parallel] data / pipeline / tensor / order say. The host builds it before any strategy
 * exists, with one communicator per axis made by split (Megatron's parallel_state groups,
 * without their global state), and lends it to the strategy in graft_world::mesh. A strategy
 * that composes axes (the `mesh` plugin) drives each axis on its own communicator; one written
 * for a single axis can read its place here and ignore the rest. */
#ifndef GRAFT_MESH_H
#define GRAFT_MESH_H

#include "graft/comm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum graft_axis {
  GRAFT_AXIS_DATA = 0,     /* replicas: each reads its own rows of a batch */
  GRAFT_AXIS_PIPELINE = 1, /* stages: consecutive top-level layers */
  GRAFT_AXIS_TENSOR = 2    /* parts of each Megatron pair */
} graft_axis;

#define GRAFT_MESH_AXES 3

typedef struct graft_mesh {
  size_t struct_size;
  int32_t degree[GRAFT_MESH_AXES]; /* by graft_axis; their product is the world size */
  int32_t coord[GRAFT_MESH_AXES];  /* this rank's place on each axis, 0 .. degree - 1 */
  /* The axes from the fastest-varying rank to the slowest: [parallel] order, by default
   * tensor, data, pipeline (Megatron's), so a tensor group is consecutive ranks on one node.
   * rank = sum over k of coord[order[k]] * (product of degree[order[j]] for j < k). */
  int32_t order[GRAFT_MESH_AXES];
  int32_t zero; /* [parallel] zero: 0 none, 1 optimizer state, 2 + gradients, 3 + parameters */
  /* The ranks that differ from this one only on axis a, ranked by their coordinate there (a
   * degree of 1: a communicator of this rank alone). NULL when the world is only being planned
   * (`graft validate --world N`); then a strategy must not communicate. They use the world's
   * graft_comm_api and the watchdog names them "data group", "pipeline group", "tensor group". */
  graft_comm* axis_comm[GRAFT_MESH_AXES];
} graft_mesh;

#ifdef __cplusplus
}
#endif

#endif
