// Model assembly: layers (and residual blocks) created in order with their shapes checked,
// their parameters declared to the store, then the loss, the updater and the buffer plan.
// The step itself is in model_step.cpp.
#include "model/model.hpp"

#include <algorithm>
#include <vector>

#include "model/buffer_plan.hpp"
#include "model/model_parts.hpp"
#include "model/model_survey.hpp"
#include "model/tensor_parts.hpp"
#include "plugin/loss_instance.hpp"
#include "plugin/optimizer_instance.hpp"

namespace graft::runtime {

Model::Model(std::vector<PluginChoice> layer_choices, PluginChoice loss, PluginChoice optimizer,
             const graft_shape& input, const graft_target_info& target, ModelSettings settings)
    : settings_(std::move(settings)),
      input_(input),
      store_(settings_.device),
      loss_choice_(std::move(loss)),
      optimizer_choice_(std::move(optimizer)) {
  if (layer_choices.empty()) throw UserError("[model] has no layers; add [[model.layers]] tables");
  // Kept for the model's life: layers point at their choice.
  layer_choices_ = std::move(layer_choices);
  int32_t next_nested_index = static_cast<int32_t>(layer_choices_.size());
  const graft_shape shape =
      build_layers(layer_choices_, input, "layers.", -1, 0, layers_, next_nested_index);
  if (settings_.zero_parts > 1)
    store_.shard_over_data(settings_.zero_parts, settings_.zero_index,
                           size_t(std::max<int64_t>(settings_.zero_unit_floats, 0)),
                           settings_.zero_level);
  store_.allocate(layer_count(), settings_.seed, settings_.shard_index, settings_.shards);
  plan_cross_stage_ties();
  for (auto& layer : all_layers_) {
    if (layer->n_params == 0) continue;
    layer->params = store_.parameter_tensors(layer->first_param);
    layer->grads = store_.gradient_tensors(layer->first_param);
  }

  // The loss, on the last layer's output.
  const std::string loss_who = model_who(loss_choice_);
  loss_ = std::make_unique<LossInstance>(
      *loss_choice_.record, *loss_choice_.options.get(), shape, target, loss_who,
      loss_who + " on predictions of shape " + shape_string(shape));

  // The optimizer, its state beside the parameters, and the rules of the update.
  auto optimizer_instance = std::make_unique<OptimizerInstance>(
      *optimizer_choice_.record, *optimizer_choice_.options.get(), model_who(optimizer_choice_));
  store_.allocate_optimizer_state(optimizer_instance->state_names().size());
  updater_ = std::make_unique<Updater>(
      store_, std::move(optimizer_instance),
      UpdaterSettings{settings_.clip_grad_norm, settings_.decay_bias_and_norm, settings_.schedule});

  // Activation, gradient and workspace buffers for each slot, for every layer of the tree.
  buffers_ =
      std::make_unique<BufferPlan>(all_layers_, layers_, shape, store_.buffer_floats(), settings_);
  if (settings_.allocate_step_buffers) buffers_->allocate();
}

Model::~Model() = default;

// A residual block is structure (y = x + f(x) over layers the config lists), not computation a
// plugin could own: it needs the model's buffers and its backward walks the inner layers, so
// it lives here. Its inner layers are ordinary plugins with ordinary buffers.
graft_shape Model::build_layers(std::vector<PluginChoice>& choices, graft_shape shape,
                                const std::string& prefix, int64_t top, int depth,
                                std::vector<LayerNode*>& out, int32_t& next_nested_index,
                                const std::vector<int32_t>* modes) {
  // Tensor parallelism: after a COLUMN layer, `shape` is this rank's part of the last axis
  // until a ROW layer takes it back; only element-wise activations may run in between.
  bool sharded = false;
  for (size_t i = 0; i < choices.size(); ++i) {
    PluginChoice& choice = choices[i];
    const int32_t mode = depth == 0 ? layer_shard(static_cast<int64_t>(i))
                         : modes    ? (*modes)[i]
                                    : GRAFT_SHARD_NONE;
    auto owned = std::make_unique<LayerNode>();
    LayerNode& layer = *owned;
    layer.choice = &choice;
    layer.depth = depth;
    layer.top = depth == 0 ? static_cast<int64_t>(i) : top;
    layer.index = depth == 0 ? static_cast<int32_t>(i) : next_nested_index++;
    layer.flat = all_layers_.size();
    layer.in = shape;
    layer.shard = mode;
    if (mode == GRAFT_SHARD_PAIR) {
      const std::string at = "[[model.layers]] #" + std::to_string(layer.top);
      layer.sum_output_what = "tensor group: output of " + at;
      layer.sum_dx_what = "tensor group: input gradient of " + at;
    }
    all_layers_.push_back(std::move(owned));
    out.push_back(&layer);
    const std::string path = prefix + std::to_string(i) + ".";
    if (choice.residual) {
      layer.is_residual = true;
      layer.type = "residual";
      layer.who = choice.section + " (residual block)";
      check_shard_order(layer, mode, sharded);
      if (choice.inner.empty())
        throw UserError(layer.who +
                        " has no inner layers; add [[model.layers.layers]] tables "
                        "after it (its f in y = x + f(x))");
      // Placed as a pair: inner layers [0, split_from) run whole, the rest are the pair.
      std::vector<int32_t> inner_modes;
      if (mode == GRAFT_SHARD_PAIR) {
        inner_modes = pair_block_modes(choice.inner, shape);
        if (inner_modes.empty())
          throw Failure(layer.who +
                        ": the plan splits it as a tensor-parallel pair, but its inner layers do "
                        "not end in one (the [parallel] strategy's plan is invalid)");
        while (inner_modes[layer.split_from] == GRAFT_SHARD_NONE) ++layer.split_from;
      }
      graft_shape end =
          build_layers(choice.inner, shape, path + "layers.", layer.top, depth + 1, layer.inner,
                       next_nested_index, inner_modes.empty() ? nullptr : &inner_modes);
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
      layer.who = model_who(choice);
      check_shard_order(layer, mode, sharded);
      create_plugin_layer(layer, shape, mode, path);
      if (sharded && layer.is_activation() && !layer.plugin->elementwise())
        throw Failure(layer.who +
                      ": its input is a tensor-parallel part, but it is not "
                      "element-wise (the [parallel] strategy's plan is invalid)");
      if (mode == GRAFT_SHARD_COLUMN) sharded = true;
      if (mode == GRAFT_SHARD_ROW) sharded = false;
    }
    if (graft_shape_numel(&layer.out) <= 0)
      throw UserError(layer.who + ": output shape " + shape_string(layer.out) +
                      " is empty for input " + shape_string(shape));
    shape = layer.out;
  }
  if (depth == 0 && sharded)
    throw Failure(out.back()->who +
                  ": its output is still a tensor-parallel part, but the loss "
                  "needs the whole prediction (the [parallel] strategy's plan is invalid)");
  return shape;
}

// Between a COLUMN and a ROW layer only element-wise activations (which run on any part)
// and PART layers may stand; a residual block or an activation is never sharded itself.
void Model::check_shard_order(const LayerNode& layer, int32_t mode, bool sharded) const {
  const PluginRecord* rec = layer.choice->record;
  const bool activation = rec && rec->kind == GRAFT_KIND_ACTIVATION;
  std::string problem;
  if (mode != GRAFT_SHARD_NONE && (activation || (layer.is_residual && mode != GRAFT_SHARD_PAIR)))
    problem = "the plan shards it, but only layers can shard";
  else if (mode == GRAFT_SHARD_PAIR && sharded)
    problem = "the plan splits it as a whole pair, but its input is already split";
  else if (mode == GRAFT_SHARD_PART && !sharded)
    problem = "the plan runs it on a part of its input, but its input is whole";
  else if (mode == GRAFT_SHARD_COLUMN && sharded)
    problem = "the plan splits its output, but its input is already split";
  else if (mode == GRAFT_SHARD_ROW && !sharded)
    problem = "the plan splits its input by rows, but no column-split layer comes before it";
  else if (mode == GRAFT_SHARD_NONE && sharded && !activation)
    problem =
        "its input is a tensor-parallel part, but it is neither row-split nor an "
        "element-wise activation";
  if (!problem.empty())
    throw Failure(layer.who + ": " + problem + " (the [parallel] strategy's plan is invalid)");
}

// Creates the plugin and declares its parameters to the store as "<path><name>". A sharded
// layer is created whole and then told its part: a ROW layer is created with the whole input
// (this rank's `input` part times the shards) and then expects the part.
void Model::create_plugin_layer(LayerNode& layer, const graft_shape& input, int32_t mode,
                                const std::string& path) {
  const PluginChoice& choice = *layer.choice;
  graft_shape shape = input;
  if (mode == GRAFT_SHARD_ROW || mode == GRAFT_SHARD_PART)
    shape = whole_shape(input, input.ndim - 1, settings_.shards);
  layer.plugin = create_layer(choice, shape);
  if (mode != GRAFT_SHARD_NONE) {
    if (!LayerInstance::can_shard(*choice.record))
      throw Failure(layer.who + ": the plan shards it, but the plugin has no shard()");
    layer.plugin->shard(mode, settings_.shard_index, settings_.shards,
                        std::string(" split ") +
                            (mode == GRAFT_SHARD_COLUMN ? "by columns"
                             : mode == GRAFT_SHARD_ROW  ? "by rows"
                             : mode == GRAFT_SHARD_PAIR ? "as a whole pair (by heads)"
                                                        : "element-wise") +
                            " into " + std::to_string(settings_.shards) +
                            " tensor-parallel parts ([parallel] strategy)");
  }
  const graft_layer_desc& desc = layer.plugin->describe();
  layer.out = desc.output;
  layer.workspace_per_sample = desc.workspace_per_sample;
  layer.workspace_use = desc.workspace_use;
  layer.scratch_per_sample = desc.scratch_per_sample;
  layer.first_param = store_.parameters().size();
  layer.n_params = desc.n_params;
  const std::vector<int64_t> tied = resolve_ties(layer, desc, path);
  for (size_t k = 0; k < desc.n_params; ++k)
    store_.declare(path + desc.params[k].name, layer.top, desc.params[k], layer.index, k, layer.who,
                   settings_.holds(layer.top), tied[k]);
}

const std::string& Model::layer_name(int64_t i) const { return layers_.at(i)->type; }
const graft_shape& Model::layer_output(int64_t i) const { return layers_.at(i)->out; }
int64_t Model::layer_parameter_count(int64_t i) const {
  int64_t n = 0;
  for (const ParameterInfo& p : parameters())
    if (p.layer == i && !p.alias) n += static_cast<int64_t>(p.numel);
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
      const LayerNode& node = *all_layers_[f];
      for (size_t p = node.first_param; p < node.first_param + node.n_params; ++p)
        if (!parameters()[p].alias) n += static_cast<int64_t>(parameters()[p].numel);
    }
    rows.push_back({layer->depth, layer->type, layer->out, n});
  }
  return rows;
}

