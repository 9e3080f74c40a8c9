// Model assembly: layers (and residual blocks) created in order with their shapes checked,
// parameters initialised, and every buffer planned once. The step itself is in model_step.cpp.
#include "model/model.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <vector>

#include "model/model_parts.hpp"
#include "model/tensor_parts.hpp"

namespace graft::runtime {

namespace {
constexpr uint64_t kParameterStream = 0x5041524d00000000ull;  // "PARM": init streams

const auto& who = model_who;

// The axis a parameter is a tensor-parallel part along, or -1 when it is whole.
int part_axis(const graft_param_spec& spec) {
  return spec.shard_axis >= 0 && spec.shard_axis < spec.shape.ndim ? spec.shard_axis : -1;
}

bool same_shape(const graft_shape& a, const graft_shape& b) {
  if (a.ndim != b.ndim) return false;
  for (int i = 0; i < a.ndim; ++i)
    if (a.dims[i] != b.dims[i]) return false;
  return true;
}
}  // namespace

Model::Model(std::vector<PluginChoice> layer_choices, PluginChoice loss, PluginChoice optimizer,
             const graft_shape& input, const graft_target_info& target, ModelSettings settings)
    : settings_(std::move(settings)), input_(input), loss_choice_(std::move(loss)),
      optimizer_choice_(std::move(optimizer)), target_(target) {
  const graft_host_api* host = host_api();
  if (layer_choices.empty()) throw UserError("[model] has no layers; add [[model.layers]] tables");
  // Kept for the model's life: layers point at their choice.
  layer_choices_ = std::move(layer_choices);
  int32_t next_nested_index = static_cast<int32_t>(layer_choices_.size());
  const graft_shape shape = build_layers(layer_choices_, input, "layers.", -1, 0, layers_,
                                         next_nested_index);
  initialise_parameters();

  // The loss, on the last layer's output.
  const PluginRecord& loss_rec = *loss_choice_.record;
  throw_if_failed(loss_rec.vtable<graft_loss_vtable>().create(host, loss_choice_.options.get(), &shape,
                                                              &target_, &loss_),
                  who(loss_choice_) + " on predictions of shape " + shape_string(shape));
  graft_loss_desc loss_desc{};
  loss_desc.struct_size = sizeof loss_desc;
  throw_if_failed(loss_rec.vtable<graft_loss_vtable>().describe(loss_, &loss_desc), who(loss_choice_));
  for (size_t m = 0; m < loss_desc.n_metrics; ++m) metric_names_.push_back(loss_desc.metric_names[m]);

  // The optimizer and its state.
  const size_t total = param_buffer_.size();
  const auto& opt_vt = optimizer_choice_.record->vtable<graft_optimizer_vtable>();
  throw_if_failed(opt_vt.create(host, optimizer_choice_.options.get(), &optimizer_), who(optimizer_choice_));
  graft_optimizer_desc opt_desc{};
  opt_desc.struct_size = sizeof opt_desc;
  throw_if_failed(opt_vt.describe(optimizer_, &opt_desc), who(optimizer_choice_));
  for (size_t s = 0; s < opt_desc.n_state; ++s) {
    state_names_.push_back(opt_desc.state_names[s]);
    state_buffers_.emplace_back(settings_.device, total);
  }

  // Activation, gradient and workspace buffers for each slot, for every layer of the tree.
  // The layer that reads the model's input (layer 0, or the first inner layer of the blocks
  // that open the model) is never asked for dx (backward's want_dx), so it gets no buffer.
  size_t reads_model_input = 0;
  while (all_layers_[reads_model_input]->is_residual) ++reads_model_input;
  place_workspaces(layers_, true);
  place_input_gradients(reads_model_input);
  plan_slots(reads_model_input, shape);
  if (settings_.allocate_step_buffers) allocate_step_buffers();
}

void Model::plan_slots(size_t reads_model_input, const graft_shape& prediction) {
  const size_t rows = static_cast<size_t>(settings_.max_batch);
  // rows x values per sample, in floats; a batch so large that this wraps is said so.
  const auto floats = [&](const std::string& what, int64_t per_sample) {
    size_t n = 0;
    if (__builtin_mul_overflow(rows, static_cast<size_t>(per_sample), &n) ||
        n > SIZE_MAX / sizeof(float))
      throw UserError(settings_.rows_origin + ": " + what + " needs " +
                      std::to_string(per_sample) + " floats a row, and " + std::to_string(rows) +
                      " rows of them are more bytes than 64 bits can count; lower it");
    return n;
  };
  SlotPlan& plan = slot_plan_;
  for (const auto& layer : all_layers_) {
    plan.outputs.push_back(floats(layer->who, graft_shape_numel(&layer->out)));
    const bool no_dx = layer->is_residual || layer->flat == reads_model_input;
    plan.input_grads.push_back(no_dx || layer->dx_over_output
                                   ? 0
                                   : floats(layer->who, graft_shape_numel(&layer->in)));
    const size_t workspace = floats(layer->who, layer->workspace_per_sample);
    plan.workspaces.push_back(layer->workspace_in == Layer::WorkspaceIn::own ? workspace : 0);
    if (layer->workspace_in == Layer::WorkspaceIn::scratch)
      plan.scratch = std::max(plan.scratch, workspace);
  }
  plan.dprediction = floats("the loss gradient", graft_shape_numel(&prediction));
  for (const auto& layer : all_layers_) {
    if (layer->workspace_in != Layer::WorkspaceIn::output_gradient) continue;
    const size_t over = size_t(layer->workspace_over);
    const size_t lent = layer->workspace_over < 0           ? plan.dprediction
                        : all_layers_[over]->dx_over_output ? plan.outputs[over]
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
  add(fixed, param_buffer_.size());
  add(fixed, grad_buffer_.size());
  for (const Buffer& b : state_buffers_) add(fixed, b.size());
  for (const std::vector<size_t>* list : {&plan.outputs, &plan.input_grads, &plan.workspaces})
    for (size_t n : *list) add(per_slot, n);
  add(per_slot, plan.scratch);
  add(per_slot, plan.dprediction);
  wraps |= __builtin_mul_overflow(per_slot, static_cast<size_t>(settings_.slots), &total);
  add(total, fixed);
  if (wraps || total > SIZE_MAX / sizeof(float))
    throw UserError(settings_.rows_origin + ": the model's buffers for " +
                    std::to_string(rows) + " rows in " + std::to_string(settings_.slots) +
                    " slot(s) are more bytes than 64 bits can count; lower it");
  fixed_bytes_ = fixed * sizeof(float);
  planned_bytes_ = total * sizeof(float);
}

void Model::allocate_step_buffers() {
  if (!slots_.empty()) return;
  const SlotPlan& plan = slot_plan_;
  const size_t n_layers = all_layers_.size();
  for (int32_t s = 0; s < settings_.slots; ++s) {
    auto slot = std::make_unique<Slot>();
    for (const auto& layer : all_layers_) {
      const size_t f = layer->flat;
      slot->outputs.emplace_back(settings_.device, plan.outputs[f]);
      slot->input_grads.emplace_back(settings_.device, plan.input_grads[f]);
      slot->workspaces.emplace_back(settings_.device, plan.workspaces[f]);
    }
    // Where each layer's dx goes (model_parts.hpp); plan_slots gave no input-gradient buffer
    // to the layers never asked for dx, nor to those that write it over their output.
    for (const auto& layer : all_layers_) {
      const size_t f = layer->flat;
      const bool no_dx = !layer->dx_over_output && plan.input_grads[f] == 0;
      slot->dx_memory.push_back(no_dx                   ? nullptr
                                : layer->dx_over_output ? slot->outputs[f].data()
                                                        : slot->input_grads[f].data());
    }
    slot->scratch = Buffer(settings_.device, plan.scratch);
    slot->inputs.resize(n_layers);
    slot->output_views.resize(n_layers);
    slot->input_grad_views.resize(n_layers);
    slot->workspace_views.resize(n_layers);
    slot->dprediction = Buffer(settings_.device, plan.dprediction);
    slots_.push_back(std::move(slot));
  }
}

Model::Slot& Model::slot_at(int32_t index) const {
  if (slots_.empty())
    throw Failure("the model's step buffers were planned but never allocated "
                  "(ModelSettings::allocate_step_buffers is false)");
  if (index < 0 || size_t(index) >= slots_.size())
    throw Failure("slot " + std::to_string(index) + " is outside the " +
                  std::to_string(slots_.size()) + " planned (ctx.slot)");
  return *slots_[size_t(index)];
}

// Which top-level layers write dx over their own output (GRAFT_ENTRY_DX_OVER_OUTPUT): by the
// time a layer's backward runs, every later layer's backward, the only readers of its output,
// has run. Not the last layer, whose output is the prediction the loss and the strategies
// read; not inside a residual block, whose backward reads its first inner layer's dx again.
// The pipeline waits for a stage's send of its output before that stage's backward.
void Model::place_input_gradients(size_t reads_model_input) {
  if (!settings_.dx_over_outputs) return;
  for (size_t i = 0; i + 1 < layers_.size(); ++i) {
    Layer& layer = *layers_[i];
    if (layer.is_residual || layer.is_activation || layer.flat == reads_model_input) continue;
    layer.dx_over_output = (layer.choice->record->entry->flags & GRAFT_ENTRY_DX_OVER_OUTPUT) &&
                           graft_shape_numel(&layer.in) <= graft_shape_numel(&layer.out);
  }
}

// Where each layer of `list` (the model's, or a block's inner layers) keeps its workspace
// (model_parts.hpp). A SCRATCH_OVER_DY layer borrows the buffer of its output's gradient,
// where its dy is whenever the model computed it: the next layer's dx (a block's dx is its
// first inner layer's), or the loss gradient after the model's last layer. Nothing reads
// that dy after the layer's backward, except the block's own dy, which the block adds to
// its dx at the end: the last inner layer of a block takes the shared scratch instead.
void Model::place_workspaces(const std::vector<Layer*>& list, bool top) {
  const auto dx_buffer = [](const Layer* l) {
    while (l->is_residual) l = l->inner.front();
    return int64_t(l->flat);
  };
  for (size_t i = 0; i < list.size(); ++i) {
    Layer& layer = *list[i];
    if (layer.is_residual) place_workspaces(layer.inner, false);
    if (layer.is_residual || layer.workspace_per_sample == 0) continue;
    const bool last = i + 1 == list.size();
    if (layer.workspace_use == GRAFT_WORKSPACE_SCRATCH_OVER_DY && (top || !last) &&
        layer.workspace_per_sample <= graft_shape_numel(&layer.out)) {
      layer.workspace_in = Layer::WorkspaceIn::output_gradient;
      layer.workspace_over = last ? -1 : dx_buffer(list[i + 1]);
    } else if (layer.workspace_use != GRAFT_WORKSPACE_KEPT) {
      layer.workspace_in = Layer::WorkspaceIn::scratch;
    }
  }
}

// A residual block is structure (y = x + f(x) over layers the config lists), not computation a
// plugin could own: it needs the model's buffers and its backward walks the inner layers, so
// it lives here. Its inner layers are ordinary plugins with ordinary buffers.
graft_shape Model::build_layers(std::vector<PluginChoice>& choices, graft_shape shape,
                                const std::string& prefix, int64_t top, int depth,
                                std::vector<Layer*>& out, int32_t& next_nested_index) {
  // Tensor parallelism: after a COLUMN layer, `shape` is this rank's part of the last axis
  // until a ROW layer takes it back; only element-wise activations may run in between.
  bool sharded = false;
  for (size_t i = 0; i < choices.size(); ++i) {
    PluginChoice& choice = choices[i];
    const int32_t mode = depth == 0 ? layer_shard(static_cast<int64_t>(i)) : GRAFT_SHARD_NONE;
    auto owned = std::make_unique<Layer>();
    Layer& layer = *owned;
    layer.choice = &choice;
    layer.depth = depth;
    layer.top = depth == 0 ? static_cast<int64_t>(i) : top;
    layer.index = depth == 0 ? static_cast<int32_t>(i) : next_nested_index++;
    layer.flat = all_layers_.size();
    layer.in = shape;
    all_layers_.push_back(std::move(owned));
    out.push_back(&layer);
    const std::string path = prefix + std::to_string(i) + ".";
    if (choice.residual) {
      layer.is_residual = true;
      layer.type = "residual";
      layer.who = choice.section + " (residual block)";
      check_shard_order(layer, mode, sharded);
      if (choice.inner.empty())
        throw UserError(layer.who + " has no inner layers; add [[model.layers.layers]] tables "
                        "after it (its f in y = x + f(x))");
      graft_shape end = build_layers(choice.inner, shape, path + "layers.", layer.top, depth + 1,
                                     layer.inner, next_nested_index);
      if (!same_shape(end, shape))
        throw UserError(layer.who + ": its inner layers end with shape " + shape_string(end) +
                        " but the block's input is " + shape_string(shape) +
                        "; a residual block adds its input to the result, so the last inner "
                        "layer must give back the input shape (e.g. units = " +
                        std::to_string(graft_shape_numel(&shape)) + " for a linear)");
      layer.out = shape;
    } else {
      if (!choice.record)
        throw Failure(choice.section + ": a layer choice with neither a plugin nor residual");
      layer.type = choice.record->name;
      layer.who = who(choice);
      check_shard_order(layer, mode, sharded);
      create_plugin_layer(layer, shape, mode);
      const graft_activation_vtable* act = layer.activation_vtable;
      if (sharded && act && act->flags && !(act->flags(layer.self) & GRAFT_ACTIVATION_ELEMENTWISE))
        throw Failure(layer.who + ": its input is a tensor-parallel part, but it is not "
                      "element-wise (the [parallel] strategy's plan is invalid)");
      if (mode == GRAFT_SHARD_COLUMN) sharded = true;
      if (mode == GRAFT_SHARD_ROW) sharded = false;
      for (size_t p : layer.param_indices) {
        params_[p].name = path + params_[p].name;
        params_[p].layer = layer.top;
      }
    }
    if (graft_shape_numel(&layer.out) <= 0)
      throw UserError(layer.who + ": output shape " + shape_string(layer.out) +
                      " is empty for input " + shape_string(shape));
    shape = layer.out;
  }
  if (depth == 0 && sharded)
    throw Failure(out.back()->who + ": its output is still a tensor-parallel part, but the loss "
                  "needs the whole prediction (the [parallel] strategy's plan is invalid)");
  return shape;
}

// Between a COLUMN and a ROW layer only element-wise activations (which run on any part)
// and PART layers may stand; a residual block or an activation is never sharded itself.
void Model::check_shard_order(const Layer& layer, int32_t mode, bool sharded) const {
  const PluginRecord* rec = layer.choice->record;
  const bool activation = rec && rec->kind == GRAFT_KIND_ACTIVATION;
  std::string problem;
  if (mode != GRAFT_SHARD_NONE && (activation || layer.is_residual))
    problem = "the plan shards it, but only layers can shard";
  else if (mode == GRAFT_SHARD_PART && !sharded)
    problem = "the plan runs it on a part of its input, but its input is whole";
  else if (mode == GRAFT_SHARD_COLUMN && sharded)
    problem = "the plan splits its output, but its input is already split";
  else if (mode == GRAFT_SHARD_ROW && !sharded)
    problem = "the plan splits its input by rows, but no column-split layer comes before it";
  else if (mode == GRAFT_SHARD_NONE && sharded && !activation)
    problem = "its input is a tensor-parallel part, but it is neither row-split nor an "
              "element-wise activation";
  if (!problem.empty())
    throw Failure(layer.who + ": " + problem + " (the [parallel] strategy's plan is invalid)");
}

// Creates the plugin and records its parameter specs (names without the "layers.i." prefix).
// A sharded layer is created whole and then told its part: a ROW layer is created with the
// whole input (this rank's `input` part times the shards) and then expects the part.
void Model::create_plugin_layer(Layer& layer, const graft_shape& input, int32_t mode) {
  const graft_host_api* host = host_api();
  graft_shape shape = input;
  const PluginRecord& rec = *layer.choice->record;
  if (rec.kind == GRAFT_KIND_ACTIVATION) {
    layer.is_activation = true;
    layer.activation_vtable = &rec.vtable<graft_activation_vtable>();
    throw_if_failed(layer.activation_vtable->create(host, layer.choice->options.get(), &layer.self),
                    layer.who);
    layer.out = shape;
    return;
  }
  layer.layer_vtable = &rec.vtable<graft_layer_vtable>();
  if (mode == GRAFT_SHARD_ROW || mode == GRAFT_SHARD_PART)
    shape = whole_shape(input, input.ndim - 1, settings_.shards);
  throw_if_failed(layer.layer_vtable->create(host, layer.choice->options.get(), &shape, &layer.self),
                  layer.who + " with input shape " + shape_string(shape));
  if (mode != GRAFT_SHARD_NONE) {
    const graft_layer_vtable& vt = *layer.layer_vtable;
    const bool has_shard = vt.struct_size >= offsetof(graft_layer_vtable, shard) + sizeof(vt.shard) &&
                           vt.shard != nullptr;
    if (!has_shard)
      throw Failure(layer.who + ": the plan shards it, but the plugin has no shard()");
    throw_if_failed(vt.shard(layer.self, mode, settings_.shard_index, settings_.shards),
                    layer.who + " split " +
                        (mode == GRAFT_SHARD_COLUMN ? "by columns"
                         : mode == GRAFT_SHARD_ROW  ? "by rows"
                                                    : "element-wise") +
                        " into " + std::to_string(settings_.shards) +
                        " tensor-parallel parts ([parallel] strategy)");
  }
  graft_layer_desc desc{};
  desc.struct_size = sizeof desc;
  throw_if_failed(layer.layer_vtable->describe(layer.self, &desc), layer.who);
  layer.out = desc.output;
  layer.workspace_per_sample = desc.workspace_per_sample;
  const size_t use_end = offsetof(graft_layer_desc, workspace_use) + sizeof(desc.workspace_use);
  if (desc.struct_size >= use_end) layer.workspace_use = desc.workspace_use;
  // The array's stride is the plugin's struct_size, which an older plugin has smaller.
  const size_t stride = desc.n_params ? desc.params[0].struct_size : 0;
  for (size_t p = 0; p < desc.n_params; ++p) {
    const auto* given = reinterpret_cast<const graft_param_spec*>(
        reinterpret_cast<const char*>(desc.params) + p * stride);
    ParameterInfo info;
    info.name = given->name;
    info.shape = given->shape;
    info.numel = static_cast<size_t>(graft_shape_numel(&info.shape));
    info.offset = params_.empty() ? 0 : params_.back().offset + params_.back().numel;
    // Fields a plugin built against an older minor does not have stay zero.
    info.spec = graft_param_spec{};
    info.spec.shard_axis = -1;
    std::memcpy(&info.spec, given, std::min(sizeof(graft_param_spec), stride));
    info.spec.struct_size = sizeof(graft_param_spec);
    info.spec.name = nullptr;  // the plugin's string may not outlive describe()
    layer.param_indices.push_back(params_.size());
    params_.push_back(info);
  }
}

// Parameters, gradients and optimizer state: one contiguous buffer each. Each parameter's
// values come from the stream of (layer index, parameter position), so they depend on the
// seed and the model's structure only.
void Model::initialise_parameters() {
  const graft_host_api* host = host_api();
  const size_t total = params_.empty() ? 0 : params_.back().offset + params_.back().numel;
  param_buffer_ = Buffer(settings_.device, total);
  grad_buffer_ = Buffer(settings_.device, total);
  graft_exec_ctx init_ctx{};
  init_ctx.struct_size = sizeof init_ctx;
  init_ctx.host = host;
  init_ctx.device = settings_.device;
  for (auto& layer : all_layers_) {
    for (size_t k = 0; k < layer->param_indices.size(); ++k) {
      const ParameterInfo& info = params_[layer->param_indices[k]];
      layer->param_views.emplace_back(param_buffer_.data() + info.offset, settings_.device, info.shape);
      layer->grad_views.emplace_back(grad_buffer_.data() + info.offset, settings_.device, info.shape);
      const graft_param_spec& s = info.spec;
      const uint64_t stream = kParameterStream | (uint64_t(layer->index) << 16) | k;
      DLTensor* t = layer->param_views.back().get();
      // A tensor-parallel part is its slice of the whole tensor drawn from the same stream,
      // so its values do not depend on the layout; the whole lives only during the fill.
      const int axis = part_axis(info.spec);
      Buffer whole;
      TensorView whole_view;
      if (axis >= 0) {
        const graft_shape whole_dims = whole_shape(info.shape, axis, settings_.shards);
        whole = Buffer(settings_.device, size_t(graft_shape_numel(&whole_dims)));
        whole_view = TensorView(whole.data(), settings_.device, whole_dims);
        t = whole_view.get();
      }
      const double fan_in = double(std::max<int64_t>(1, s.fan_in));
      const double fan_out = double(std::max<int64_t>(1, s.fan_out));
      graft_status* st = nullptr;
      switch (s.init) {
        case GRAFT_INIT_ZEROS: st = host->fill(&init_ctx, t, 0.0f); break;
        case GRAFT_INIT_ONES: st = host->fill(&init_ctx, t, 1.0f); break;
        case GRAFT_INIT_XAVIER_UNIFORM: {
          float a = float(s.gain * std::sqrt(6.0 / (fan_in + fan_out)));
          st = host->fill_uniform(&init_ctx, t, settings_.seed, stream, 0, -a, a);
          break;
        }
        case GRAFT_INIT_KAIMING_NORMAL:
          st = host->fill_normal(&init_ctx, t, settings_.seed, stream, 0, 0.0f,
                                 float(s.gain * std::sqrt(2.0 / fan_in)));
          break;
        case GRAFT_INIT_KAIMING_UNIFORM: {
          float a = float(s.gain * std::sqrt(3.0 / fan_in));
          st = host->fill_uniform(&init_ctx, t, settings_.seed, stream, 0, -a, a);
          break;
        }
        case GRAFT_INIT_NORMAL: st = host->fill_normal(&init_ctx, t, settings_.seed, stream, 0, 0.0f, s.gain); break;
        case GRAFT_INIT_CONSTANT: st = host->fill(&init_ctx, t, s.gain); break;
        case GRAFT_INIT_UNIFORM: st = host->fill_uniform(&init_ctx, t, settings_.seed, stream, 0, -s.gain, s.gain); break;
        default:
          throw UserError(layer->who + ": parameter '" + info.name + "' asks for unknown init " +
                          std::to_string(s.init));
      }
      throw_if_failed(st, "initialising " + info.name);
      if (axis >= 0 && on_cpu()) {
        copy_part_from_whole(whole.data(), param_buffer_.data() + info.offset, info.shape, axis,
                             settings_.shard_index, settings_.shards);
      } else if (axis >= 0) {  // the slicing is the host's: through host memory, once
        std::vector<float> whole_host(whole.size()), part(info.numel);
        copy_to_host(whole.data(), whole_host.data(), whole.size());
        copy_part_from_whole(whole_host.data(), part.data(), info.shape, axis,
                             settings_.shard_index, settings_.shards);
        copy_from_host(part.data(), param_buffer_.data() + info.offset, info.numel);
      }
    }
    for (auto& v : layer->param_views) layer->param_ptrs.push_back(v.get());
    for (auto& v : layer->grad_views) layer->grad_ptrs.push_back(v.get());
  }
}

Model::~Model() {
  for (auto& layer : all_layers_) {
    if (!layer->self) continue;
    if (layer->is_activation) layer->activation_vtable->destroy(layer->self);
    else layer->layer_vtable->destroy(layer->self);
  }
  if (loss_) loss_choice_.record->vtable<graft_loss_vtable>().destroy(loss_);
  if (optimizer_) optimizer_choice_.record->vtable<graft_optimizer_vtable>().destroy(optimizer_);
}

const std::string& Model::layer_name(int64_t i) const { return layers_.at(i)->type; }
const graft_shape& Model::layer_output(int64_t i) const { return layers_.at(i)->out; }
int64_t Model::layer_parameter_count(int64_t i) const {
  int64_t n = 0;
  for (const ParameterInfo& p : params_)
    if (p.layer == i) n += static_cast<int64_t>(p.numel);
  return n;
}

std::vector<Model::LayerRow> Model::layer_rows() const {
  std::vector<LayerRow> rows;
  for (const auto& layer : all_layers_) {
    int64_t n = 0;
    // A block's parameters are those of the layers after it in pre-order, up to the next
    // layer at its depth or above.
    for (size_t f = layer->flat; f < all_layers_.size(); ++f) {
      if (f > layer->flat && all_layers_[f]->depth <= layer->depth) break;
      for (size_t p : all_layers_[f]->param_indices) n += static_cast<int64_t>(params_[p].numel);
    }
    rows.push_back({layer->depth, layer->type, layer->out, n});
  }
  return rows;
}

}  // namespace graft::runtime
