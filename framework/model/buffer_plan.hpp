// The buffers of the training step, planned once when the model is built: each slot's layer
// outputs, input gradients and workspaces, where a workspace or a dx may share memory another
// buffer already holds, and the bytes all of it takes. The step itself never allocates.
#pragma once

#include <memory>
#include <vector>

#include "model/buffer.hpp"
#include "model/model_parts.hpp"
#include "model/tensor_view.hpp"

namespace graft::runtime {

// One set of activation, gradient and workspace buffers (one micro-batch in flight), indexed by
// LayerNode::flat. A residual block has no input-gradient buffer: its dx is its first inner
// layer's, with dy added in place (only the block reads that buffer).
struct Slot {
  std::vector<Buffer> outputs, input_grads, workspaces;
  Buffer scratch, dprediction;
  // Where each layer's dx goes: its input_grads buffer, its own output's buffer for a layer
  // that writes dx over its output, or nullptr for a layer that is never asked for dx.
  std::vector<float*> dx_memory;
  // Where each layer's workspace is: its own buffer, the slot's shared scratch, or the buffer
  // of its output's gradient (buffer_plan.cpp says when).
  std::vector<float*> workspace_memory;
  // Where each layer's call scratch (scratch_per_sample) is: in the shared scratch.
  std::vector<float*> call_scratch_memory;
  // The step's views of the memory above, remade for each batch's rows.
  std::vector<TensorView> inputs, output_views, input_grad_views, workspace_views;
  TensorView scratch_view;  // a call's scratch (graft_exec_ctx.scratch), remade per call
  TensorView dprediction_view;
};

class BufferPlan {
 public:
  // Decides where each layer of the model (`all` in pre-order, `top` its top-level sequence)
  // keeps its workspace and writes its dx, and sizes every slot buffer for settings.max_batch
  // rows of settings.slots slots; `fixed` are the floats of the batch-free buffers (parameters,
  // gradients, optimizer state). A size that overflows is a UserError naming rows_origin.
  // Layers of other pipeline stages (settings.holds) get no buffers.
  BufferPlan(const std::vector<std::unique_ptr<LayerNode>>& all, const std::vector<LayerNode*>& top,
             const graft_shape& prediction, const std::vector<size_t>& fixed,
             const ModelSettings& settings);

  // Every buffer planned, allocated or not; of those, the batch-free ones.
  size_t planned_bytes() const { return planned_bytes_; }
  size_t fixed_bytes() const { return fixed_bytes_; }
  // Of the slot buffers: workspaces (and the shared scratch), and the rest (layer outputs,
  // input gradients, the loss gradient), over every slot.
  size_t workspace_bytes() const { return workspace_bytes_; }
  size_t activation_bytes() const { return activation_bytes_; }
  // Allocates the planned slot buffers; once.
  void allocate();
  bool allocated() const { return !slots_.empty(); }
  Slot& slot(int32_t index) const;  // a Failure when the buffers are not allocated

 private:
  // Where a layer's workspace lives and where its dx goes, the same in every slot.
  struct Placement {
    enum class Workspace { own, scratch, output_gradient } workspace = Workspace::own;
    int64_t workspace_over =
        -1;  // output_gradient: the flat index whose dx buffer, or -1: the loss's
    bool dx_over_output = false;  // dx is written over the layer's own output
    bool held = true;             // false: another pipeline stage's layer, given no buffers
  };
  // The floats of each buffer of one slot, indexed by LayerNode::flat.
  struct Sizes {
    std::vector<size_t> outputs, input_grads, workspaces;
    std::vector<size_t> call_scratch_at;  // where each held layer's call scratch starts
    size_t scratch = 0, dprediction = 0;
  };
  void place_workspaces(const std::vector<LayerNode*>& list, bool top);
  void place_input_gradients(const std::vector<LayerNode*>& top, size_t reads_model_input);
  void size_slots(const std::vector<std::unique_ptr<LayerNode>>& all, size_t reads_model_input,
                  const graft_shape& prediction, const std::vector<size_t>& fixed);

  DLDevice device_;
  int64_t rows_;
  int32_t slots_count_;
  bool dx_over_outputs_;
  std::string rows_origin_;
  std::vector<Placement> placements_;
  Sizes sizes_;
  size_t fixed_bytes_ = 0, planned_bytes_ = 0, workspace_bytes_ = 0, activation_bytes_ = 0;
  std::vector<std::unique_ptr<Slot>> slots_;
};

}  // namespace graft::runtime
