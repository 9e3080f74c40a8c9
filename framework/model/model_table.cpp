// The model's C table (graft_model_api), which strategy plugins call with the model's handle:
// each entry reaches the model, its parameter store or its updater, and returns a status
// instead of throwing across the ABI.
#include "device/host_api.hpp"
#include "model/model.hpp"
#include "util/guarded.hpp"

namespace graft::runtime {

namespace {
Model* self(graft_model* m) { return reinterpret_cast<Model*>(m); }

int64_t api_layer_count(graft_model* m) { return self(m)->layer_count(); }
graft_status* api_forward(graft_model* m, const graft_exec_ctx* ctx, int64_t b, int64_t e,
                          const DLTensor* x, const DLTensor** y) {
  return guarded([&] { *y = self(m)->forward(*ctx, b, e, *x); });
}
graft_status* api_loss(graft_model* m, const graft_exec_ctx* ctx, const DLTensor* pred,
                       const DLTensor* target, graft_step_result* r, const DLTensor** dpred) {
  return guarded([&] {
    const DLTensor* g = self(m)->loss(*ctx, *pred, *target, *r, dpred != nullptr);
    if (dpred) *dpred = g;
  });
}
graft_status* api_backward(graft_model* m, const graft_exec_ctx* ctx, int64_t b, int64_t e,
                           const DLTensor* dy, const DLTensor** dx, void (*done)(void*, int64_t),
                           void* user) {
  return guarded([&] {
    const DLTensor* g = self(m)->backward(*ctx, b, e, *dy, done, user);
    if (dx) *dx = g;
  });
}
graft_status* api_zero_grad(graft_model* m) {
  return guarded([&] { self(m)->zero_grad(); });
}
graft_status* api_optimizer_step(graft_model* m, const graft_exec_ctx* ctx) {
  return guarded([&] { self(m)->optimizer_step(*ctx); });
}
int32_t api_layer_stage(graft_model* m, int64_t i) { return self(m)->layer_stage(i); }
int32_t api_layer_shard(graft_model* m, int64_t i) { return self(m)->layer_shard(i); }
graft_status* api_gradients(graft_model* m, int64_t b, int64_t e, DLTensor* out) {
  return guarded([&] { self(m)->store().layer_range_view(true, b, e, *out); });
}
graft_status* api_parameters(graft_model* m, int64_t b, int64_t e, DLTensor* out) {
  return guarded([&] { self(m)->store().layer_range_view(false, b, e, *out); });
}
graft_status* api_grad_sq_norm(graft_model* m, int64_t b, int64_t e, int32_t count_replicated,
                               double* out) {
  return guarded([&] { *out = self(m)->store().grad_sq_norm(b, e, count_replicated != 0); });
}
graft_status* api_optimizer_step_layers(graft_model* m, const graft_exec_ctx* ctx, int64_t b,
                                        int64_t e, double total_sq_norm) {
  return guarded([&] {
    self(m)->check_ties_summed("optimizer_step_layers");
    self(m)->updater().step_layers(*ctx, b, e, total_sq_norm);
  });
}
int64_t api_zero_unit_count(graft_model* m) {
  const ZeroLayout* z = self(m)->store().zero();
  return z ? int64_t(z->units.size()) : 0;
}
graft_status* api_zero_unit(graft_model* m, int64_t u, graft_zero_unit* out) {
  return guarded([&] {
    const ZeroLayout* z = self(m)->store().zero();
    if (!z || u < 0 || size_t(u) >= z->units.size())
      throw Failure("zero_unit: " + std::to_string(u) + " is not a ZeRO unit of this model");
    if (!out || out->struct_size < sizeof(graft_zero_unit))
      throw Failure("zero_unit: the caller's graft_zero_unit is smaller than this graft's");
    const ZeroUnit& unit = z->units[size_t(u)];
    ParameterStore& store = self(m)->store();
    out->begin = unit.begin;
    out->end = unit.end;
    out->part = int64_t(unit.part);
    out->parts = z->parts;
    out->index = z->index;
    store.layer_range_view(true, unit.begin, unit.end, out->gradients);
    store.layer_range_view(false, unit.begin, unit.end, out->parameters);
    if (size_t(out->gradients.shape[0]) != unit.part * size_t(z->parts))
      throw Failure("zero_unit " + std::to_string(u) + ": its layers hold " +
                    std::to_string(out->gradients.shape[0]) + " floats, not the unit's " +
                    std::to_string(unit.part * size_t(z->parts)));
    // The parts' views share one shape, which lives as long as the layout does.
    out->own_gradients = out->gradients;
    out->own_gradients.data = store.own_gradients(size_t(u));
    out->own_gradients.shape = const_cast<int64_t*>(&z->part_shape(size_t(u)));
    out->own_parameters = out->own_gradients;
    out->own_parameters.data = store.own_parameters(size_t(u));
  });
}
graft_status* api_zero_part_sq_norm(graft_model* m, int64_t u, int32_t count_replicated,
                                    double* out) {
  return guarded([&] {
    graft_exec_ctx ctx{};
    ctx.struct_size = sizeof ctx;
    ctx.host = host_api();
    ctx.device = self(m)->store().device();
    ctx.layer_index = -1;
    *out = self(m)->updater().part_sq_norm(ctx, size_t(u), count_replicated != 0);
  });
}
graft_status* api_step_begin(graft_model* m, const graft_exec_ctx*, double total_sq_norm) {
  return guarded([&] {
    self(m)->check_ties_summed("step_begin");
    self(m)->updater().step_begin(total_sq_norm);
  });
}
graft_status* api_step_part(graft_model* m, const graft_exec_ctx* ctx, int64_t u) {
  return guarded([&] {
    if (u < 0) throw Failure("step_part: unit " + std::to_string(u) + " is negative");
    self(m)->updater().step_part(*ctx, size_t(u));
  });
}
graft_status* api_step_end(graft_model* m) {
  return guarded([&] { self(m)->updater().step_end(); });
}
void api_set_tensor_reduce(graft_model* m, graft_status* (*reduce)(void*, DLTensor*, const char*),
                           void* user) {
  self(m)->set_tensor_reduce(TensorReduce{reduce, user});
}
graft_status* api_tied_gradients(graft_model* m, int32_t unpack, DLTensor* out) {
  return guarded([&] { self(m)->tied_gradients(unpack != 0, *out); });
}
const graft_model_api kModelApi = {sizeof(graft_model_api),
                                   api_layer_count,
                                   api_forward,
                                   api_loss,
                                   api_backward,
                                   api_zero_grad,
                                   api_optimizer_step,
                                   api_gradients,
                                   api_parameters,
                                   api_grad_sq_norm,
                                   api_optimizer_step_layers,
                                   api_layer_stage,
                                   api_layer_shard,
                                   api_zero_unit_count,
                                   api_zero_unit,
                                   api_zero_part_sq_norm,
                                   api_step_begin,
                                   api_step_part,
                                   api_step_end,
                                   api_set_tensor_reduce,
                                   api_tied_gradients};
}  // namespace

const graft_model_api* Model::api() { return &kModelApi; }

}  // namespace graft::runtime
