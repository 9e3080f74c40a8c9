// The `pipeline` strategy: consecutive top-level layers form stages on consecutive ranks (rank r
// runs stage r). Each global batch is split into micro-batches; activations go forward and their
// gradients backward across stage boundaries by send/recv, in the gpipe or 1f1b order; each
// stage then steps only its own layers. A rank holds parameters, gradients, optimizer state and
// buffers for its stage's layers only (the host allocates by the plan's stage_index); their
// values are drawn by layer index, as `single` draws them, so it trains exactly as `single` does.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include <graft/cpp/plugin.hpp>
#include <graft/cpp/strategy.hpp>

#include "stage_link.hpp"
#include "stage_plan.hpp"

namespace {

using namespace graft::pipeline;
using graft::numel;
using graft::row_range;

std::string percent(double fraction) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * fraction);
  return buf;
}

class Pipeline final : public graft::Strategy {
 public:
  Pipeline(const graft::Options& o, const graft_world& world, graft::Host host)
      : host_(host),
        stage_(world.rank),
        stages_(world.size),
        micro_(o.get_int("micro_batches")),
        one_f_one_b_(o.get_string("schedule") == "1f1b"),
        warmup_extra_(int32_t(o.get_int("warmup_extra"))),
        schedule_name_(o.get_string("schedule")),
        pairs_(o.get_int_list("stages")),
        link_(graft::Comm(world, "pipeline")) {
    GRAFT_CHECK(
        pairs_.size() % 2 == 0,
        "stages = "
            << format_pairs(pairs_)
            << ": expected [first, last] pairs "
               "of layer indices, e.g. stages = [0, 3, 4, 7] (stage 0: layers 0..3, stage 1: "
               "layers 4..7)");
    const int64_t listed = int64_t(pairs_.size() / 2);
    GRAFT_CHECK(pairs_.empty() || listed == world.size,
                "stages = " << format_pairs(pairs_) << " lists " << listed
                            << " stages, but the job has " << world.size
                            << " rank(s), one stage each; run "
                               "with mpirun -np "
                            << listed << " (graft validate: --world " << listed
                            << "), or change [parallel] stages to " << world.size
                            << " pairs (or remove it "
                               "to balance "
                            << world.size << " stages by parameter count)");
    what_forward_send_ = "pipeline stage " + std::to_string(stage_) + " -> " +
                         std::to_string(stage_ + 1) + " activations";
    what_forward_recv_ = "pipeline stage " + std::to_string(stage_ - 1) + " -> " +
                         std::to_string(stage_) + " activations";
    what_backward_send_ = "pipeline stage " + std::to_string(stage_) + " -> " +
                          std::to_string(stage_ - 1) + " gradients";
    what_backward_recv_ = "pipeline stage " + std::to_string(stage_ + 1) + " -> " +
                          std::to_string(stage_) + " gradients";
  }

  static std::vector<graft::OptionDef> options() {
    return {
        graft::option_int("micro_batches", 4,
                          "micro-batches each global batch is split into (ceil(batch / n) rows "
                          "each); more shrink the bubble (p-1)/(m+p-1). run.gradient_accumulation "
                          "is not used: these are the accumulation")
            .range(1, 8192),
        graft::option_string("schedule", "1f1b",
                             "gpipe: all forwards, then all backwards (holds every micro-batch); "
                             "1f1b: one forward, one backward in turn (holds at most p - stage)",
                             "gpipe|1f1b"),
        graft::option_int("warmup_extra", 0,
                          "1f1b only: forwards every stage but the last runs ahead of the "
                          "textbook warm-up, each holding one more micro-batch of activations; "
                          "1 gives the stages slack to absorb a late message or a slow "
                          "micro-batch (on this 2-core machine the 2-stage bubble at 16 "
                          "micro-batches fell from ~18% to ~13%)")
            .range(0, 64),
        graft::option_int_list("stages", {},
                               "inclusive top-level layer ranges, one [first, last] pair per "
                               "stage (rank r = stage r): [[0, 3], [4, 7]] (or flat, "
                               "[0, 3, 4, 7]) is layers 0..3 then 4..7; empty: balanced by "
                               "parameter count over the ranks"),
    };
  }

