// One created layer or activation plugin object, the runtime's side of graft_layer_vtable and
// graft_activation_vtable: what an older plugin's table or description lacks gets its default
// here, once, and every failed call becomes an exception naming the plugin.
#pragma once

#include <string>
#include <vector>

#include "graft/graft.h"
#include "plugin/registry.hpp"

namespace graft::runtime {

// Layers and activations share one wrapper: both run in a model's sequence, and an activation
// is a layer without parameters or workspace whose backward is only dx.
class LayerInstance {
 public:
  // Creates the object of `record` (a layer or an activation) for per-sample `input`, which an
  // activation does not take. `who` names it in messages: plugin_who() ("layer 'linear'") when
  // empty, or the model's "[[model.layers]] #2 (layer 'linear' from graft_linear.so)"; a
  // refused create is reported as `created_as` when that is given (the model adds the shape).
  LayerInstance(const PluginRecord& record, const graft_options& options, const graft_shape& input,
                std::string who = "", const std::string& created_as = "");
  ~LayerInstance();
  LayerInstance(const LayerInstance&) = delete;
  LayerInstance& operator=(const LayerInstance&) = delete;

  bool is_activation() const { return activation_ != nullptr; }
  // An activation whose y[i] depends on x[i] only; one without a flags() slot is not.
  bool elementwise() const;
  // Whether `record` is a layer whose table has shard(), the slot tensor parallelism added at
  // the table's end (an older plugin's table stops before it).
  static bool can_shard(const PluginRecord& record);
  // Makes the layer a tensor-parallel part (layer.h), before describe(); a refusal is reported
  // as who() + `as` (" split by columns into 2 tensor-parallel parts ...").
  void shard(int32_t mode, int32_t index, int32_t count, const std::string& as);
  // Generation with a cache (layer.h's set_positions). A plugin without the slot (an older
  // one, or a layer that treats each position alone) and an activation need no telling.
  void set_positions(int64_t first, int64_t capacity);

  // Reads the plugin's description at this SDK's sizes: parameter specs copied at the
  // plugin's stride (an older plugin's are shorter; fields it lacks are zero, shard_axis -1)
  // and workspace_use KEPT when absent. Pointers stay valid until destruction. An activation
  // describes its input shape, no parameters and no workspace.
  const graft_layer_desc& describe();
  const graft_layer_desc& desc() const { return desc_; }

  // Throw UserError / Failure naming the plugin. The message is only built on failure, so a
  // training step allocates nothing here. An activation ignores params, grads and workspace,
  // and without dx it has nothing to compute.
  void forward(const graft_exec_ctx& ctx, const DLTensor* const* params, const DLTensor* x,
               DLTensor* y, DLTensor* workspace) const;
  void backward(const graft_exec_ctx& ctx, const DLTensor* const* params, const DLTensor* x,
                const DLTensor* y, const DLTensor* dy, DLTensor* dx, DLTensor* const* grads,
                DLTensor* workspace) const;

  const std::string& who() const { return who_; }

 private:
  const graft_layer_vtable* layer_ = nullptr;
  const graft_activation_vtable* activation_ = nullptr;
  void* self_ = nullptr;
  graft_shape input_{};
  graft_layer_desc desc_{};
  std::vector<graft_param_spec> specs_;  // desc_.params points here
  std::string who_;
};

}  // namespace graft::runtime