int32_t Model::layer_stage(int64_t i) const {
  if (i < 0 || size_t(i) >= settings_.placement.size()) return 0;
  return settings_.placement[size_t(i)].stage;
}
int32_t Model::layer_shard(int64_t i) const {
  if (i < 0 || size_t(i) >= settings_.placement.size()) return GRAFT_SHARD_NONE;
  return settings_.placement[size_t(i)].shard;
}

size_t Model::planned_bytes() const { return buffers_->planned_bytes(); }
size_t Model::planned_fixed_bytes() const { return buffers_->fixed_bytes(); }
Model::MemorySplit Model::planned_memory() const {
  const ParameterStore::Floats floats = store_.floats_by_kind();
  MemorySplit m;
  m.parameters = floats.parameters * sizeof(float);
  m.gradients = floats.gradients * sizeof(float);
  m.optimizer_state = floats.state * sizeof(float);
  m.gather_windows = floats.windows * sizeof(float);
  m.activations = buffers_->activation_bytes();
  m.workspaces = buffers_->workspace_bytes();
  return m;
}
void Model::allocate_step_buffers() { buffers_->allocate(); }
bool Model::step_buffers_allocated() const { return buffers_->allocated(); }
const std::vector<std::string>& Model::metric_names() const { return loss_->metric_names(); }

void Model::set_positions(int64_t first, int64_t capacity) {
  for (const std::unique_ptr<LayerNode>& layer : all_layers_)
    if (layer->plugin) layer->plugin->set_positions(first, capacity);
}

void Model::reduce_pair(const LayerNode& layer, DLTensor* t, bool forward) const {
  if (settings_.shards <= 1) return;
  if (!tensor_reduce_.fn)
    throw Failure(layer.who +
                  ": the plan splits it as a tensor-parallel pair, but the strategy set no "
                  "tensor reduce (graft_model_api's set_tensor_reduce)");
  const std::string& what = forward ? layer.sum_output_what : layer.sum_dx_what;
  throw_if_failed(tensor_reduce_.fn(tensor_reduce_.user, t, what.c_str()), what);
}

}  // namespace graft::runtime
