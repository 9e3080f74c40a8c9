// The training-step primitives strategies call: forward over a range of layers, the loss, and
// backward over a range. They only view the buffers planned in buffer_plan.cpp.
#include <cmath>
#include <functional>
#include <vector>

#include "model/buffer_plan.hpp"
#include "model/model.hpp"
#include "model/model_parts.hpp"
#include "plugin/loss_instance.hpp"

namespace graft::runtime {

// A layer of another stage has neither parameters nor buffers here: running it would read
// and write memory that was never allocated.
void Model::check_held(const char* what, int64_t begin, int64_t end) const {
  if (begin < 0 || end < begin || end > layer_count())
    throw Failure(std::string(what) + ": layers [" + std::to_string(begin) + ", " +
                  std::to_string(end) + ") are outside the model's " +
                  std::to_string(layer_count()) + " layers");
  for (int64_t i = begin; i < end; ++i)
    if (!settings_.holds(i))
      throw Failure(std::string(what) + ": " + layers_[size_t(i)]->who + " (layer " +
                    std::to_string(i) + ") belongs to pipeline stage " +
                    std::to_string(layer_stage(i)) + ", but this rank holds stage " +
                    std::to_string(settings_.stage_index) +
                    " only and has no parameters or buffers for it");
}

const DLTensor* Model::forward(const graft_exec_ctx& ctx, int64_t begin, int64_t end,
                               const DLTensor& x) {
  check_held("forward", begin, end);
  Slot& slot = buffers_->slot(ctx.slot);
  const int64_t rows = x.ndim ? x.shape[0] : 0;
  if (rows > settings_.max_batch)
    throw Failure("forward: " + std::to_string(rows) + " rows exceed the planned batch of " +
                  std::to_string(settings_.max_batch));
  graft_exec_ctx layer_ctx = ctx;
  const DLTensor* input = &x;
  for (int64_t i = begin; i < end; ++i)
    input = forward_layer(slot, *layers_[i], layer_ctx, rows, input);
  return input;
}

namespace {
// The layer's call scratch for `rows` rows (graft_exec_ctx.scratch), or NULL when it asks none.
DLTensor* call_scratch(Slot& slot, const LayerNode& layer, int64_t rows) {
  if (!layer.scratch_per_sample) return nullptr;
  slot.scratch_view = TensorView(slot.call_scratch_memory[layer.flat], slot.scratch.device(), rows,
                                 graft_shape{1, {layer.scratch_per_sample}});
  return slot.scratch_view.get();
}

// A residual block placed PAIR whose pair is a COLUMN ... ROW run, whose sums the block does;
// one that ends in a PAIR layer leaves them to that layer.
bool sums_inside(const LayerNode& block) {
  return block.shard == GRAFT_SHARD_PAIR && block.inner.back()->shard != GRAFT_SHARD_PAIR;
}
}  // namespace

const DLTensor* Model::forward_layer(Slot& slot, LayerNode& layer, graft_exec_ctx& ctx,
                                     int64_t rows, const DLTensor* input) {
  const size_t f = layer.flat;
  slot.inputs[f] = TensorView(input->data, input->device, rows, layer.in);
  slot.inputs[f].get()->byte_offset = input->byte_offset;
  slot.output_views[f] = TensorView(slot.outputs[f].data(), settings_.device, rows, layer.out);
  DLTensor* y = slot.output_views[f].get();
  if (layer.is_residual) {
    // y = x + f(x): f's layers in sequence, then the skip path added.
    const DLTensor* inner = slot.inputs[f].get();
    for (LayerNode* child : layer.inner) inner = forward_layer(slot, *child, ctx, rows, inner);
    // A Megatron pair's output is this rank's partial sum (its own buffer, which backward never
    // reads); a PAIR layer ending the block has summed its own.
    if (sums_inside(layer)) reduce_pair(layer, const_cast<DLTensor*>(inner), true);
    ctx.layer_index = layer.index;
    graft_status* st = host_api()->copy(&ctx, inner, y);
    if (!st) st = host_api()->axpby(&ctx, 1.0f, slot.inputs[f].get(), 1.0f, y);
    if (st) throw_if_failed(st, layer.who + " forward");
    return y;
  }
  ctx.layer_index = layer.index;
  graft_shape ws{1, {layer.workspace_per_sample}};
  slot.workspace_views[f] = TensorView(slot.workspace_memory[f], settings_.device, rows, ws);
  ctx.scratch = call_scratch(slot, layer, rows);
  layer.plugin->forward(ctx, layer.params, slot.inputs[f].get(), y,
                        layer.workspace_per_sample ? slot.workspace_views[f].get() : nullptr);
  ctx.scratch = nullptr;
  if (layer.shard == GRAFT_SHARD_PAIR) reduce_pair(layer, y, true);
  return y;
}

std::string Model::non_finite_report(const graft_exec_ctx& ctx, int64_t rows) const {
  const Slot& slot = buffers_->slot(ctx.slot);
  // In the order forward ran them: a block's inner layers, then the block's addition.
  std::vector<const LayerNode*> order;
  std::function<void(const std::vector<LayerNode*>&)> visit =
      [&](const std::vector<LayerNode*>& layers) {
        for (const LayerNode* layer : layers) {
          if (layer->is_residual) visit(layer->inner);
          order.push_back(layer);
        }
      };
  visit(layers_);
  std::vector<float> on_host;  // a GPU's outputs, copied (only on this failure path)
  for (const LayerNode* layer : order) {
    if (!settings_.holds(layer->top)) continue;  // another stage's: no output here
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
  double loss_sum = 0.0;
  double metric_sums[GRAFT_MAX_METRICS] = {};
  loss_->forward(ctx, prediction, target, loss_sum, metric_sums);
  const int64_t rows = prediction.shape[0];
  if (!std::isfinite(loss_sum))
    throw Failure("step " + std::to_string(ctx.step) + ": the loss is " +
                  (std::isnan(loss_sum) ? "NaN" : "infinite") + "; " +
                  non_finite_report(ctx, rows) +
                  ". Training stopped; checkpoints written before this step are intact. Lower "
                  "optimizer.lr, set run.clip_grad_norm, or check the data for bad values");
  result.loss_sum += loss_sum;
  for (size_t m = 0; m < metric_names().size(); ++m) result.metric_sums[m] += metric_sums[m];
  result.rows += rows;
  if (!want_gradient) return nullptr;
  Slot& slot = buffers_->slot(ctx.slot);
  graft_shape out_shape = layers_.back()->out;
  slot.dprediction_view = TensorView(slot.dprediction.data(), settings_.device, rows, out_shape);
  const float scale = 1.0f / float(ctx.global_batch > 0 ? ctx.global_batch : rows);
  loss_->backward(ctx, prediction, target, scale, *slot.dprediction_view.get());
  return slot.dprediction_view.get();
}

const DLTensor* Model::backward(const graft_exec_ctx& ctx, int64_t begin, int64_t end,
                                const DLTensor& dy, void (*on_layer_done)(void*, int64_t),
                                void* user) {
  check_held("backward", begin, end);
  if (!cross_ties_.empty()) ties_summed_ = false;
  Slot& slot = buffers_->slot(ctx.slot);
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
DLTensor* Model::backward_layer(Slot& slot, LayerNode& layer, graft_exec_ctx& ctx, int64_t rows,
                                const DLTensor* dy, bool want_dx) {
  const size_t f = layer.flat;
  if (layer.is_residual) {
    // dx = dy (the skip path) + f's dx. The first inner layer's dx buffer is only read here,
    // so dy is added into it in place.
    const DLTensor* grad = dy;
    DLTensor* dx = nullptr;
    for (size_t j = layer.inner.size(); j-- > 0;) {
      dx = backward_layer(slot, *layer.inner[j], ctx, rows, grad, j > 0 || want_dx);
      // The pair's input gradient is a partial sum: whole before the layers before it run.
      if (sums_inside(layer) && j == layer.split_from && dx) reduce_pair(layer, dx, false);
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
    if (!slot.dx_memory[f])  // buffer_plan.cpp plans none for the layer reading the input
      throw Failure(layer.who +
                    " backward: the gradient of the model's input was asked for, "
                    "but no buffer is planned for it");
    slot.input_grad_views[f] = TensorView(slot.dx_memory[f], settings_.device, rows, layer.in);
    dx = slot.input_grad_views[f].get();
  }
  ctx.layer_index = layer.index;
  ctx.scratch = call_scratch(slot, layer, rows);
  layer.plugin->backward(ctx, layer.params, slot.inputs[f].get(), slot.output_views[f].get(), dy,
                         dx, layer.grads,
                         layer.workspace_per_sample ? slot.workspace_views[f].get() : nullptr);
  ctx.scratch = nullptr;
  if (layer.shard == GRAFT_SHARD_PAIR && dx) reduce_pair(layer, dx, false);
  return dx;
}

}  // namespace graft::runtime
