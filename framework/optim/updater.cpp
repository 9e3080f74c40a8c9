// One optimizer step over a range of layers: clip, schedule, then the plugin on each parameter
// with its gradient and state, in the store's order.
#include "optim/updater.hpp"

#include <algorithm>
#include <cmath>

#include "device/host_api.hpp"

namespace graft::runtime {

Updater::Updater(ParameterStore& store, std::unique_ptr<OptimizerInstance> optimizer,
                 UpdaterSettings settings)
    : store_(store), optimizer_(std::move(optimizer)), settings_(std::move(settings)) {}

void Updater::step_layers(const graft_exec_ctx& ctx, int64_t begin, int64_t end,
                          double total_sq_norm) {
  if (store_.zero())
    throw Failure(
        "optimizer_step_layers: under ZeRO each rank keeps the optimizer state of its "
        "own parts only; the strategy must step by part (step_begin, step_part, "
        "step_end)");
  const auto [first, last] = store_.layer_floats(begin, end, "optimizer_step_layers");
  if (settings_.clip_grad_norm > 0.0 && last > first)
    // The norm is global: a strategy that holds part of the model passes the all-reduced sum.
    clip(ctx, first, last,
         total_sq_norm >= 0.0 ? total_sq_norm : store_.grad_sq_norm(begin, end, true));
  last_lr_ = settings_.schedule.at(steps_);
  const std::vector<ParameterInfo>& params = store_.parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    const ParameterInfo& info = params[i];
    if (info.layer < begin || info.layer >= end) continue;
    if (info.spec.is_buffer) continue;  // the layer keeps it (running statistics)
    if (!info.held) continue;           // another pipeline stage steps it
    if (info.alias) continue;           // stepped as the parameter it is tied to
    TensorView states[GRAFT_MAX_OPTIMIZER_STATE];
    DLTensor* state_ptrs[GRAFT_MAX_OPTIMIZER_STATE] = {};
    for (size_t s = 0; s < store_.state_count(); ++s) {
      states[s] = store_.state_tensor(s, i);
      state_ptrs[s] = states[s].get();
    }
    // [optimizer] decay_bias_and_norm = false keeps biases and norm scales from decaying.
    const int32_t decay = settings_.decay_bias_and_norm || !info.spec.is_bias_or_norm ? 1 : 0;
    graft_param_update u{sizeof(graft_param_update),
                         store_.parameter_tensor(i),
                         store_.gradient_tensor(i),
                         state_ptrs,
                         float(last_lr_),
                         steps_ + 1,
                         decay};
    optimizer_->step(ctx, u, info.name);
  }
  ++steps_;
}

float Updater::clip_factor(double squared_norm) const {
  const double norm = std::sqrt(squared_norm);
  if (settings_.clip_grad_norm <= 0.0 || !(norm > settings_.clip_grad_norm))
    return 1.0f;  // as torch.nn.utils.clip_grad_norm_
  return float(settings_.clip_grad_norm / (norm + 1e-6));
}

void Updater::step_begin(double total_sq_norm) {
  part_clip_ = clip_factor(total_sq_norm);
  last_lr_ = settings_.schedule.at(steps_);
}

void Updater::step_part(const graft_exec_ctx& ctx, size_t unit) {
  const ZeroLayout* z = store_.zero();
  if (!z || unit >= z->units.size())
    throw Failure("step_part: unit " + std::to_string(unit) + " is not a ZeRO unit of this model");
  const size_t first = z->own_first(unit), last = z->own_last(unit);
  if (part_clip_ != 1.0f) {
    TensorView grads(store_.own_gradients(unit), store_.device(),
                     graft_shape{1, {int64_t(last - first)}});
    if (graft_status* st = host_api()->axpby(&ctx, part_clip_, grads.get(), 0.0f, grads.get()))
      throw_if_failed(st, "gradient clipping");
  }
  const std::vector<ParameterInfo>& params = store_.parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    const ParameterInfo& p = params[i];
    if (!p.has_floats() || p.spec.is_buffer) continue;
    const size_t a = std::max(first, p.offset), b = std::min(last, p.offset + p.numel);
    if (a < b)
      step_slice(ctx, i, store_.own_parameters(unit) + (a - first),
                 store_.own_gradients(unit) + (a - first), b - a,
                 z->units[unit].state + (a - first));
  }
}

double Updater::part_sq_norm(const graft_exec_ctx& ctx, size_t unit, bool count_replicated) const {
  const ZeroLayout* z = store_.zero();
  if (!z || unit >= z->units.size())
    throw Failure("zero_part_sq_norm: unit " + std::to_string(unit) +
                  " is not a ZeRO unit of this model");
  const size_t first = z->own_first(unit), last = z->own_last(unit);
  double total = 0.0;
  for (const ParameterInfo& p : store_.parameters()) {
    if (!p.held || p.tied >= 0 || p.spec.is_buffer || !(count_replicated || p.spec.shard_axis >= 0))
      continue;
    const size_t a = std::max(first, p.offset), b = std::min(last, p.offset + p.numel);
    if (a >= b) continue;
    TensorView run(const_cast<ParameterStore&>(store_).own_gradients(unit) + (a - first),
                   store_.device(), graft_shape{1, {int64_t(b - a)}});
    double squared = 0.0;
    if (graft_status* st = host_api()->dot(&ctx, run.get(), run.get(), &squared))
      throw_if_failed(st, "gradient norm");
    total += squared;
  }
  return total;
}

void Updater::step_slice(const graft_exec_ctx& ctx, size_t i, float* param_data, float* grad_data,
                         size_t floats, size_t state) {
  const ParameterInfo& info = store_.parameters()[i];
  const graft_shape flat{1, {int64_t(floats)}};
  TensorView param(param_data, store_.device(), flat);
  TensorView grad(grad_data, store_.device(), flat);
  TensorView states[GRAFT_MAX_OPTIMIZER_STATE];
  DLTensor* state_ptrs[GRAFT_MAX_OPTIMIZER_STATE] = {};
  for (size_t s = 0; s < store_.state_count(); ++s) {
    states[s] = TensorView(store_.state_data(s) + state, store_.device(), flat);
    state_ptrs[s] = states[s].get();
  }
  const int32_t decay = settings_.decay_bias_and_norm || !info.spec.is_bias_or_norm ? 1 : 0;
  graft_param_update u{sizeof(graft_param_update),
                       param.get(),
                       grad.get(),
                       state_ptrs,
                       float(last_lr_),
                       steps_ + 1,
                       decay};
  optimizer_->step(ctx, u, info.name);
}

void Updater::clip(const graft_exec_ctx& ctx, size_t first, size_t last, double squared_norm) {
  const double norm = std::sqrt(squared_norm);
  if (!(norm > settings_.clip_grad_norm)) return;  // as torch.nn.utils.clip_grad_norm_
  TensorView grads(store_.gradient_data() + first, store_.device(),
                   graft_shape{1, {int64_t(last - first)}});
  const float scale = float(settings_.clip_grad_norm / (norm + 1e-6));
  if (graft_status* st = host_api()->axpby(&ctx, scale, grads.get(), 0.0f, grads.get()))
    throw_if_failed(st, "gradient clipping");
}

}  // namespace graft::runtime