  void plan(const graft_layer_info* layers, int64_t n, int64_t global_batch,
            graft_plan& plan) override {
    std::vector<int64_t> parameters;
    for (int64_t i = 0; i < n; ++i) parameters.push_back(layers[i].parameters);
    bounds_ = pairs_.empty() ? balance_stages(parameters, stages_) : explicit_stages(pairs_, n);
    begin_ = bounds_.begin(stage_);
    end_ = bounds_.end(stage_);
    input_ = layers[begin_].input;
    output_ = layers[end_ - 1].output;
    for (int32_t s = 0; s < stages_; ++s)
      for (int64_t i = bounds_.begin(s); i < bounds_.end(s); ++i) plan.layers[i].stage = s;
    const MicroBatches micro(global_batch, micro_);
    slots_ = in_flight(one_f_one_b_, stage_, stages_, micro.count, warmup_extra_);
    plan.stages = stages_;
    plan.stage_index = stage_;
    plan.slots = slots_;
    plan.rows_per_slot = micro.size;
    // Point to point only: one activation message per micro-batch forward, one gradient message
    // backward. The two all-reduces of a few doubles per step (norm, loss) are not counted.
    const int64_t bytes_per_row =
        4 * (last() ? 0 : numel(output_)) + 4 * (first() ? 0 : numel(input_));
    plan.messages_per_step = micro.count * ((last() ? 0 : 1) + (first() ? 0 : 1));
    plan.message_bytes_per_step = global_batch * bytes_per_row;
    sends_forward_.assign(size_t(slots_), nullptr);
    sends_backward_.assign(size_t(slots_) + 1, nullptr);
    gradients_out_ = std::vector<graft::DeviceMemory>(sends_backward_.size());
    dprediction_.assign(size_t(slots_), nullptr);
    activations_in_ = std::vector<graft::DeviceMemory>(size_t(slots_));
    planned_ = true;
  }

  // The first stage reads x and the last reads y; a rank reads one row range for both, so
  // they read the whole batch and the stages between read nothing.
  void batch_rows(int64_t rows, bool, int64_t& begin, int64_t& end) override {
    begin = 0;
    end = first() || last() ? rows : 0;
  }

  void train_step(const graft_model_api& api, graft_model* handle, const graft::Context& ctx,
                  const DLTensor& x, const DLTensor& y, graft_step_result& result) override {
    const auto start = Clock::now();
    const graft::ModelRef model(api, handle, "pipeline");
    prepare(model, ctx, x, y);
    const MicroBatches micro(ctx.global_batch, micro_);
    model.zero_grad();
    graft_step_result mine{};
    for (int64_t i = 0; i < 2 * micro.count; ++i) {
      const Op op = schedule_op(one_f_one_b_, stage_, stages_, micro.count, i, warmup_extra_);
      if (op.forward)
        forward(model, ctx, x, y, micro, op.micro, mine, /*training=*/true);
      else
        backward(model, ctx, micro, op.micro);
    }
    finish_sends();
    // One all-reduce: this stage's squared gradient norm (clipping needs the global one) and
    // the last stage's sums, which every rank must return.
    double sums[3 + GRAFT_MAX_METRICS] = {};
    if (stages_ > 1) sums[0] = model.grad_sq_norm(begin_, end_, /*count_replicated=*/true);
    sums[1] = mine.loss_sum;
    sums[2] = double(mine.rows);
    for (int m = 0; m < GRAFT_MAX_METRICS; ++m) sums[3 + m] = mine.metric_sums[m];
    if (stages_ > 1) link_.all_reduce_sum(sums, 3 + GRAFT_MAX_METRICS, "pipeline step sums");
    idle_seconds_ += link_.take_idle();
    window_seconds_ += std::chrono::duration<double>(Clock::now() - start).count();
    ++steps_;
    micro_count_ = std::max(micro_count_, micro.count);
    if (stages_ > 1)
      model.optimizer_step_layers(ctx, begin_, end_, sums[0]);
    else
      model.optimizer_step(ctx);
    add(sums, result);
  }

  void eval_step(const graft_model_api& api, graft_model* handle, const graft::Context& ctx,
                 const DLTensor& x, const DLTensor& y, graft_step_result& result) override {
    const graft::ModelRef model(api, handle, "pipeline");
    prepare(model, ctx, x, y);
    const MicroBatches micro(ctx.global_batch, micro_);
    graft_step_result mine{};
    for (int64_t k = 0; k < micro.count; ++k)
      forward(model, ctx, x, y, micro, k, mine, /*training=*/false);
    finish_sends();
    double sums[3 + GRAFT_MAX_METRICS] = {};
    sums[1] = mine.loss_sum;
    sums[2] = double(mine.rows);
    for (int m = 0; m < GRAFT_MAX_METRICS; ++m) sums[3 + m] = mine.metric_sums[m];
    if (stages_ > 1) link_.all_reduce_sum(sums, 3 + GRAFT_MAX_METRICS, "pipeline eval sums");
    link_.take_idle();  // evaluation is not part of the training bubble
    add(sums, result);
  }

