// Planning the step's buffers: where workspaces and input gradients may borrow memory that is
// free at that moment, the size of every buffer for the planned rows, and their allocation.
#include "model/buffer_plan.hpp"

#include <algorithm>
#include <cstdint>

namespace graft::runtime {

BufferPlan::BufferPlan(const std::vector<std::unique_ptr<LayerNode>>& all,
                       const std::vector<LayerNode*>& top, const graft_shape& prediction,
                       const std::vector<size_t>& fixed, const ModelSettings& settings)
    : device_(settings.device),
      rows_(settings.max_batch),
      slots_count_(settings.slots),
      dx_over_outputs_(settings.dx_over_outputs),
      rows_origin_(settings.rows_origin),
      placements_(all.size()) {
  // The layer that reads the model's input (layer 0, or the first inner layer of the blocks
  // that open the model) is never asked for dx (backward's want_dx), so it gets no buffer.
  size_t reads_model_input = 0;
  while (all[reads_model_input]->is_residual) ++reads_model_input;
  for (const auto& layer : all) placements_[layer->flat].held = settings.holds(layer->top);
  place_workspaces(top, true);
  place_input_gradients(top, reads_model_input);
  size_slots(all, reads_model_input, prediction, fixed);
}

// Which top-level layers write dx over their own output (GRAFT_ENTRY_DX_OVER_OUTPUT): by the
// time a layer's backward runs, every later layer's backward, the only readers of its output,
// has run. Not the last layer, whose output is the prediction the loss and the strategies
// read; not inside a residual block, whose backward reads its first inner layer's dx again.
// The pipeline waits for a stage's send of its output before that stage's backward.
void BufferPlan::place_input_gradients(const std::vector<LayerNode*>& top,
                                       size_t reads_model_input) {
  if (!dx_over_outputs_) return;
  for (size_t i = 0; i + 1 < top.size(); ++i) {
    const LayerNode& layer = *top[i];
    if (layer.is_residual || layer.is_activation() || layer.flat == reads_model_input) continue;
    placements_[layer.flat].dx_over_output =
        (layer.choice->record->entry->flags & GRAFT_ENTRY_DX_OVER_OUTPUT) &&
        graft_shape_numel(&layer.in) <= graft_shape_numel(&layer.out);
  }
}

// Where each layer of `list` (the model's, or a block's inner layers) keeps its workspace. A
// SCRATCH_OVER_DY layer borrows the buffer of its output's gradient, where its dy is whenever
// the model computed it: the next layer's dx (a block's dx is its first inner layer's), or the
// loss gradient after the model's last layer. Nothing reads that dy after the layer's
// backward, except the block's own dy, which the block adds to its dx at the end: the last
// inner layer of a block takes the shared scratch instead. So does the last layer of a
// pipeline stage, whose dy arrives from the next stage and whose next layer has no buffers.
void BufferPlan::place_workspaces(const std::vector<LayerNode*>& list, bool top) {
  const auto dx_buffer = [](const LayerNode* l) {
    while (l->is_residual) l = l->inner.front();
    return int64_t(l->flat);
  };
  for (size_t i = 0; i < list.size(); ++i) {
    const LayerNode& layer = *list[i];
    if (!placements_[layer.flat].held) continue;
    if (layer.is_residual) place_workspaces(layer.inner, false);
    if (layer.is_residual || layer.workspace_per_sample == 0) continue;
    Placement& place = placements_[layer.flat];
    const bool last = i + 1 == list.size();
    const bool next_held = last || placements_[list[i + 1]->flat].held;
    if (layer.workspace_use == GRAFT_WORKSPACE_SCRATCH_OVER_DY && (top || !last) && next_held &&
        layer.workspace_per_sample <= graft_shape_numel(&layer.out)) {
      place.workspace = Placement::Workspace::output_gradient;
      place.workspace_over = last ? -1 : dx_buffer(list[i + 1]);
    } else if (layer.workspace_use != GRAFT_WORKSPACE_KEPT) {
      place.workspace = Placement::Workspace::scratch;
    }
  }
}

void BufferPlan::size_slots(const std::vector<std::unique_ptr<LayerNode>>& all,
                            size_t reads_model_input, const graft_shape& prediction,
                            const std::vector<size_t>& fixed_buffers) {
  const size_t rows = static_cast<size_t>(rows_);
  // rows x values per sample, in floats; a batch so large that this wraps is said so.
  const auto floats = [&](const std::string& what, int64_t per_sample) {
    size_t n = 0;
    if (__builtin_mul_overflow(rows, static_cast<size_t>(per_sample), &n) ||
        n > SIZE_MAX / sizeof(float))
      throw UserError(rows_origin_ + ": " + what + " needs " + std::to_string(per_sample) +
                      " floats a row, and " + std::to_string(rows) +
                      " rows of them are more bytes than 64 bits can count; lower it");
    return n;
  };
  Sizes& plan = sizes_;
  for (const auto& layer : all) {
    const Placement& place = placements_[layer->flat];
    if (!place.held) {
      plan.outputs.push_back(0);
      plan.input_grads.push_back(0);
      plan.workspaces.push_back(0);
      plan.call_scratch_at.push_back(0);
      continue;
    }
    plan.outputs.push_back(floats(layer->who, graft_shape_numel(&layer->out)));
    const bool no_dx = layer->is_residual || layer->flat == reads_model_input;
    plan.input_grads.push_back(
        no_dx || place.dx_over_output ? 0 : floats(layer->who, graft_shape_numel(&layer->in)));
    const size_t workspace = floats(layer->who, layer->workspace_per_sample);
    plan.workspaces.push_back(place.workspace == Placement::Workspace::own ? workspace : 0);
    // The shared scratch holds a scratch workspace, then the call's own scratch after it.
    const size_t in_scratch = place.workspace == Placement::Workspace::scratch ? workspace : 0;
    plan.call_scratch_at.push_back(in_scratch);
    plan.scratch =
        std::max(plan.scratch, in_scratch + floats(layer->who, layer->scratch_per_sample));
  }
  plan.dprediction = floats("the loss gradient", graft_shape_numel(&prediction));
  for (const auto& layer : all) {
    const Placement& place = placements_[layer->flat];
    if (place.workspace != Placement::Workspace::output_gradient) continue;
    const size_t over = size_t(place.workspace_over);
    const size_t lent = place.workspace_over < 0           ? plan.dprediction
                        : placements_[over].dx_over_output ? plan.outputs[over]
                                                           : plan.input_grads[over];
    if (lent < rows * size_t(layer->workspace_per_sample))
      throw Failure(layer->who + ": the buffer planned for its workspace is too small");
  }

  // The sums wrap no sooner than the products above, but are checked all the same.
  bool wraps = false;
  const auto add = [&](size_t& sum, size_t more) {
    wraps |= __builtin_add_overflow(sum, more, &sum);
  };
  size_t fixed = 0, per_slot = 0, total = 0;
  for (size_t n : fixed_buffers) add(fixed, n);
  for (const std::vector<size_t>* list : {&plan.outputs, &plan.input_grads, &plan.workspaces})
    for (size_t n : *list) add(per_slot, n);
  add(per_slot, plan.scratch);
  add(per_slot, plan.dprediction);
  wraps |= __builtin_mul_overflow(per_slot, static_cast<size_t>(slots_count_), &total);
  add(total, fixed);
  if (wraps || total > SIZE_MAX / sizeof(float))
    throw UserError(rows_origin_ + ": the model's buffers for " + std::to_string(rows) +
                    " rows in " + std::to_string(slots_count_) +
                    " slot(s) are more bytes than 64 bits can count; lower it");
  fixed_bytes_ = fixed * sizeof(float);
  planned_bytes_ = total * sizeof(float);
  size_t workspace = plan.scratch;
  for (size_t n : plan.workspaces) workspace += n;
  workspace_bytes_ = workspace * size_t(slots_count_) * sizeof(float);
  activation_bytes_ = planned_bytes_ - fixed_bytes_ - workspace_bytes_;
}

void BufferPlan::allocate() {
  if (!slots_.empty()) return;
  const Sizes& plan = sizes_;
  const size_t n_layers = placements_.size();
  for (int32_t s = 0; s < slots_count_; ++s) {
    auto slot = std::make_unique<Slot>();
    for (size_t f = 0; f < n_layers; ++f) {
      slot->outputs.emplace_back(device_, plan.outputs[f]);
      slot->input_grads.emplace_back(device_, plan.input_grads[f]);
      slot->workspaces.emplace_back(device_, plan.workspaces[f]);
    }
    // size_slots gave no input-gradient buffer to the layers never asked for dx, nor to those
    // that write it over their output.
    for (size_t f = 0; f < n_layers; ++f) {
      const bool over_output = placements_[f].dx_over_output;
      const bool no_dx = !over_output && plan.input_grads[f] == 0;
      slot->dx_memory.push_back(no_dx         ? nullptr
                                : over_output ? slot->outputs[f].data()
                                              : slot->input_grads[f].data());
    }
    slot->scratch = Buffer(device_, plan.scratch);
    slot->inputs.resize(n_layers);
    slot->output_views.resize(n_layers);
    slot->input_grad_views.resize(n_layers);
    slot->workspace_views.resize(n_layers);
    slot->dprediction = Buffer(device_, plan.dprediction);
    for (size_t f = 0; f < n_layers; ++f) {
      const Placement& place = placements_[f];
      switch (place.workspace) {
        case Placement::Workspace::scratch:
          slot->workspace_memory.push_back(slot->scratch.data());
          break;
        case Placement::Workspace::output_gradient:
          slot->workspace_memory.push_back(place.workspace_over < 0
                                               ? slot->dprediction.data()
                                               : slot->dx_memory[size_t(place.workspace_over)]);
          break;
        case Placement::Workspace::own:
          slot->workspace_memory.push_back(slot->workspaces[f].data());
          break;
      }
      slot->call_scratch_memory.push_back(f < plan.call_scratch_at.size()
                                              ? slot->scratch.data() + plan.call_scratch_at[f]
                                              : nullptr);
    }
    slots_.push_back(std::move(slot));
  }
}

Slot& BufferPlan::slot(int32_t index) const {
  if (slots_.empty())
    throw Failure(
        "the model's step buffers were planned but never allocated "
        "(ModelSettings::allocate_step_buffers is false)");
  if (index < 0 || size_t(index) >= slots_.size())
    throw Failure("slot " + std::to_string(index) + " is outside the " +
                  std::to_string(slots_.size()) + " planned (ctx.slot)");
  return *slots_[size_t(index)];
}

}  // namespace graft::runtime
