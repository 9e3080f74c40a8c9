// The stage's tensors in flight: which buffer a micro-batch's input arrives in, which copy of
// an input gradient goes back, and when a send must be finished before its memory changes.
#include "stage_runner.hpp"

namespace graft::pipeline {

StageRunner::StageRunner(Host host, Comm comm, int32_t stage, int32_t stages, const char* who)
    : host_(host), stage_(stage), stages_(stages), who_(who), link_(comm) {
  const std::string s = std::to_string(stage);
  const std::string prefix = "pipeline stage ";
  what_forward_send_ = prefix + s + " -> " + std::to_string(stage + 1) + " activations";
  what_forward_recv_ = prefix + std::to_string(stage - 1) + " -> " + s + " activations";
  what_backward_send_ = prefix + s + " -> " + std::to_string(stage - 1) + " gradients";
  what_backward_recv_ = prefix + std::to_string(stage + 1) + " -> " + s + " gradients";
}

void StageRunner::plan(mesh::TensorStage layers, const graft_shape& input,
                       const graft_shape& output, int32_t slots) {
  layers_ = std::move(layers);
  input_ = input;
  output_ = output;
  slots_ = slots;
  sends_forward_.assign(size_t(slots), nullptr);
  sends_backward_.assign(size_t(slots) + 1, nullptr);
  gradients_out_ = std::vector<DeviceMemory>(sends_backward_.size());
  dprediction_.assign(size_t(slots), nullptr);
  activations_in_ = std::vector<DeviceMemory>(size_t(slots));
}

void StageRunner::prepare(const Context& ctx, int64_t rows) {
  if (!first())
    for (DeviceMemory& b : activations_in_)
      reserve(b, host_, ctx.device, size_t(rows * numel(input_)) * sizeof(float));
  if (!last())
    reserve(gradient_in_, host_, ctx.device, size_t(rows * numel(output_)) * sizeof(float));
}

Context StageRunner::micro_context(const Context& ctx, const MicroBatches& micro, int64_t k) const {
  Context part = ctx;
  part.slot = static_cast<int32_t>(k % slots_);
  part.row_offset = ctx.row_offset + micro.begin(k);
  part.micro_batches = 1;
  return part;
}

void StageRunner::forward(const ModelRef& model, const Context& ctx, const DLTensor& x,
                          const DLTensor& y, const MicroBatches& micro, int64_t k,
                          graft_step_result& mine, bool training) {
  const Context part = micro_context(ctx, micro, k);
  const size_t slot = size_t(part.slot);
  const int64_t begin = micro.begin(k), end = begin + micro.rows_of(k);
  link_.finish(sends_forward_[slot]);  // the slot's output buffer is about to be rewritten
  // The model keeps the input's data pointer (layers read it again in backward), not this
  // view: a stage's received input stays in its slot's buffer until that backward.
  int64_t x_shape[GRAFT_MAX_DIMS + 1];
  DLTensor rows_of_x;
  const DLTensor* in;
  if (first()) {
    rows_of_x = row_range(x, begin, end, x_shape);
    in = &rows_of_x;
  } else {
    received_ = View(activations_in_[slot].data(), ctx.device, end - begin, input_);
    link_.recv(*received_, stage_ - 1, tag(k, true), what_forward_recv_.c_str());
    in = received_.get();
  }
  const DLTensor& out = layers_.forward(model, part, *in, [&](int64_t a, int64_t b) {
    if (hooks_) hooks_->before_forward(model, part, a, b);
  });
  if (!last()) {
    sends_forward_[slot] =
        link_.send_start(out, stage_ + 1, tag(k, true), what_forward_send_.c_str());
    return;
  }
  int64_t y_shape[GRAFT_MAX_DIMS + 1];
  const DLTensor target = row_range(y, begin, end, y_shape);
  if (training)
    dprediction_[slot] = &model.loss_and_gradient(part, out, target, mine);
  else
    model.loss(part, out, target, mine);
}

const DLTensor* StageRunner::receive_gradient(const Context& part, const MicroBatches& micro,
                                              int64_t k) {
  if (last()) {
    const DLTensor* dy = dprediction_[size_t(part.slot)];
    GRAFT_CHECK(dy, who_ << ": micro-batch " << k << " has no loss gradient");
    return dy;
  }
  received_ = View(gradient_in_.data(), part.device, micro.rows_of(k), output_);
  link_.recv(*received_, stage_ + 1, tag(k, false), what_backward_recv_.c_str());
  return received_.get();
}

// Sent from a copy: the model's input-gradient buffer is rewritten by the next backward of its
// slot (every backward, on the last stage), and waiting there for the previous stage to take
// the gradient ties the two stages' steps together, which shows as idle on both.
void StageRunner::send_gradient(const Context& part, int64_t k, const DLTensor& dx) {
  const size_t out = size_t(k) % gradients_out_.size();
  link_.finish(sends_backward_[out]);
  const int64_t rows = graft::rows(dx);
  View copy(reserve(gradients_out_[out], host_, part.device,
                    size_t(rows * numel(input_)) * sizeof(float)),
            part.device, rows, input_);
  graft::copy(part, dx, *copy);  // the host's copy, which also copies on a GPU (in its stream)
  sends_backward_[out] =
      link_.send_start(*copy, stage_ - 1, tag(k, false), what_backward_send_.c_str());
}

void StageRunner::finish_sends() {
  for (graft_request*& r : sends_forward_) link_.finish(r);
  for (graft_request*& r : sends_backward_) link_.finish(r);
}

}  // namespace graft::pipeline
