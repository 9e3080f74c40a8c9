// The training-step primitives strategies call (forward, loss, backward, zero_grad,
// optimizer_step) and their C table. They only view the buffers planned in model.cpp.
#include <cmath>
#include <cstring>
#include <functional>
#include <vector>

#include "device/cpu/cpu_primitives.hpp"
#include "model/model.hpp"
#include "model/model_parts.hpp"

namespace graft::runtime {

namespace {
const auto& who = model_who;
}  // namespace

const DLTensor* Model::forward(const graft_exec_ctx& ctx, int64_t begin, int64_t end,
                               const DLTensor& x) {
  Slot& slot = slot_at(ctx.slot);
  const int64_t rows = x.ndim ? x.shape[0] : 0;
  if (rows > settings_.max_batch)
    throw Failure("forward: " + std::to_string(rows) + " rows exceed the planned batch of " +
                  std::to_string(settings_.max_batch));
  graft_exec_ctx layer_ctx = ctx;
  const DLTensor* input = &x;
  for (int64_t i = begin; i < end; ++i) input = forward_layer(slot, *layers_[i], layer_ctx, rows, input);
  return input;
}

const DLTensor* Model::forward_layer(Slot& slot, Layer& layer, graft_exec_ctx& ctx, int64_t rows,
                                     const DLTensor* input) {
  const size_t f = layer.flat;
  slot.inputs[f] = TensorView(input->data, input->device, rows, layer.in);
  slot.inputs[f].get()->byte_offset = input->byte_offset;
  slot.output_views[f] = TensorView(slot.outputs[f].data(), settings_.device, rows, layer.out);
  DLTensor* y = slot.output_views[f].get();
  graft_status* st;
  if (layer.is_residual) {
    // y = x + f(x): f's layers in sequence, then the skip path added.
    const DLTensor* inner = slot.inputs[f].get();
    for (Layer* child : layer.inner) inner = forward_layer(slot, *child, ctx, rows, inner);
    ctx.layer_index = layer.index;
    st = host_api()->copy(&ctx, inner, y);
    if (!st) st = host_api()->axpby(&ctx, 1.0f, slot.inputs[f].get(), 1.0f, y);
    if (st) throw_if_failed(st, layer.who + " forward");
    return y;
  }
  ctx.layer_index = layer.index;
  if (layer.is_activation) {
    st = layer.activation_vtable->forward(layer.self, &ctx, slot.inputs[f].get(), y);
  } else {
    graft_shape ws{1, {layer.workspace_per_sample}};
    slot.workspace_views[f] = TensorView(slot.workspace(layer), settings_.device, rows, ws);
    st = layer.layer_vtable->forward(layer.self, &ctx, layer.param_ptrs.data(), slot.inputs[f].get(),
                                     y, layer.workspace_per_sample ? slot.workspace_views[f].get() : nullptr);
  }
  if (st) throw_if_failed(st, layer.who + " forward");  // the message only on failure: no allocation
  return y;
}

std::string Model::non_finite_report(const graft_exec_ctx& ctx, int64_t rows) const {
  const Slot& slot = slot_at(ctx.slot);
  // In the order forward ran them: a block's inner layers, then the block's addition.
  std::vector<const Layer*> order;
  std::function<void(const std::vector<Layer*>&)> visit = [&](const std::vector<Layer*>& layers) {
    for (const Layer* layer : layers) {
      if (layer->is_residual) visit(layer->inner);
      order.push_back(layer);
    }
  };
  visit(layers_);
  std::vector<float> on_host;  // a GPU's outputs, copied (only on this failure path)
  for (const Layer* layer : order) {
    const float* out = slot.outputs[layer->flat].data();
    const int64_t n = rows * graft_shape_numel(&layer->out);
    if (settings_.device.device_type != kDLCPU) {
      on_host.resize(size_t(n));
      copy_to_host(out, on_host.data(), size_t(n));
      out = on_host.data();
    }
    for (int64_t k = 0; k < n; ++k)
      if (!std::isfinite(out[k]))
        return "the output of " + layer->who + " was the first to go non-finite";
  }
  return "every layer's output is finite, so the loss itself overflowed";
}

const DLTensor* Model::loss(const graft_exec_ctx& ctx, const DLTensor& prediction,
                            const DLTensor& target, graft_step_result& result, bool want_gradient) {
  const auto& vt = loss_choice_.record->vtable<graft_loss_vtable>();
  double loss_sum = 0.0;
  double metric_sums[GRAFT_MAX_METRICS] = {};
  if (graft_status* st = vt.forward(loss_, &ctx, &prediction, &target, &loss_sum, metric_sums))
    throw_if_failed(st, who(loss_choice_) + " forward");
  const int64_t rows = prediction.shape[0];
  if (!std::isfinite(loss_sum))
    throw Failure("step " + std::to_string(ctx.step) + ": the loss is " +
                  (std::isnan(loss_sum) ? "NaN" : "infinite") + "; " + non_finite_report(ctx, rows) +
                  ". Training stopped; checkpoints written before this step are intact. Lower "
                  "optimizer.lr, set run.clip_grad_norm, or check the data for bad values");
  result.loss_sum += loss_sum;
  for (size_t m = 0; m < metric_names_.size(); ++m) result.metric_sums[m] += metric_sums[m];
  result.rows += rows;
  if (!want_gradient) return nullptr;
  Slot& slot = slot_at(ctx.slot);
  graft_shape out_shape = layers_.back()->out;
  slot.dprediction_view = TensorView(slot.dprediction.data(), settings_.device, rows, out_shape);
  const float scale = 1.0f / float(ctx.global_batch > 0 ? ctx.global_batch : rows);
  if (graft_status* st = vt.backward(loss_, &ctx, &prediction, &target, scale, slot.dprediction_view.get()))
    throw_if_failed(st, who(loss_choice_) + " backward");
  return slot.dprediction_view.get();
}

const DLTensor* Model::backward(const graft_exec_ctx& ctx, int64_t begin, int64_t end,
                                const DLTensor& dy, void (*on_layer_done)(void*, int64_t),
                                void* user) {
  Slot& slot = slot_at(ctx.slot);
  const int64_t rows = dy.shape[0];
  graft_exec_ctx layer_ctx = ctx;
  const DLTensor* grad = &dy;
  for (int64_t i = end - 1; i >= begin; --i) {
    grad = backward_layer(slot, *layers_[i], layer_ctx, rows, grad, /*want_dx=*/i > 0);
    if (on_layer_done) on_layer_done(user, i);
  }
  return grad;
}

// The gradient of the layer's input (NULL when !want_dx); parameter gradients accumulate.
DLTensor* Model::backward_layer(Slot& slot, Layer& layer, graft_exec_ctx& ctx, int64_t rows,
                                const DLTensor* dy, bool want_dx) {
  const size_t f = layer.flat;
  if (layer.is_residual) {
    // dx = dy (the skip path) + f's dx. The first inner layer's dx buffer is only read here,
    // so dy is added into it in place.
    const DLTensor* grad = dy;
    DLTensor* dx = nullptr;
    for (size_t j = layer.inner.size(); j-- > 0;) {
      dx = backward_layer(slot, *layer.inner[j], ctx, rows, grad, j > 0 || want_dx);
      grad = dx;
    }
    if (!want_dx) return nullptr;
    ctx.layer_index = layer.index;
    if (graft_status* st = host_api()->axpby(&ctx, 1.0f, dy, 1.0f, dx))
      throw_if_failed(st, layer.who + " backward");
    return dx;
  }
  DLTensor* dx = nullptr;
  if (want_dx) {
    if (!slot.dx_memory[f])  // model.cpp plans none for the layer reading the input
      throw Failure(layer.who + " backward: the gradient of the model's input was asked for, "
                    "but no buffer is planned for it");
    slot.input_grad_views[f] = TensorView(slot.dx_memory[f], settings_.device, rows, layer.in);
    dx = slot.input_grad_views[f].get();
  }
  ctx.layer_index = layer.index;
  graft_status* st;
  if (layer.is_activation) {
    st = dx ? layer.activation_vtable->backward(layer.self, &ctx, slot.inputs[f].get(),
                                                slot.output_views[f].get(), dy, dx)
            : nullptr;
  } else {
    st = layer.layer_vtable->backward(layer.self, &ctx, layer.param_ptrs.data(), slot.inputs[f].get(),
                                      slot.output_views[f].get(), dy, dx, layer.grad_ptrs.data(),
                                      layer.workspace_per_sample ? slot.workspace_views[f].get() : nullptr);
  }
  if (st) throw_if_failed(st, layer.who + " backward");
  return dx;
}

void Model::zero_grad() {
  if (settings_.device.device_type == kDLCPU) {
    // On the host's threads, with streaming stores for a large model (cpu_primitives.hpp).
    cpu::zero(grad_buffer_.data(), int64_t(grad_buffer_.size()));
    return;
  }
  TensorView all(grad_buffer_.data(), settings_.device, graft_shape{1, {int64_t(grad_buffer_.size())}});
  if (graft_status* st = host_api()->fill(nullptr, all.get(), 0.0f)) throw_if_failed(st, "zero_grad");
}

void Model::optimizer_step(const graft_exec_ctx& ctx) {
  optimizer_step_layers(ctx, 0, layer_count(), -1.0);
}

void Model::optimizer_step_layers(const graft_exec_ctx& ctx, int64_t begin, int64_t end,
                                  double total_sq_norm) {
  const graft_host_api* host = host_api();
  const auto [first, last] = layer_floats(begin, end, "optimizer_step_layers");
  if (settings_.clip_grad_norm > 0.0 && last > first) {
    // The norm is global: a strategy that holds part of the model passes the all-reduced sum.
    const double squared = total_sq_norm >= 0.0 ? total_sq_norm : grad_sq_norm(begin, end, true);
    const double norm = std::sqrt(squared);
    if (norm > settings_.clip_grad_norm) {  // as torch.nn.utils.clip_grad_norm_
      TensorView grads(grad_buffer_.data() + first, settings_.device,
                       graft_shape{1, {int64_t(last - first)}});
      const float scale = float(settings_.clip_grad_norm / (norm + 1e-6));
      if (graft_status* st = host->axpby(&ctx, scale, grads.get(), 0.0f, grads.get()))
        throw_if_failed(st, "gradient clipping");
    }
  }
  last_lr_ = settings_.schedule.at(optimizer_steps_);
  const auto& vt = optimizer_choice_.record->vtable<graft_optimizer_vtable>();
  for (auto& layer : all_layers_) {
    if (layer->top < begin || layer->top >= end) continue;
    for (size_t k = 0; k < layer->param_indices.size(); ++k) {
      const ParameterInfo& info = params_[layer->param_indices[k]];
      if (info.spec.is_buffer) continue;  // the layer keeps it (running statistics)
      TensorView states[GRAFT_MAX_OPTIMIZER_STATE];
      DLTensor* state_ptrs[GRAFT_MAX_OPTIMIZER_STATE] = {};
      for (size_t s = 0; s < state_buffers_.size(); ++s) {
        states[s] = TensorView(state_buffers_[s].data() + info.offset, settings_.device, info.shape);
        state_ptrs[s] = states[s].get();
      }
      // [optimizer] decay_bias_and_norm = false keeps biases and norm scales from decaying.
      const int32_t decay = settings_.decay_bias_and_norm || !info.spec.is_bias_or_norm ? 1 : 0;
      graft_param_update u{sizeof(graft_param_update), layer->param_views[k].get(),
                           layer->grad_views[k].get(), state_ptrs, float(last_lr_),
                           optimizer_steps_ + 1, decay};
      if (graft_status* st = vt.step(optimizer_, &ctx, &u))
        throw_if_failed(st, who(optimizer_choice_) + " on " + info.name);
    }
  }
  ++optimizer_steps_;
}

// The C table for strategy plugins: each call converts exceptions into statuses.
namespace {
Model* self(graft_model* m) { return reinterpret_cast<Model*>(m); }

template <class F>
graft_status* guarded(F&& f) noexcept {
  try {
    f();
    return nullptr;
  } catch (const UserError& e) {
    return host_api()->make_status(GRAFT_ERR_INVALID_ARGUMENT, e.what());
  } catch (const std::exception& e) {
    return host_api()->make_status(GRAFT_ERR_RUNTIME, e.what());
  }
}

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
graft_status* api_zero_grad(graft_model* m) { return guarded([&] { self(m)->zero_grad(); }); }
graft_status* api_optimizer_step(graft_model* m, const graft_exec_ctx* ctx) {
  return guarded([&] { self(m)->optimizer_step(*ctx); });
}
int32_t api_layer_stage(graft_model* m, int64_t i) { return self(m)->layer_stage(i); }
int32_t api_layer_shard(graft_model* m, int64_t i) { return self(m)->layer_shard(i); }
graft_status* api_gradients(graft_model* m, int64_t b, int64_t e, DLTensor* out) {
  return guarded([&] { self(m)->layer_range_view(true, b, e, *out); });
}
graft_status* api_parameters(graft_model* m, int64_t b, int64_t e, DLTensor* out) {
  return guarded([&] { self(m)->layer_range_view(false, b, e, *out); });
}
graft_status* api_grad_sq_norm(graft_model* m, int64_t b, int64_t e, int32_t count_replicated,
                               double* out) {
  return guarded([&] { *out = self(m)->grad_sq_norm(b, e, count_replicated != 0); });
}
graft_status* api_optimizer_step_layers(graft_model* m, const graft_exec_ctx* ctx, int64_t b,
                                        int64_t e, double total_sq_norm) {
  return guarded([&] { self(m)->optimizer_step_layers(*ctx, b, e, total_sq_norm); });
}
const graft_model_api kModelApi = {sizeof(graft_model_api), api_layer_count, api_forward, api_loss,
                                   api_backward, api_zero_grad, api_optimizer_step,
                                   api_gradients, api_parameters, api_grad_sq_norm,
                                   api_optimizer_step_layers,
                                   api_layer_stage, api_layer_shard};
}  // namespace

const graft_model_api* Model::api() { return &kModelApi; }

int32_t Model::layer_stage(int64_t i) const {
  if (i < 0 || size_t(i) >= settings_.placement.size()) return 0;
  return settings_.placement[size_t(i)].stage;
}
int32_t Model::layer_shard(int64_t i) const {
  if (i < 0 || size_t(i) >= settings_.placement.size()) return GRAFT_SHARD_NONE;
  return settings_.placement[size_t(i)].shard;
}

}  // namespace graft::runtime
