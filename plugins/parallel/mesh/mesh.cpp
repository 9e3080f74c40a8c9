// The `mesh` strategy: data x pipeline x tensor parallelism on the host's device mesh
// (graft/mesh.h), each axis on its own communicator. Composed in a fixed order, as torchtitan's
// parallelize functions are, from pieces that each see one axis:
//   placement  plan(): pipeline stages by parameter count (or [parallel] stages), then the
//              Megatron pairs inside each stage split over the tensor group;
//   schedule   train_step(): gpipe or 1f1b over this data rank's micro-batches, activations
//              and their gradients point to point over the pipeline group (TensorStage runs a
//              stage's layers with the tensor group's all-reduces);
//   sync       the stage's gradients summed over the data group in buckets that start while
//              the last micro-batch's backward still runs (data_parallel's Buckets).
// Then the sums that make every rank's step equal to single's: the gradient norm over the
// tensor and pipeline groups, the loss over the pipeline and data groups.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include <graft/cpp/mesh.hpp>
#include <graft/cpp/plugin.hpp>
#include <graft/cpp/strategy.hpp>

#include "../common/bubble_report.hpp"
#include "../common/schedule_options.hpp"
#include "../common/stage_runner.hpp"
#include "../data_parallel/data_parallel_parts.hpp"
#include "zero_sync.hpp"

namespace {

using namespace graft::pipeline;
using graft::numel;
using graft::data_parallel::Buckets;
using graft::data_parallel::shard_begin;
using graft::mesh::TensorStage;

class MeshStrategy final : public graft::Strategy {
 public:
  static std::vector<graft::OptionDef> options() {
    std::vector<graft::OptionDef> all = schedule_options(
        0, 0,
        "micro-batches each data rank's rows are split into; 0: [run] gradient_accumulation "
        "with one stage, else at least 4 (the bubble is (p-1)/(m+p-1))");
    all.push_back(graft::option_float("bucket_mb", 25.0,
                                      "the data group sums gradients in buckets of about this "
                                      "many MiB, each started once backward is done with its "
                                      "layers")
                      .range(1e-6, 1e6));
    all.push_back(graft::option_bool("allow_local_batch_norm", false,
                                     "with data > 1, accept layers with batch statistics (each "
                                     "data rank normalises with its own rows' statistics, which "
                                     "single does not)"));
    return all;
  }

  MeshStrategy(const graft::Options& o, const graft_world& world, graft::Host host)
      : mesh_(world, "mesh"),
        micro_option_(o.get_int("micro_batches")),
        one_f_one_b_(o.get_string("schedule") == "1f1b"),
        warmup_extra_(int32_t(o.get_int("warmup_extra"))),
        schedule_name_(o.get_string("schedule")),
        pairs_option_(o.get_int_list("stages")),
        bucket_bytes_(o.get_float("bucket_mb") * 1048576.0),
        allow_local_batch_norm_(o.get_bool("allow_local_batch_norm")),
        stage_(mesh_.coord(GRAFT_AXIS_PIPELINE)),
        stages_(mesh_.degree(GRAFT_AXIS_PIPELINE)),
        run_(host, mesh_.comm(GRAFT_AXIS_PIPELINE), stage_, stages_, "mesh") {
    GRAFT_CHECK(mesh_.size() == world.size,
                "the mesh's degrees (" << mesh_.describe() << ") do not multiply to the world of "
                                       << world.size << " ranks");
    GRAFT_CHECK(mesh_.zero() >= 0 && mesh_.zero() <= 3,
                "[parallel] zero = " << mesh_.zero() << ": expected 0, 1, 2 or 3");
    GRAFT_CHECK(pairs_option_.empty() || int64_t(pairs_option_.size()) == 2 * int64_t(stages_),
                "stages = " << format_pairs(pairs_option_) << " lists " << pairs_option_.size() / 2
                            << " stages, but [parallel] pipeline = " << stages_ << "; give "
                            << stages_ << " [first, last] pairs, or remove stages to balance them");
  }

