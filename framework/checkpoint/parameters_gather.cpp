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

// The layouts this gather understands: parts over the whole world, or one stage per rank.
void check_layout(const ModelSettings& s, int32_t world) {
  if (s.shards > 1 && s.shards != world)
    throw Failure("gathering whole parameters: the plan splits layers into " +
                  std::to_string(s.shards) + " parts on a world of " + std::to_string(world) +
                  " ranks; only parts over the whole world are supported");
  if (s.stages > 1 && s.stages != world)
    throw Failure("gathering whole parameters: the plan has " + std::to_string(s.stages) +
                  " stages on a world of " + std::to_string(world) +
                  " ranks; only one stage per rank is supported");
  if (s.shards > 1 && s.stages > 1)
    throw Failure(
        "gathering whole parameters: tensor parts and pipeline stages together are "
        "not supported");
}

}  // namespace

std::vector<int64_t> whole_dims(const Model& model, const ParameterInfo& p) {
  const graft_shape whole = whole_shape(p.shape, part_axis(p), model.settings().shards);
  return {whole.dims, whole.dims + whole.ndim};
}

std::vector<WholeTensor> gather_whole_parameters(Model& model, Communicator* comm,
                                                 bool with_optimizer_state) {
  const ModelSettings& settings = model.settings();
  const int32_t world = comm ? comm->size() : 1;
  check_layout(settings, world);
  const auto& states = model.optimizer_state_names();
  const size_t sources = with_optimizer_state ? states.size() + 1 : 1;
  std::vector<WholeTensor> out;
  std::vector<float> gathered;  // the world's parts side by side, reused
  std::vector<float> on_host;   // a GPU model's buffer, copied
  for (size_t source = 0; source < sources; ++source) {
    float* base = source == 0 ? model.parameter_data() : model.state_data(source - 1);
    if (!model.on_cpu()) {
      on_host.resize(model.parameter_count());
      model.copy_to_host(base, on_host.data(), on_host.size());
      base = on_host.data();
    }
    for (const ParameterInfo& p : model.parameters()) {
      WholeTensor w;
      w.name = source == 0 ? p.name : "optimizer." + p.name + "." + states[source - 1];
      w.shape = whole_dims(model, p);
      const float* local = base + p.offset;
      const int axis = part_axis(p);
      if (axis >= 0 && world > 1) {
        const int64_t n = static_cast<int64_t>(p.numel);
        gathered.resize(p.numel * size_t(world));
        int64_t in_shape = n, out_shape = n * world;
        DLTensor in = float_view(const_cast<float*>(local), &in_shape);
        DLTensor all = float_view(gathered.data(), &out_shape);
        comm->all_gather(in, all, "gathering whole parameters");
        w.values.resize(gathered.size());
        for (int32_t r = 0; r < world; ++r)
          copy_part_into_whole(gathered.data() + size_t(r) * p.numel, w.values.data(), p.shape,
                               axis, r, world);
      } else {
        w.values.assign(local, local + p.numel);
        if (settings.stages > 1 && world > 1) {
          // Only the stage's own rank updates its layers: every other copy is stale.
          int64_t shape = static_cast<int64_t>(p.numel);
          DLTensor t = float_view(w.values.data(), &shape);
          comm->broadcast(t, model.layer_stage(p.layer), "gathering a pipeline stage's parameters");
        }
      }
      out.push_back(std::move(w));
    }
  }
  return out;
}

void keep_own_parts(Model& model, const WholeLookup& whole) {
  const ModelSettings& settings = model.settings();
  const auto& states = model.optimizer_state_names();
  std::vector<float> on_host;  // a GPU model's buffer, assembled here and copied up whole
  for (size_t source = 0; source <= states.size(); ++source) {
    float* const model_base = source == 0 ? model.parameter_data() : model.state_data(source - 1);
    float* base = model_base;
    if (!model.on_cpu()) {
      on_host.assign(model.parameter_count(), 0.0f);
      base = on_host.data();
    }
    for (const ParameterInfo& p : model.parameters()) {
      const std::string name =
          source == 0 ? p.name : "optimizer." + p.name + "." + states[source - 1];
      const float* values = whole(name, whole_dims(model, p));
      const int axis = part_axis(p);
      if (axis >= 0)
        copy_part_from_whole(values, base + p.offset, p.shape, axis, settings.shard_index,
                             settings.shards);
      else
        std::memcpy(base + p.offset, values, p.numel * sizeof(float));
    }
    if (base != model_base) model.copy_from_host(base, model_base, on_host.size());
  }
}

}  // namespace graft::runtime
