// The `data_parallel` strategy: every rank holds the whole model and trains on its own rows of
// each global batch; the gradients are summed over the ranks in buckets, each started as soon as
// backward has finished its layers, so communication can overlap the rest of backward.
#include <string>
#include <vector>

#include <graft/cpp/plugin.hpp>
#include <graft/cpp/strategy.hpp>

#include "data_parallel_parts.hpp"

namespace {

using graft::for_each_micro_batch;
using graft::data_parallel::Buckets;
using graft::data_parallel::shard_begin;

class DataParallel final : public graft::Strategy {
 public:
  static std::vector<graft::OptionDef> options() {
    return {
        graft::option_float("bucket_mb", 25.0,
                            "gradients are summed over the ranks in buckets of about this many "
                            "MiB (whole layers, last first), each started once backward is done "
                            "with its layers")
            .range(1e-6, 1e6),
        graft::option_bool("allow_local_batch_norm", false,
                           "accept layers with batch statistics (batch_norm): each rank then "
                           "normalises with its own rows' statistics, which single does not"),
    };
  }

  DataParallel(const graft::Options& o, const graft_world& world, graft::Host)
      : rank_(world.rank),
        size_(world.size),
        comm_(world, "data_parallel"),
        bucket_bytes_(o.get_float("bucket_mb") * 1048576.0),
        allow_local_batch_norm_(o.get_bool("allow_local_batch_norm")) {
    GRAFT_CHECK(world.size >= 1 && world.rank >= 0 && world.rank < world.size,
                "strategy 'data_parallel': rank " << world.rank << " of a world of " << world.size
                                                  << " is not a valid place; start it with "
                                                     "mpirun -np N (N >= 1)");
  }

  void plan(const graft_layer_info* layers, int64_t n, int64_t global_batch,
            graft_plan& plan) override {
    GRAFT_CHECK(global_batch >= size_,
                "[data] batch_size = "
                    << global_batch << " is smaller than the " << size_
                    << " ranks of [parallel] strategy = \"data_parallel\", which gives each rank "
                       "its own rows of every batch; raise data.batch_size to at least "
                    << size_ << " or start fewer ranks (mpirun -np)");
    std::vector<int64_t> floats;
    for (int64_t i = 0; i < n; ++i) {
      const graft_layer_info& layer = layers[i];
      floats.push_back(layer.parameters);
      GRAFT_CHECK(allow_local_batch_norm_ || !(layer.flags & GRAFT_ENTRY_BATCH_STATISTICS),
                  "[model] layer "
                      << i << " ('" << layer.type
                      << "') normalises with statistics over its batch, but under [parallel] "
                         "strategy = \"data_parallel\" each rank sees only its own rows, so its "
                         "statistics, outputs and gradients would differ from single's; set "
                         "[parallel] allow_local_batch_norm = true to accept per-rank statistics "
                         "(as PyTorch's DistributedDataParallel without SyncBatchNorm does)");
    }
    // The host planned ceil(B / micro) rows per slot for the whole batch B. This rank holds at
    // most ceil(B / N) rows, run as micro-batches of ceil(its rows / micro); micro is at least
    // ceil(B / host's rows), so that bounds them without knowing micro itself.
    const int64_t shard = (global_batch + size_ - 1) / size_;
    const int64_t micro = (global_batch + plan.rows_per_slot - 1) / plan.rows_per_slot;
    plan.rows_per_slot = (shard + micro - 1) / micro;
    if (size_ > 1) {  // for graft validate --world: what one step sends
      int64_t total = 0;
      for (int64_t f : floats) total += f;
      plan.messages_per_step = Buckets::count(floats, bucket_bytes_) + 1;  // + the step's sums
      plan.message_bytes_per_step =
          total * int64_t(sizeof(float)) + int64_t((GRAFT_MAX_METRICS + 2) * sizeof(double));
      plan.axis_bytes_per_step[GRAFT_AXIS_DATA] = plan.message_bytes_per_step;
    }
  }

