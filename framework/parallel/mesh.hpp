// The device mesh: [parallel] data x pipeline x tensor over the job's ranks, each rank's
// coordinates, and one communicator per axis split from the world (graft/mesh.h). Built once
// per session before the strategy, so that every piece that communicates along an axis (the
// strategy, checkpoint gathers, `graft verify`) uses the same groups.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "comm/communicator.hpp"
#include "graft/mesh.h"

namespace graft::runtime {

struct ParallelConfig;

// The degrees and rank order, resolved against a world size (no -1 left).
struct MeshShape {
  std::array<int32_t, GRAFT_MESH_AXES> degree{1, 1, 1};  // by graft_axis
  // Fastest-varying axis first; default tensor, data, pipeline.
  std::array<int32_t, GRAFT_MESH_AXES> order{GRAFT_AXIS_TENSOR, GRAFT_AXIS_DATA,
                                             GRAFT_AXIS_PIPELINE};
  int32_t zero = 0;

  int32_t size() const { return degree[0] * degree[1] * degree[2]; }
  std::array<int32_t, GRAFT_MESH_AXES> coords_of(int32_t rank) const;
  int32_t rank_of(const std::array<int32_t, GRAFT_MESH_AXES>& coord) const;
  // "data 0, pipeline 1, tensor 1"
  std::string describe(int32_t rank) const;
  // "data 2 x pipeline 2 x tensor 2" (axes of degree 1 left out; "1 rank" when all are).
  std::string summary() const;
  // "tensor,data,pipeline": [parallel] order as it reads in a config.
  std::string order_text() const;
};

// describe(r) for every rank r: the labels the watchdog prints beside rank numbers.
std::vector<std::string> rank_labels(const MeshShape& shape);

const char* axis_name(int axis);  // "data", "pipeline", "tensor"

// The mesh the config asks for on `world` ranks: [parallel] data / pipeline / tensor / zero /
// order when given (one degree may be -1: the world divided by the others), else the one-axis
// mesh of the named strategy (data_parallel: data = world; pipeline: pipeline = world;
// tensor_parallel: tensor = world; any other: data = world). A degree of 0, a product that is
// not the world, a zero level out of range or with no data axis to shard over, or an order
// that is not a permutation of the three axes is a UserError naming the key and the fix.
MeshShape resolve_mesh(const ParallelConfig& parallel, int32_t world);

// The world the config's degrees name on their own (their product, when one is given and none
// is -1), for `graft validate` without --world; 0 when they leave it open.
int32_t mesh_world(const ParallelConfig& parallel);

class Mesh {
 public:
  // Collective over `world` when it is not NULL (three splits, the same on every rank); with
  // NULL (planning one rank of `graft validate --world N`) there are no communicators.
  Mesh(const MeshShape& shape, int32_t rank, Communicator* world);

  const MeshShape& shape() const { return shape_; }
  int32_t rank() const { return rank_; }
  int32_t coord(int axis) const { return c_.coord[axis]; }
  int32_t degree(int axis) const { return shape_.degree[size_t(axis)]; }
  // The group along `axis` (NULL when planning); a degree of 1 gives this rank alone.
  Communicator* axis(int axis) const { return axes_[size_t(axis)]; }
  // What graft_world::mesh points at; its communicators are the ones above.
  const graft_mesh& c_mesh() const { return c_; }
  std::string describe() const { return shape_.describe(rank_); }

 private:
  MeshShape shape_;
  int32_t rank_ = 0;
  std::array<Communicator*, GRAFT_MESH_AXES> axes_{};
  graft_mesh c_{};
};

}  // namespace graft::runtime
