// One pipeline stage's part of a schedule: the forward or backward of micro-batch k through
// the stage's layers (a TensorStage: with or without tensor-parallel pairs), receiving from
// and sending to the neighbouring stages over the pipeline group. The pipeline and mesh
// strategies decide the order (stage_plan.hpp) and what is summed; this moves the tensors.
#pragma once

#include <string>
#include <vector>

#include <graft/cpp/device.hpp>
#include <graft/cpp/strategy.hpp>

#include "../pipeline/stage_link.hpp"
#include "../pipeline/stage_plan.hpp"
#include "tensor_stage.hpp"

namespace graft::pipeline {

// What a strategy does around the segments of a stage's layers (TensorStage): ZeRO gathers a
// unit's parameters before its first segment, and reduce-scatters its gradients after its last.
class StageHooks {
 public:
  virtual ~StageHooks() = default;
  virtual void before_forward(const ModelRef&, const Context&, int64_t /*begin*/, int64_t /*end*/) {
  }
  virtual void before_backward(const ModelRef&, const Context&, int64_t, int64_t) {}
  virtual void after_backward(const ModelRef&, const Context&, int64_t, int64_t) {}
};

class StageRunner {
 public:
  // `who` names the strategy in errors; comm is the pipeline group (empty with one stage).
  StageRunner(Host host, Comm comm, int32_t stage, int32_t stages, const char* who);

  int32_t stage() const { return stage_; }
  int32_t stages() const { return stages_; }
  bool first() const { return stage_ == 0; }
  bool last() const { return stage_ == stages_ - 1; }
  StageLink& link() { return link_; }
  const mesh::TensorStage& layers() const { return layers_; }
  const graft_shape& input() const { return input_; }
  const graft_shape& output() const { return output_; }

  // After plan(): the stage's layers and their per-row input and output shapes, and the
  // micro-batches in flight at once (the model's slots).
  void plan(mesh::TensorStage layers, const graft_shape& input, const graft_shape& output,
            int32_t slots);
  // Hooks around each segment of the stage's layers (NULL: none); the caller keeps them alive.
  void set_hooks(StageHooks* hooks) { hooks_ = hooks; }
  // Sizes the receive buffers for micro-batches of `rows` (allocating only when they grow).
  void prepare(const Context& ctx, int64_t rows);

  // The forward of micro-batch k; the last stage adds its loss into `mine` (and keeps the loss
  // gradient for the backward when training).
  void forward(const ModelRef& model, const Context& ctx, const DLTensor& x, const DLTensor& y,
               const MicroBatches& micro, int64_t k, graft_step_result& mine, bool training);
  // The backward of micro-batch k, calling on_layer_done(layer) as each layer finishes.
  template <class OnLayerDone>
  void backward(const ModelRef& model, const Context& ctx, const MicroBatches& micro, int64_t k,
                OnLayerDone& on_layer_done) {
    const Context part = micro_context(ctx, micro, k);
    const DLTensor* dy = receive_gradient(part, micro, k);
    // Backward may write a layer's dx over its output, the output that went forward from this
    // slot included: that send must be done first (the next stage has answered, so it is).
    link_.finish(sends_forward_[size_t(part.slot)]);
    const DLTensor* dx = layers_.backward(
        model, part, *dy,
        [&](int64_t a, int64_t b) {
          if (hooks_) hooks_->before_backward(model, part, a, b);
        },
        [&](int64_t a, int64_t b) {
          if (hooks_) hooks_->after_backward(model, part, a, b);
        },
        on_layer_done);
    if (!first() && dx) send_gradient(part, k, *dx);
  }
  void finish_sends();

 private:
  Context micro_context(const Context& ctx, const MicroBatches& micro, int64_t k) const;
  const DLTensor* receive_gradient(const Context& part, const MicroBatches& micro, int64_t k);
  void send_gradient(const Context& part, int64_t k, const DLTensor& dx);
  // Distinct per micro-batch and direction; messages of one (peer, tag) stay in order.
  static int32_t tag(int64_t k, bool forward) {
    return static_cast<int32_t>(2 * k + (forward ? 0 : 1));
  }

  Host host_;
  int32_t stage_, stages_;
  const char* who_;
  StageLink link_;
  mesh::TensorStage layers_;
  StageHooks* hooks_ = nullptr;
  graft_shape input_{}, output_{};
  int32_t slots_ = 1;
  // From host->alloc, on the step's device:
  std::vector<DeviceMemory> activations_in_;  // per slot: an input lives until its backward
  DeviceMemory gradient_in_;                  // consumed by the backward receiving it
  std::vector<DeviceMemory> gradients_out_;   // copies of input gradients sent, a ring
  std::vector<graft_request*> sends_forward_, sends_backward_;  // in flight
  std::vector<const DLTensor*> dprediction_;  // last stage, per slot: the loss gradient
  std::string what_forward_send_, what_forward_recv_, what_backward_send_, what_backward_recv_;
  // Scratch for the views of received tensors (they outlive the call that received them only
  // through the model, which keeps the data pointer, not the view).
  View received_;
};

}  // namespace graft::pipeline
