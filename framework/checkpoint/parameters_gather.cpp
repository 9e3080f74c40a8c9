// Gathering whole tensors from tensor-parallel parts and pipeline stages, and slicing them
// again. The collectives run tensor by tensor in the model's parameter order, the same on
// every rank, so no rank waits for a tensor another does not send.
#include "checkpoint/parameters_gather.hpp"

#include <cstring>

#include "model/tensor_parts.hpp"
#include "util/errors.hpp"

namespace graft::runtime {

namespace {

int part_axis(const ParameterInfo& p) {
  const int axis = p.spec.shard_axis;
  return axis >= 0 && axis < p.shape.ndim ? axis : -1;
}

DLTensor float_view(float* data, int64_t* shape) {
  DLTensor t{};
  t.data = data;
  t.device = DLDevice{kDLCPU, 0};
  t.ndim = 1;
  t.dtype = DLDataType{kDLFloat, 32, 1};
  t.shape = shape;
  return t;
}

// A group must be the axis the plan says: as many ranks as stages (parts), this rank at its
// own stage (part), so that index s of the group is stage s.
void check_group(const char* axis, Communicator* group, int32_t degree, int32_t index) {
  const int32_t size = group ? group->size() : 1;
  const int32_t rank = group ? group->rank() : 0;
  if (size != degree || rank != index)
    throw Failure(std::string("gathering whole parameters: the plan has ") +
                  std::to_string(degree) + " " + axis + " position(s) with this rank at " +
                  std::to_string(index) + ", but its " + axis + " group has " +
                  std::to_string(size) + " rank(s) with this rank at " + std::to_string(rank));
}

}  // namespace

GatherGroups world_groups(const ModelSettings& s, Communicator* world) {
  if (s.shards > 1 && s.stages > 1)
    throw Failure(
        "gathering whole parameters: a plan with both tensor parts and pipeline stages needs "
        "the mesh's groups (GatherGroups from Mesh::axis), not the world");
  GatherGroups groups;
  if (s.stages > 1) groups.pipeline = world;
  if (s.shards > 1) groups.tensor = world;
  return groups;
}

std::vector<int64_t> whole_dims(const Model& model, const ParameterInfo& p) {
  const graft_shape whole = whole_shape(p.shape, part_axis(p), model.settings().shards);
  return {whole.dims, whole.dims + whole.ndim};
}

std::vector<WholeTensor> gather_whole_parameters(Model& model, Communicator* world,
                                                 bool with_optimizer_state) {
  return gather_whole_parameters(model, world_groups(model.settings(), world),
                                 with_optimizer_state);
}

namespace {
// What ZeRO keeps by part: optimizer state (source s >= 1, state s - 1) at every level, the
// parameters (source 0) at level 3.
bool kept_by_part(const Model& model, size_t source) {
  const ParameterStore& store = model.store();
  return store.zero() && (source > 0 || store.zero_level() >= 3);
}

// This rank's part of unit u of a source kept by part.
float* own_part(Model& model, size_t source, size_t u) {
  ParameterStore& store = model.store();
  return source == 0 ? store.own_parameters(u)
                     : model.state_data(source - 1) + store.zero()->units[u].state;
}

// A source kept by part, every data rank's parts in the padded layout of the parameters (host
// memory): each unit's parts all-gathered over the data group.
std::vector<float> gather_zero_parts(Model& model, size_t source, Communicator* data) {
  const ZeroLayout& z = *model.store().zero();
  if (!data && z.parts > 1)
    throw Failure("gathering ZeRO optimizer state: no data group was given for its " +
                  std::to_string(z.parts) + " parts");
  std::vector<float> full(z.floats, 0.0f), own;
  for (const ZeroUnit& u : z.units) {
    own.resize(u.part);
    model.copy_to_host(own_part(model, source, size_t(&u - z.units.data())), own.data(), u.part);
    int64_t in_shape = int64_t(u.part), out_shape = int64_t(u.part) * z.parts;
    DLTensor in = float_view(own.data(), &in_shape);
    DLTensor all = float_view(full.data() + u.first, &out_shape);
    if (data)
      data->all_gather(in, all, "gathering ZeRO optimizer state");
    else
      std::memcpy(full.data() + u.first, own.data(), u.part * sizeof(float));
  }
  return full;
}
}  // namespace

std::vector<WholeTensor> gather_whole_parameters(Model& model, const GatherGroups& groups,
                                                 bool with_optimizer_state) {
  const ModelSettings& settings = model.settings();
  check_group("pipeline", groups.pipeline, settings.stages, settings.stage_index);
  check_group("tensor", groups.tensor, settings.shards, settings.shard_index);
  const int32_t parts = settings.shards;
  const auto& states = model.optimizer_state_names();
  const size_t sources = with_optimizer_state ? states.size() + 1 : 1;
  std::vector<WholeTensor> out;
  std::vector<float> gathered;    // the group's parts side by side, reused
  std::vector<float> on_host;     // a GPU model's buffer, copied
  std::vector<float> zero_state;  // ZeRO: one state's parts gathered into the padded layout
  for (size_t source = 0; source < sources; ++source) {
    float* base = source == 0 ? model.parameter_data() : model.state_data(source - 1);
    if (kept_by_part(model, source)) {
      zero_state = gather_zero_parts(model, source, groups.data);
      base = zero_state.data();
    } else if (!model.on_cpu()) {
      on_host.resize(model.parameter_count());
      model.copy_to_host(base, on_host.data(), on_host.size());
      base = on_host.data();
    }
    for (const ParameterInfo& p : model.parameters()) {
      WholeTensor w;
      w.name = source == 0 ? p.name : "optimizer." + p.name + "." + states[source - 1];
      w.shape = whole_dims(model, p);
      size_t whole_numel = 1;
      for (int64_t d : w.shape) whole_numel *= size_t(d);
      const int axis = part_axis(p);
      // The ranks of one stage hold its parameters alike, so they all gather its parts or
      // none does; the collectives match tensor by tensor.
      if (!p.held) {
        w.values.assign(whole_numel, 0.0f);
      } else if (axis >= 0 && parts > 1) {
        const int64_t n = static_cast<int64_t>(p.numel);
        gathered.resize(p.numel * size_t(parts));
        int64_t in_shape = n, out_shape = n * parts;
        DLTensor in = float_view(base + p.offset, &in_shape);
        DLTensor all = float_view(gathered.data(), &out_shape);
        groups.tensor->all_gather(in, all, "gathering whole parameters");
        w.values.resize(gathered.size());
        for (int32_t r = 0; r < parts; ++r)
          copy_part_into_whole(gathered.data() + size_t(r) * p.numel, w.values.data(), p.shape,
                               axis, r, parts);
      } else {
        w.values.assign(base + p.offset, base + p.offset + p.numel);
      }
      if (settings.stages > 1) {
        // Only the stage's ranks hold (and update) its layers.
        int64_t shape = static_cast<int64_t>(w.values.size());
        DLTensor t = float_view(w.values.data(), &shape);
        groups.pipeline->broadcast(t, model.layer_stage(p.layer),
                                   "gathering a pipeline stage's parameters");
      }
      out.push_back(std::move(w));
    }
  }
  return out;
}

namespace {
// A checkpoint saves a tied parameter under both names, with one value. Two values mean it
// was saved by a model without the tie, whose two tensors cannot both be kept.
void check_tied(const Model& model, const ParameterInfo& p, const float* values,
                const WholeLookup& whole) {
  const ParameterInfo& root = model.parameters()[size_t(p.tied)];
  const float* first = whole(root.name, whole_dims(model, root));
  if (std::memcmp(first, values, p.numel * sizeof(float)) != 0)
    throw UserError("checkpoint: '" + p.name + "' is tied to '" + root.name +
                    "' (its layer's `tie` in the config), but the checkpoint holds different "
                    "values for the two: it was saved by a model without the tie. Remove the "
                    "tie to resume it, or start the tied model from its own initialisation");
}
}  // namespace

void keep_own_parts(Model& model, const WholeLookup& whole) {
  const ModelSettings& settings = model.settings();
  const auto& states = model.optimizer_state_names();
  const ZeroLayout* zero = model.store().zero();
  std::vector<float> on_host;  // a GPU model's buffer, assembled here and copied up whole
  for (size_t source = 0; source <= states.size(); ++source) {
    float* const model_base = source == 0 ? model.parameter_data() : model.state_data(source - 1);
    float* base = model_base;
    const bool by_part = kept_by_part(model, source);
    if (!model.on_cpu() || by_part) {
      on_host.assign(model.parameter_count(), 0.0f);
      base = on_host.data();
    }
    for (const ParameterInfo& p : model.parameters()) {
      const std::string name =
          source == 0 ? p.name : "optimizer." + p.name + "." + states[source - 1];
      const float* values = whole(name, whole_dims(model, p));
      if (source == 0 && p.tied >= 0) check_tied(model, p, values, whole);
      if (!p.held) continue;  // another stage's: this rank has no storage for it
      const int axis = part_axis(p);
      if (axis >= 0)
        copy_part_from_whole(values, base + p.offset, p.shape, axis, settings.shard_index,
                             settings.shards);
      else
        std::memcpy(base + p.offset, values, p.numel * sizeof(float));
    }
    if (by_part) {  // ZeRO: this rank's parts of the padded layout, kept apart
      for (size_t u = 0; u < zero->units.size(); ++u)
        model.copy_from_host(base + zero->own_first(u), own_part(model, source, u),
                             zero->units[u].part);
    } else if (base != model_base) {
      model.copy_from_host(base, model_base, on_host.size());
    }
  }
}

}  // namespace graft::runtime