  void plan(const graft_layer_info* layers, int64_t n, int64_t global_batch,
            graft_plan& plan) override {
    const int32_t data = mesh_.degree(GRAFT_AXIS_DATA), tensor = mesh_.degree(GRAFT_AXIS_TENSOR);
    GRAFT_CHECK(global_batch >= data,
                "[data] batch_size = " << global_batch << " is smaller than [parallel] data = "
                                       << data << " (each data rank reads its own rows); raise "
                                       << "batch_size to at least " << data);
    // Placement: stages first, then the pairs inside each stage.
    std::vector<int64_t> parameters;
    for (int64_t i = 0; i < n; ++i) {
      parameters.push_back(layers[i].parameters);
      GRAFT_CHECK(
          data == 1 || mesh_.zero() < 3 || !(layers[i].flags & GRAFT_ENTRY_BATCH_STATISTICS),
          "[model] layer " << i << " ('" << layers[i].type
                           << "') keeps running statistics, which [parallel] zero = 3 "
                              "would update in a gathered copy and lose; set zero = 2 "
                              "or lower");
      GRAFT_CHECK(
          data == 1 || allow_local_batch_norm_ || !(layers[i].flags & GRAFT_ENTRY_BATCH_STATISTICS),
          "[model] layer " << i << " ('" << layers[i].type
                           << "') normalises with statistics over its batch, but with "
                              "[parallel] data = "
                           << data
                           << " each data rank sees only its own rows; set [parallel] "
                              "allow_local_batch_norm = true to accept per-rank "
                              "statistics");
    }
    bounds_ = pairs_option_.empty() ? balance_stages(parameters, stages_)
                                    : explicit_stages(pairs_option_, n);
    for (int32_t st = 0; st < stages_; ++st)
      for (int64_t i = bounds_.begin(st); i < bounds_.end(st); ++i) plan.layers[i].stage = st;
    std::vector<graft::parallel::MegatronPair> pairs;
    if (tensor > 1) {
      for (int32_t st = 0; st < stages_; ++st) {
        auto found = graft::parallel::find_megatron_pairs(
            layers, bounds_.begin(st), bounds_.end(st), tensor,
            ", or set [parallel] tensor to a number that divides ");
        graft::parallel::place_pairs(found, plan);
        const int64_t whole =
            graft::parallel::place_whole_pairs(layers, bounds_.begin(st), bounds_.end(st), plan);
        if (st == stage_) {
          pairs = std::move(found);
          whole_pairs_ = whole > 0;
        }
      }
    }
    // From zero 2 on, ZeRO acts at its units' bounds, which the host sets only as it builds
    // the model: the stage runs layer by layer, so that every bound is a pause.
    std::vector<int64_t> cuts;
    if (data > 1 && mesh_.zero() >= 2)
      for (int64_t i = bounds_.begin(stage_); i < bounds_.end(stage_); ++i) cuts.push_back(i);
    TensorStage mine;
    mine.set(bounds_.begin(stage_), bounds_.end(stage_), std::move(pairs),
             mesh_.comm(GRAFT_AXIS_TENSOR), cuts);

    // Buffers: the largest data rank's rows, in micro-batches; slots for those in flight.
    if (micro_option_ == 0)
      micro_ = std::max<int64_t>((global_batch + plan.rows_per_slot - 1) / plan.rows_per_slot,
                                 stages_ > 1 ? 4 : 1);
    else
      micro_ = micro_option_;
    const MicroBatches micro((global_batch + data - 1) / data, micro_);
    const int32_t slots = in_flight(one_f_one_b_, stage_, stages_, micro.count, warmup_extra_);
    run_.plan(std::move(mine), layers[bounds_.begin(stage_)].input,
              layers[bounds_.end(stage_) - 1].output, slots);
    plan.stages = stages_;
    plan.stage_index = stage_;
    plan.shards = tensor;
    plan.shard_index = mesh_.coord(GRAFT_AXIS_TENSOR);
    plan.slots = slots;
    plan.rows_per_slot = micro.size;
    // zero 1 sums by bucket; from zero 2 on every unit is whole in a window while it runs, so
    // units of one layer keep that window (and the peak) at the largest layer.
    plan.zero_unit_floats = mesh_.zero() >= 2 ? 0 : int64_t(bucket_bytes_ / sizeof(float));
    predict_traffic(layers, micro, plan);

    planned_ = true;
  }

  // This data rank's rows; the first stage reads x and the last y (one range for both), so
  // the stages between read none (but keep the range's start as their row offset).
  void batch_rows(int64_t rows, bool, int64_t& begin, int64_t& end) override {
    const int32_t d = mesh_.coord(GRAFT_AXIS_DATA), data = mesh_.degree(GRAFT_AXIS_DATA);
    begin = shard_begin(rows, d, data);
    end = first() || last() ? shard_begin(rows, d + 1, data) : begin;
  }

