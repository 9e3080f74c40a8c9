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

// Every parameter (and, when with_optimizer_state, every optimizer state tensor after them,
// state by state) as the whole tensor, on EVERY rank. Collective over `comm` (NULL: a world of
// one): all ranks of the model's plan call it together. A tensor-parallel part (spec
// shard_axis >= 0) is all-gathered over the world (shards == world size) and re-interleaved
// along its axis; a parameter of pipeline stage s is current only on rank s, so it is
// broadcast from there; a replicated one is taken as this rank holds it.
std::vector<WholeTensor> gather_whole_parameters(Model& model, Communicator* comm,
                                                 bool with_optimizer_state);

// The whole shape of a parameter whose part this rank holds.
std::vector<int64_t> whole_dims(const Model& model, const ParameterInfo& p);

// The inverse, without communication: `whole(name, dims)` returns the whole tensor's values
// (dims: the whole shape the model expects; it throws when the tensor is missing or differs),
// and this rank keeps its part of every parameter and optimizer state tensor.
using WholeLookup =
    std::function<const float*(const std::string& name, const std::vector<int64_t>& dims)>;
void keep_own_parts(Model& model, const WholeLookup& whole);

}  // namespace graft::runtime
