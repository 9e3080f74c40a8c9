// The model's private pieces shared by its assembly (model.cpp), its training step
// (model_step.cpp), its buffer plan and its survey: one layer of the tree, and how the model
// names and creates a layer's plugin.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "model/model.hpp"
#include "plugin/layer_instance.hpp"

namespace graft::runtime {

// "[[model.layers]] #2 (layer 'linear' from graft_linear.so)", for messages.
inline std::string model_who(const PluginChoice& c) {
  return c.section + " (" + kind_name(c.record->kind) + " '" + c.record->name + "' from " +
         c.record->library.filename().string() + ")";
}

// The plugin object of a layer or activation choice for per-sample `input`, named as the model
// names it; a layer that refuses the input says which shape it was offered.
inline std::unique_ptr<LayerInstance> create_layer(const PluginChoice& c,
                                                   const graft_shape& input) {
  const std::string who = model_who(c);
  const bool activation = c.record->kind == GRAFT_KIND_ACTIVATION;
  return std::make_unique<LayerInstance>(
      *c.record, *c.options.get(), input, who,
      activation ? who : who + " with input shape " + shape_string(input));
}

// A plugin layer or activation, or a residual block (y = x + f(x), f its inner layers).
struct LayerNode {
  const PluginChoice* choice = nullptr;
  std::string type;  // the plugin's name, or "residual"
  bool is_residual = false;
  std::vector<LayerNode*> inner;  // residual: f's layers in order (owned by the model)
  // ctx.layer_index and the parameter-init stream: i for top-level layer i; nested layers are
  // numbered after the top-level ones in pre-order, so top-level numbers never shift.
  int32_t index = 0;
  int64_t top = 0;  // the top-level layer this one is, or is inside
  size_t flat = 0;  // position in the model's pre-order list, which indexes the slot buffers
  int depth = 0;
  std::unique_ptr<LayerInstance> plugin;  // none for a residual block
  graft_shape in{}, out{};
  int64_t workspace_per_sample = 0;
  int32_t workspace_use = GRAFT_WORKSPACE_KEPT;  // the plugin's graft_workspace_use
  int64_t scratch_per_sample = 0;  // memory for each call only, in the slot's shared scratch
  // Its parameters in the store, [first_param, first_param + n_params), and their tensors and
  // gradients as forward and backward take them (NULL when it has none).
  size_t first_param = 0, n_params = 0;
  const DLTensor* const* params = nullptr;
  DLTensor* const* grads = nullptr;
  std::string who;
  // GRAFT_SHARD_PAIR: the model sums its output and dx over the tensor group; a residual block
  // so placed runs inner layers [0, split_from) whole and sums what the rest give.
  int32_t shard = 0;
  size_t split_from = 0;
  std::string sum_output_what, sum_dx_what;  // the watchdog's names of those sums

  bool is_activation() const { return plugin && plugin->is_activation(); }
};

}  // namespace graft::runtime
