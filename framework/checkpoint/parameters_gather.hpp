// Whole tensors from any layout: parameters and optimizer state gathered from tensor-parallel
// parts and pipeline stages, and the inverse (each rank keeping its part of whole tensors).
// Checkpoints and `graft verify` use them, so both see the model as `single` would hold it.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "comm/communicator.hpp"
#include "model/model.hpp"

namespace graft::runtime {

struct WholeTensor {
  std::string name;  // "layers.0.weight", or "optimizer.layers.0.weight.<state>"
  std::vector<int64_t> shape;
  std::vector<float> values;
};

// The groups a gather runs over, one per axis of the layout: what Mesh::axis(GRAFT_AXIS_PIPELINE)
// and Mesh::axis(GRAFT_AXIS_TENSOR) give (framework/parallel/mesh.hpp). A rank's index in
// `pipeline` is its stage (ModelSettings::stage_index), in `tensor` its part (shard_index).
// NULL: this rank alone on that axis. The data axis needs none: its replicas hold the same
// values, so each gathers the same whole tensors from its own groups.
struct GatherGroups {
  Communicator* pipeline = nullptr;
  Communicator* tensor = nullptr;
  // Under ZeRO (ParameterStore::zero()) a data rank keeps the optimizer state of its own parts
  // only: they are all-gathered over this group (Mesh::axis(GRAFT_AXIS_DATA)) first.
  Communicator* data = nullptr;
};

// The groups of today's one-axis strategies: the whole world is the pipeline group of a plan
// with stages, or the tensor group of a plan with parts (a plan with both needs a mesh's).
GatherGroups world_groups(const ModelSettings& settings, Communicator* world);

// Every parameter (and, when with_optimizer_state, every optimizer state tensor after them,
// state by state) as the whole tensor, on EVERY rank. Collective over the groups: all ranks of
// the model's plan call it together. A tensor-parallel part (spec shard_axis >= 0) is
// all-gathered over `tensor` and re-interleaved along its axis; a parameter of pipeline stage
// s is held only by the ranks of stage s, so it is broadcast over `pipeline` from index s (the
// others receive into the whole tensor, having no storage for it); a replicated one is taken
// as this rank holds it.
std::vector<WholeTensor> gather_whole_parameters(Model& model, const GatherGroups& groups,
                                                 bool with_optimizer_state);
// The same over world_groups(model.settings(), world) (NULL: a world of one).
std::vector<WholeTensor> gather_whole_parameters(Model& model, Communicator* world,
                                                 bool with_optimizer_state);

// The whole shape of a parameter whose part this rank holds.
std::vector<int64_t> whole_dims(const Model& model, const ParameterInfo& p);

// The inverse, without communication: `whole(name, dims)` returns the whole tensor's values
// (dims: the whole shape the model expects; it throws when the tensor is missing or differs),
// and this rank keeps its part of every parameter and optimizer state tensor it holds. Every
// tensor is looked up, held or not, so that each rank checks the whole checkpoint.
using WholeLookup =
    std::function<const float*(const std::string& name, const std::vector<int64_t>& dims)>;
void keep_own_parts(Model& model, const WholeLookup& whole);

}  // namespace graft::runtime