  // Every stage's idle fraction since the last report, gathered to every rank (collective).
  Report report() override {
    std::vector<double> figures(2 * size_t(stages_), 0.0);
    figures[size_t(stage_)] = idle_seconds_;
    figures[size_t(stages_ + stage_)] = window_seconds_;
    if (stages_ > 1)
      link_.all_reduce_sum(figures.data(), int64_t(figures.size()), "pipeline report");
    link_.take_idle();
    Report r;
    if (steps_ > 0) {
      const double bubble = predicted_bubble(stages_, micro_count_);
      r.message = "pipeline " + schedule_name_ + ", " + std::to_string(stages_) +
                  (stages_ == 1 ? " stage x " : " stages x ") + std::to_string(micro_count_) +
                  " micro-batches, " + std::to_string(steps_) + " steps: idle";
      for (int32_t s = 0; s < stages_; ++s) {
        const double window = figures[size_t(stages_ + s)];
        const double idle = window > 0 ? figures[size_t(s)] / window : 0.0;
        r.message += (s ? ", stage " : " stage ") + std::to_string(s) + " " + percent(idle);
        r.values.emplace_back("idle_stage" + std::to_string(s), idle);
      }
      r.message += " (predicted bubble " + percent(bubble) + ")";
      r.values.emplace_back("predicted_bubble", bubble);
    }
    idle_seconds_ = window_seconds_ = 0.0;
    steps_ = 0;
    return r;
  }

 private:
  bool first() const { return stage_ == 0; }
  bool last() const { return stage_ == stages_ - 1; }

  // Checks what a step needs and sizes the receive buffers (allocating only when they grow:
  // the first training step, and an evaluation batch larger than a training one).
  void prepare(const graft::ModelRef& model, const graft::Context& ctx, const DLTensor& x,
               const DLTensor& y) {
    GRAFT_CHECK(planned_,
                "pipeline: the host did not call plan() before the first step; it "
                "needs a graft host with SDK 1.1 or newer");
    if (stages_ > 1) {
      GRAFT_CHECK(link_.connected(), "pipeline: " << stages_
                                                  << " stages but the host gave no "
                                                     "communicator; launch with mpirun");
      GRAFT_CHECK(model.has(&graft_model_api::grad_sq_norm) &&
                      model.has(&graft_model_api::optimizer_step_layers),
                  "pipeline: the host's model api has no grad_sq_norm/optimizer_step_layers");
    }
    GRAFT_CHECK(!first() || graft::rows(x) == ctx.global_batch,
                "pipeline: the first stage got " << graft::rows(x) << " rows of x, not the "
                                                 << ctx.global_batch << " of the global batch");
    GRAFT_CHECK(!last() || graft::rows(y) == ctx.global_batch,
                "pipeline: the last stage got " << graft::rows(y) << " rows of y, not the "
                                                << ctx.global_batch << " of the global batch");
    const int64_t rows = MicroBatches(ctx.global_batch, micro_).size;
    if (!first())
      for (graft::DeviceMemory& b : activations_in_)
        reserve(b, host_, ctx.device, size_t(rows * numel(input_)) * sizeof(float));
    if (!last())
      reserve(gradient_in_, host_, ctx.device, size_t(rows * numel(output_)) * sizeof(float));
  }

  graft::Context micro_context(const graft::Context& ctx, const MicroBatches& micro,
                               int64_t k) const {
    graft::Context part = ctx;
    part.slot = static_cast<int32_t>(k % slots_);
    part.row_offset = ctx.row_offset + micro.begin(k);
    part.micro_batches = 1;
    return part;
  }