  // Rows [r B / N, (r + 1) B / N): parts within one row of each other, together the batch.
  void batch_rows(int64_t rows, bool, int64_t& begin, int64_t& end) override {
    begin = shard_begin(rows, rank_, size_);
    end = shard_begin(rows, rank_ + 1, size_);
  }

  // Each rank's loss is scaled by 1 / global batch and its dropout masks keyed by global row,
  // so the sum over ranks of its gradients is single's gradient of the whole batch.
  void train_step(const graft_model_api& api, graft_model* handle, const graft::Context& ctx,
                  const DLTensor& x, const DLTensor& y, graft_step_result& result) override {
    const graft::ModelRef model(api, handle, "data_parallel");
    const int64_t layers = model.layer_count();
    if (communicating() && !buckets_.built_for(handle)) {
      require_comm();
      buckets_.build(model, bucket_bytes_);
    }
    model.zero_grad();
    graft_step_result part{};
    part.struct_size = sizeof part;
    // A rank without rows this step (a short last batch) runs nothing; it joins the sums below.
    if (has_rows(x)) {
      for_each_micro_batch(
          ctx, x, y,
          [&](const graft::Context& c, const DLTensor& px, const DLTensor& py, bool last) {
            const DLTensor& prediction = model.forward(c, 0, layers, px);
            const DLTensor& dprediction = model.loss_and_gradient(c, prediction, py, part);
            // The sum over ranks starts as the last micro-batch's backward completes each bucket.
            if (last && communicating())
              model.backward(c, 0, layers, dprediction,
                             [this](int64_t layer) noexcept { buckets_.layer_done(comm_, layer); });
            else
              model.backward(c, 0, layers, dprediction);
          });
    }
    if (communicating()) {
      // A rank without rows this step (a short last batch) joins every bucket with zeros.
      buckets_.start_remaining(comm_);
      buckets_.wait_all(comm_);
    }
    // Every rank now holds the whole batch's gradients: the same update everywhere.
    model.optimizer_step(ctx);
    add_summed(part, result, "training step sums");
  }

  void eval_step(const graft_model_api& api, graft_model* handle, const graft::Context& ctx,
                 const DLTensor& x, const DLTensor& y, graft_step_result& result) override {
    const graft::ModelRef model(api, handle, "data_parallel");
    const int64_t layers = model.layer_count();
    graft_step_result part{};
    part.struct_size = sizeof part;
    if (has_rows(x)) {
      for_each_micro_batch(
          ctx, x, y, [&](const graft::Context& c, const DLTensor& px, const DLTensor& py, bool) {
            model.loss(c, model.forward(c, 0, layers, px), py, part);
          });
    }
    add_summed(part, result, "evaluation sums");
  }

 private:
  bool communicating() const { return size_ > 1; }
  static bool has_rows(const DLTensor& x) { return x.ndim > 0 && x.shape[0] > 0; }

  void require_comm() const {
    GRAFT_CHECK(comm_, "data_parallel: this world of "
                           << size_
                           << " ranks has no communicator (it was made for planning only)");
  }

  // Adds this rank's sums, summed over every rank, to result: every rank returns the whole
  // batch's (result may already hold earlier batches', as in an evaluation).
  void add_summed(const graft_step_result& part, graft_step_result& result, const char* what) {
    graft::StepSums sums;
    sums.take(part);
    if (communicating()) {
      require_comm();
      sums.sum_over(comm_, what, /*first=*/1);  // no norm: data_parallel clips on the host
    }
    sums.add_to(result);
  }

  int32_t rank_, size_;
  graft::Comm comm_;  // empty in a world made for planning only
  double bucket_bytes_;
  bool allow_local_batch_norm_;
  Buckets buckets_;
};

}  // namespace

GRAFT_PLUGIN_LIBRARY("data_parallel", "0.1.0",
                     graft::strategy<DataParallel>(
                         "data_parallel",
                         "every rank holds the whole model and trains on its rows of each batch; "
                         "gradients summed in buckets that overlap backward"))
