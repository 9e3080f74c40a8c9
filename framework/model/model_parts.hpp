// The model's private pieces shared by its assembly (model.cpp) and its training step
// (model_step.cpp): one layer of the tree, and one set of planned step buffers.
#pragma once

#include <string>
#include <vector>

#include "model/model.hpp"

namespace graft::runtime {

// "[[model.layers]] #2 (layer 'linear' from graft_linear.so)", for messages.
inline std::string model_who(const PluginChoice& c) {
  return c.section + " (" + kind_name(c.record->kind) + " '" + c.record->name + "' from " +
         c.record->library.filename().string() + ")";
}

// A plugin layer or activation, or a residual block (y = x + f(x), f its inner layers).
struct Model::Layer {
  const PluginChoice* choice = nullptr;
  std::string type;  // the plugin's name, or "residual"
  bool is_activation = false;
  bool is_residual = false;
  std::vector<Layer*> inner;  // residual: f's layers in order (owned by all_layers_)
  // ctx.layer_index and the parameter-init stream: i for top-level layer i; nested layers are
  // numbered after the top-level ones in pre-order, so top-level numbers never shift.
  int32_t index = 0;
  int64_t top = 0;   // the top-level layer this one is, or is inside
  size_t flat = 0;   // position in all_layers_, which indexes the slot buffers
  int depth = 0;
  void* self = nullptr;
  const graft_layer_vtable* layer_vtable = nullptr;
  const graft_activation_vtable* activation_vtable = nullptr;
  graft_shape in{}, out{};
  int64_t workspace_per_sample = 0;
  int32_t workspace_use = GRAFT_WORKSPACE_KEPT;  // the plugin's graft_workspace_use
  // Where the workspace lives (model.cpp plans it): the layer's own buffer, the slot's shared
  // scratch, or the buffer of its output's gradient (GRAFT_WORKSPACE_SCRATCH_OVER_DY): the
  // input gradient of the layer at flat index workspace_over, or the loss gradient (-1).
  enum class WorkspaceIn { own, scratch, output_gradient };
  WorkspaceIn workspace_in = WorkspaceIn::own;
  int64_t workspace_over = -1;
  // dx is written over this layer's own output (GRAFT_ENTRY_DX_OVER_OUTPUT; model.cpp plans it).
  bool dx_over_output = false;
  std::vector<size_t> param_indices;
  std::vector<TensorView> param_views, grad_views;
  std::vector<const DLTensor*> param_ptrs;
  std::vector<DLTensor*> grad_ptrs;
  std::string who;
};

// One set of activation, gradient and workspace buffers (one micro-batch in flight), indexed by
// Layer::flat. A residual block has no input-gradient buffer: its dx is its first inner
// layer's, with dy added in place (only the block reads that buffer).
struct Model::Slot {
  std::vector<Buffer> outputs, input_grads, workspaces;
  std::vector<TensorView> inputs, output_views, input_grad_views, workspace_views;
  // Where each layer's dx goes: its input_grads buffer, its own output's buffer for a
  // dx_over_output layer, or nullptr for a layer that is never asked for dx.
  std::vector<float*> dx_memory;
  // One workspace for all layers whose workspace is scratch only: layers of a slot run one
  // at a time, so they can take turns with it (the largest one's size).
  Buffer scratch;

  float* workspace(const Layer& layer) {
    switch (layer.workspace_in) {
      case Layer::WorkspaceIn::scratch: return scratch.data();
      case Layer::WorkspaceIn::output_gradient:
        return layer.workspace_over < 0 ? dprediction.data()
                                        : dx_memory[size_t(layer.workspace_over)];
      case Layer::WorkspaceIn::own: break;
    }
    return workspaces[layer.flat].data();
  }
  Buffer dprediction;
  TensorView dprediction_view;
};

}  // namespace graft::runtime