  void train_step(const graft_model_api& api, graft_model* handle, const graft::Context& ctx,
                  const DLTensor& x, const DLTensor& y, graft_step_result& result) override {
    const auto start = Clock::now();
    const graft::ModelRef model(api, handle, "mesh");
    prepare(model, ctx, x, y);
    if (data_parallel() && !zero() && !buckets_.built_for(handle))
      buckets_.build(model, bucket_bytes_);
    const MicroBatches micro(local_rows(ctx), micro_);
    model.zero_grad();
    graft_step_result mine{};
    for (int64_t i = 0; i < 2 * micro.count; ++i) {
      const Op op = schedule_op(one_f_one_b_, stage_, stages_, micro.count, i, warmup_extra_);
      if (op.forward) {
        run_.forward(model, ctx, x, y, micro, op.micro, mine, /*training=*/true);
        continue;
      }
      // The data group's sums start as the last micro-batch's backward completes each bucket.
      const bool sync = data_parallel() && op.micro == micro.count - 1;
      auto on_layer_done = [this, sync](int64_t layer) noexcept {
        if (!sync) return;
        if (zero())
          zero_.layer_done(layer);
        else
          buckets_.layer_done(data_comm(), layer);
      };
      run_.backward(model, ctx, micro, op.micro, on_layer_done);
    }
    run_.finish_sends();
    // A rank without rows this step (a short last batch) joins every bucket with zeros.
    if (zero()) {
      zero_.wait_reduced(ctx);
    } else if (data_parallel()) {
      buckets_.start_remaining(data_comm());
      buckets_.wait_all(data_comm());
    }
    // The model refuses ties across stages under ZeRO, whose gradients are parts by now.
    if (!zero()) model.sum_tied_gradients(run_.link().comm());
    graft::StepSums sums;
    // Each rank sums the squares of the gradients it holds summed (its stage and shard; under
    // ZeRO its own parts), replicated tensors on tensor rank 0 only; the groups add them up.
    const bool count_replicated = mesh_.coord(GRAFT_AXIS_TENSOR) == 0;
    sums.norm() =
        zero() ? zero_.own_sq_norm(model, count_replicated)
               : model.grad_sq_norm(run_.layers().begin(), run_.layers().end(), count_replicated);
    add_mine(mine, sums);
    reduce_sums(sums, "mesh step sums");
    bubble_.add_step(run_.link().take_idle(),
                     std::chrono::duration<double>(Clock::now() - start).count(), micro.count);
    if (zero())
      zero_.update(model, ctx, sums.norm());
    else
      model.optimizer_step_layers(ctx, run_.layers().begin(), run_.layers().end(), sums.norm());
    sums.add_to(result);
  }

  void eval_step(const graft_model_api& api, graft_model* handle, const graft::Context& ctx,
                 const DLTensor& x, const DLTensor& y, graft_step_result& result) override {
    const graft::ModelRef model(api, handle, "mesh");
    prepare(model, ctx, x, y);
    const MicroBatches micro(local_rows(ctx), micro_);
    graft_step_result mine{};
    for (int64_t k = 0; k < micro.count; ++k)
      run_.forward(model, ctx, x, y, micro, k, mine, /*training=*/false);
    run_.finish_sends();
    graft::StepSums sums;
    add_mine(mine, sums);
    reduce_sums(sums, "mesh eval sums");
    run_.link().take_idle();  // evaluation is not part of the training bubble
    sums.add_to(result);
  }

  // With stages: every stage's idle fraction since the last report, gathered over the
  // pipeline group (collective), as the pipeline strategy reports it.
  Report report() override {
    if (stages_ < 2) return {};
    return bubble_.take(run_.link(), stage_, stages_,
                        "mesh " + mesh_summary() + ", " + schedule_name_, "mesh report");
  }

 private:
  bool first() const { return run_.first(); }
  bool last() const { return run_.last(); }
  bool data_parallel() const { return mesh_.degree(GRAFT_AXIS_DATA) > 1; }
  bool zero() const { return data_parallel() && mesh_.zero() >= 1; }
  const graft::Comm& data_comm() const { return mesh_.comm(GRAFT_AXIS_DATA); }

  std::string mesh_summary() const {
    return "data " + std::to_string(mesh_.degree(GRAFT_AXIS_DATA)) + " x pipeline " +
           std::to_string(stages_) + " x tensor " + std::to_string(mesh_.degree(GRAFT_AXIS_TENSOR));
  }

  // This data rank's rows of the batch, which every stage knows without reading them.
  int64_t local_rows(const graft::Context& ctx) const {
    const int32_t d = mesh_.coord(GRAFT_AXIS_DATA), data = mesh_.degree(GRAFT_AXIS_DATA);
    return shard_begin(ctx.global_batch, d + 1, data) - shard_begin(ctx.global_batch, d, data);
  }

