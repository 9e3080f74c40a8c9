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

#include "../common/bubble_report.hpp"
#include "../common/schedule_options.hpp"
#include "../common/stage_runner.hpp"

namespace {

using namespace graft::pipeline;
using graft::numel;

class Pipeline final : public graft::Strategy {
 public:
  Pipeline(const graft::Options& o, const graft_world& world, graft::Host host)
      : stage_(world.rank),
        stages_(world.size),
        micro_(o.get_int("micro_batches")),
        one_f_one_b_(o.get_string("schedule") == "1f1b"),
        warmup_extra_(int32_t(o.get_int("warmup_extra"))),
        schedule_name_(o.get_string("schedule")),
        pairs_(o.get_int_list("stages")),
        run_(host, graft::Comm(world, "pipeline"), world.rank, world.size, "pipeline") {
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
  }

  static std::vector<graft::OptionDef> options() {
    return schedule_options(4, 1,
                            "micro-batches each global batch is split into (ceil(batch / n) rows "
                            "each); more shrink the bubble (p-1)/(m+p-1). "
                            "run.gradient_accumulation is not used: these are the accumulation");
  }

  void plan(const graft_layer_info* layers, int64_t n, int64_t global_batch,
            graft_plan& plan) override {
    std::vector<int64_t> parameters;
    for (int64_t i = 0; i < n; ++i) parameters.push_back(layers[i].parameters);
    bounds_ = pairs_.empty() ? balance_stages(parameters, stages_) : explicit_stages(pairs_, n);
    begin_ = bounds_.begin(stage_);
    end_ = bounds_.end(stage_);
    for (int32_t s = 0; s < stages_; ++s)
      for (int64_t i = bounds_.begin(s); i < bounds_.end(s); ++i) plan.layers[i].stage = s;
    const MicroBatches micro(global_batch, micro_);
    const int32_t slots = in_flight(one_f_one_b_, stage_, stages_, micro.count, warmup_extra_);
    graft::mesh::TensorStage own;
    own.set(begin_, end_, {}, graft::Comm());
    run_.plan(std::move(own), layers[begin_].input, layers[end_ - 1].output, slots);
    plan.stages = stages_;
    plan.stage_index = stage_;
    plan.slots = slots;
    plan.rows_per_slot = micro.size;
    // Point to point only: one activation message per micro-batch forward, one gradient message
    // backward. The two all-reduces of a few doubles per step (norm, loss) are not counted.
    const int64_t bytes_per_row =
        4 * (last() ? 0 : numel(run_.output())) + 4 * (first() ? 0 : numel(run_.input()));
    plan.messages_per_step = micro.count * ((last() ? 0 : 1) + (first() ? 0 : 1));
    plan.message_bytes_per_step = global_batch * bytes_per_row;
    plan.axis_bytes_per_step[GRAFT_AXIS_PIPELINE] = plan.message_bytes_per_step;
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
      if (op.forward) {
        run_.forward(model, ctx, x, y, micro, op.micro, mine, /*training=*/true);
      } else {
        auto nothing = [](int64_t) noexcept {};
        run_.backward(model, ctx, micro, op.micro, nothing);
      }
    }
    run_.finish_sends();
    if (stages_ > 1) model.sum_tied_gradients(run_.link().comm());
    // One all-reduce: this stage's squared gradient norm (clipping needs the global one) and
    // the last stage's sums, which every rank must return.
    graft::StepSums sums;
    if (stages_ > 1) sums.norm() = model.grad_sq_norm(begin_, end_, /*count_replicated=*/true);
    sums.take(mine);
    if (stages_ > 1)
      run_.link().all_reduce_sum(sums.values, graft::StepSums::kCount, "pipeline step sums");
    bubble_.add_step(run_.link().take_idle(),
                     std::chrono::duration<double>(Clock::now() - start).count(), micro.count);
    if (stages_ > 1)
      model.optimizer_step_layers(ctx, begin_, end_, sums.norm());
    else
      model.optimizer_step(ctx);
    sums.add_to(result);
  }

  void eval_step(const graft_model_api& api, graft_model* handle, const graft::Context& ctx,
                 const DLTensor& x, const DLTensor& y, graft_step_result& result) override {
    const graft::ModelRef model(api, handle, "pipeline");
    prepare(model, ctx, x, y);
    const MicroBatches micro(ctx.global_batch, micro_);
    graft_step_result mine{};
    for (int64_t k = 0; k < micro.count; ++k)
      run_.forward(model, ctx, x, y, micro, k, mine, /*training=*/false);
    run_.finish_sends();
    graft::StepSums sums;
    sums.take(mine);
    if (stages_ > 1)
      run_.link().all_reduce_sum(sums.values, graft::StepSums::kCount, "pipeline eval sums");
    run_.link().take_idle();  // evaluation is not part of the training bubble
    sums.add_to(result);
  }

  // Every stage's idle fraction since the last report, gathered to every rank (collective).
  Report report() override {
    return bubble_.take(run_.link(), stage_, stages_,
                        "pipeline " + schedule_name_ + ", " + std::to_string(stages_) +
                            (stages_ == 1 ? " stage" : " stages"),
                        "pipeline report");
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
      GRAFT_CHECK(run_.link().connected(), "pipeline: " << stages_
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
    run_.prepare(ctx, MicroBatches(ctx.global_batch, micro_).size);
  }

  int32_t stage_, stages_;
  int64_t micro_;
  bool one_f_one_b_;
  int32_t warmup_extra_;
  std::string schedule_name_;
  std::vector<int64_t> pairs_;
  graft::pipeline::StageRunner run_;
  bool planned_ = false;
  StageBounds bounds_;
  int64_t begin_ = 0, end_ = 0;  // this stage's top-level layers
  // Since the last report: seconds blocked on other stages, seconds in steps, steps.
  graft::pipeline::BubbleReport bubble_;
};

}  // namespace

GRAFT_PLUGIN_LIBRARY("pipeline", "0.1.0",
                     graft::strategy<Pipeline>("pipeline",
                                               "consecutive layers as stages on consecutive "
                                               "ranks; micro-batches in gpipe or 1f1b order"))