  void forward(const graft::ModelRef& model, const graft::Context& ctx, const DLTensor& x,
               const DLTensor& y, const MicroBatches& micro, int64_t k, graft_step_result& mine,
               bool training) {
    const graft::Context part = micro_context(ctx, micro, k);
    const size_t slot = size_t(part.slot);
    const int64_t begin = micro.begin(k), end = begin + micro.rows_of(k);
    link_.finish(sends_forward_[slot]);  // the slot's output buffer is about to be rewritten
    // The model keeps the input's data pointer (layers read it again in backward), not this
    // view: a stage's received input stays in its slot's buffer until that backward.
    int64_t x_shape[GRAFT_MAX_DIMS + 1];
    DLTensor rows_of_x;
    graft::View received;
    const DLTensor* in;
    if (first()) {
      rows_of_x = row_range(x, begin, end, x_shape);
      in = &rows_of_x;
    } else {
      received = graft::View(activations_in_[slot].data(), ctx.device, end - begin, input_);
      link_.recv(*received, stage_ - 1, tag(k, true), what_forward_recv_.c_str());
      in = received.get();
    }
    const DLTensor& out = model.forward(part, begin_, end_, *in);
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

  void backward(const graft::ModelRef& model, const graft::Context& ctx, const MicroBatches& micro,
                int64_t k) {
    const graft::Context part = micro_context(ctx, micro, k);
    const size_t slot = size_t(part.slot);
    const DLTensor* dy;
    graft::View received;
    if (last()) {
      dy = dprediction_[slot];
      GRAFT_CHECK(dy, "pipeline: micro-batch " << k << " has no loss gradient");
    } else {
      received = graft::View(gradient_in_.data(), ctx.device, micro.rows_of(k), output_);
      link_.recv(*received, stage_ + 1, tag(k, false), what_backward_recv_.c_str());
      dy = received.get();
    }
    // Backward may write a layer's dx over its output (GRAFT_ENTRY_DX_OVER_OUTPUT), the stage's
    // output that went forward from this slot included: that send must be done first. The next
    // stage has answered with dy, so it already has the data and this returns at once.
    link_.finish(sends_forward_[slot]);
    const DLTensor* dx = model.backward(part, begin_, end_, *dy);
    if (first()) return;
    // Sent from a copy: the model's input-gradient buffer is rewritten by the next backward
    // of its slot (every backward, on the last stage), and waiting there for the previous stage
    // to take the gradient ties the two stages' steps together, which shows as idle on both.
    const size_t out = size_t(k) % gradients_out_.size();
    link_.finish(sends_backward_[out]);
    const int64_t rows = graft::rows(*dx);
    graft::View copy(reserve(gradients_out_[out], host_, ctx.device,
                             size_t(rows * numel(input_)) * sizeof(float)),
                     ctx.device, rows, input_);
    graft::copy(ctx, *dx, *copy);  // the host's copy, which also copies on a GPU (in its stream)
    sends_backward_[out] =
        link_.send_start(*copy, stage_ - 1, tag(k, false), what_backward_send_.c_str());
  }

  void finish_sends() {
    for (graft_request*& r : sends_forward_) link_.finish(r);
    for (graft_request*& r : sends_backward_) link_.finish(r);
  }

  // Distinct per micro-batch and direction; messages of one (peer, tag) stay in order, so
  // successive steps cannot mix.
  static int32_t tag(int64_t k, bool forward) {
    return static_cast<int32_t>(2 * k + (forward ? 0 : 1));
  }

  static void add(const double* sums, graft_step_result& result) {
    result.loss_sum += sums[1];
    result.rows += static_cast<int64_t>(sums[2] + 0.5);
    for (int m = 0; m < GRAFT_MAX_METRICS; ++m) result.metric_sums[m] += sums[3 + m];
  }

  graft::Host host_;
  int32_t stage_, stages_;
  int64_t micro_;
  bool one_f_one_b_;
  int32_t warmup_extra_;
  std::string schedule_name_;
  std::vector<int64_t> pairs_;
  StageLink link_;
  bool planned_ = false;
  StageBounds bounds_;
  int64_t begin_ = 0, end_ = 0;     // this stage's top-level layers
  graft_shape input_{}, output_{};  // per row, at this stage's boundaries
  int32_t slots_ = 1;
  // From host->alloc, on the step's device:
  std::vector<graft::DeviceMemory> activations_in_;  // per slot: an input lives until backward
  graft::DeviceMemory gradient_in_;                  // consumed by the backward receiving it
  std::vector<graft::DeviceMemory> gradients_out_;   // copies of input gradients sent, a ring
  std::vector<graft_request*> sends_forward_, sends_backward_;  // per slot, in flight
  std::vector<const DLTensor*> dprediction_;  // last stage, per slot: the loss gradient
  std::string what_forward_send_, what_forward_recv_, what_backward_send_, what_backward_recv_;
  // Since the last report: seconds blocked on other stages, seconds in steps, steps.
  double idle_seconds_ = 0.0, window_seconds_ = 0.0;
  int64_t steps_ = 0, micro_count_ = 0;
};

}  // namespace

GRAFT_PLUGIN_LIBRARY("pipeline", "0.1.0",
                     graft::strategy<Pipeline>("pipeline",
                                               "consecutive layers as stages on consecutive "
                                               "ranks; micro-batches in gpipe or 1f1b order"))