  // What one training step sends from this rank, by axis, for `graft validate --world N`.
  void predict_traffic(const graft_layer_info* layers, const MicroBatches& micro,
                       graft_plan& plan) const {
    const int64_t rows = micro.rows, f = int64_t(sizeof(float));
    int64_t messages = 0;
    int64_t& pipeline = plan.axis_bytes_per_step[GRAFT_AXIS_PIPELINE];
    int64_t& tensor = plan.axis_bytes_per_step[GRAFT_AXIS_TENSOR];
    int64_t& data = plan.axis_bytes_per_step[GRAFT_AXIS_DATA];
    if (stages_ > 1) {
      pipeline =
          rows * f * ((last() ? 0 : numel(run_.output())) + (first() ? 0 : numel(run_.input())));
      messages += micro.count * ((last() ? 0 : 1) + (first() ? 0 : 1));
    }
    const int32_t parts = mesh_.degree(GRAFT_AXIS_TENSOR);
    for (const auto& pair : run_.layers().pairs()) {
      tensor += rows * f * numel(layers[pair.row].output);
      if (pair.column > 0) tensor += rows * f * numel(layers[pair.column].input);
      messages += micro.count * (pair.column > 0 ? 2 : 1);
    }
    if (data_parallel()) {
      std::vector<int64_t> floats;
      for (int64_t i = run_.layers().begin(); i < run_.layers().end(); ++i)
        floats.push_back(plan.layers[i].shard == GRAFT_SHARD_NONE ? layers[i].parameters
                                                                  : layers[i].parameters / parts);
      for (int64_t v : floats) data += v * f;
      messages += Buckets::count(floats, bucket_bytes_);
    }
    plan.messages_per_step = messages + 3;  // + the step's sums on each group
    plan.message_bytes_per_step =
        pipeline + tensor + data + 3 * graft::StepSums::kCount * int64_t(sizeof(double));
  }

  void prepare(const graft::ModelRef& model, const graft::Context& ctx, const DLTensor& x,
               const DLTensor& y) {
    GRAFT_CHECK(planned_, "mesh: the host did not call plan() before the first step");
    GRAFT_CHECK(mesh_.connected(),
                "mesh: the host lent no communicators for the mesh's axes; launch with mpirun "
                "-np "
                    << mesh_.size());
    const int64_t rows = local_rows(ctx);
    GRAFT_CHECK(!first() || graft::rows(x) == rows,
                "mesh: the first stage got " << graft::rows(x) << " rows of x, not its " << rows);
    GRAFT_CHECK(!last() || graft::rows(y) == rows,
                "mesh: the last stage got " << graft::rows(y) << " rows of y, not its " << rows);
    run_.prepare(ctx, MicroBatches(rows, micro_).size);
    if (whole_pairs_) model.set_tensor_reduce(mesh_.comm(GRAFT_AXIS_TENSOR));
    if (zero() && !zero_.built_for(model.handle())) {
      zero_.build(model, data_comm());
      // From zero 2 on, ZeRO acts around every unit's layers (zero_sync.hpp).
      run_.set_hooks(mesh_.zero() >= 2 ? &zero_ : nullptr);
    }
  }

  // The last stage's sums, from tensor rank 0 only: every tensor rank computed the same loss.
  void add_mine(const graft_step_result& mine, graft::StepSums& sums) const {
    if (last() && mesh_.coord(GRAFT_AXIS_TENSOR) == 0) sums.take(mine);
  }

  // The norm over the pipeline and tensor groups, the loss over the pipeline and data groups
  // (and the tensor group, where only rank 0 contributed): every rank ends with the totals.
  void reduce_sums(graft::StepSums& sums, const char* what) {
    // Through the link, which counts a stage's wait here as idle (the bubble report).
    if (stages_ > 1) run_.link().all_reduce_sum(sums.values, graft::StepSums::kCount, what);
    if (mesh_.degree(GRAFT_AXIS_TENSOR) > 1) sums.sum_over(mesh_.comm(GRAFT_AXIS_TENSOR), what);
    // Without ZeRO every data replica holds the whole sum of its gradients: the norm is not
    // summed again over the data group.
    if (data_parallel()) sums.sum_over(data_comm(), what, /*first=*/zero() ? 0 : 1);
  }

  graft::Mesh mesh_;
  int64_t micro_option_, micro_ = 1;
  bool one_f_one_b_;
  int32_t warmup_extra_;
  std::string schedule_name_;
  std::vector<int64_t> pairs_option_;
  double bucket_bytes_;
  bool allow_local_batch_norm_;
  Buckets buckets_;
  graft::mesh::ZeroSync zero_{mesh_.zero()};
  bool planned_ = false;
  bool whole_pairs_ = false;  // this stage holds layers placed GRAFT_SHARD_PAIR
  StageBounds bounds_;
  int32_t stage_, stages_;
  StageRunner run_;
  graft::pipeline::BubbleReport bubble_;
};

}  // namespace

GRAFT_PLUGIN_LIBRARY("mesh", "0.1.0",
                     graft::strategy<MeshStrategy>(
                         "mesh",
                         "data x pipeline x tensor on the host's device mesh ([parallel] data, "
                         "pipeline, tensor): stages, Megatron pairs and bucketed gradient sums, "
                         "each over its own axis's group"))
