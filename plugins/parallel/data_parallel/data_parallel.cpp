// The `data_parallel` strategy: every rank holds the whole model and trains on its own rows of
// each global batch; the gradients are summed over the ranks in buckets, each started as soon as
// backward has finished its layers, so communication can overlap the rest of backward.
#include <cstddef>
#include <string>
#include <vector>

#include <graft/cpp/plugin.hpp>

#include "data_parallel_parts.hpp"

namespace {

using graft::data_parallel::Buckets;
using graft::for_each_micro_batch;
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
      : world_(world), bucket_bytes_(o.get_float("bucket_mb") * 1048576.0),
        allow_local_batch_norm_(o.get_bool("allow_local_batch_norm")) {
    GRAFT_CHECK(world.size >= 1 && world.rank >= 0 && world.rank < world.size,
                "strategy 'data_parallel': rank " << world.rank << " of a world of " << world.size
                                                  << " is not a valid place; start it with "
                                                     "mpirun -np N (N >= 1)");
    const size_t has_comm = offsetof(graft_world, comm_api) + sizeof(world.comm_api);
    if (world.struct_size < has_comm) {  // a host from before communicators: a world of one
      world_.comm = nullptr;
      world_.comm_api = nullptr;
    }
  }

  void plan(const graft_layer_info* layers, int64_t n, int64_t global_batch,
            graft_plan& plan) override {
    GRAFT_CHECK(global_batch >= world_.size,
                "[data] batch_size = " << global_batch << " is smaller than the " << world_.size
                    << " ranks of [parallel] strategy = \"data_parallel\", which gives each rank "
                       "its own rows of every batch; raise data.batch_size to at least "
                    << world_.size << " or start fewer ranks (mpirun -np)");
    std::vector<int64_t> floats;
    for (int64_t i = 0; i < n; ++i) {
      const graft_layer_info& layer = layers[i];
      floats.push_back(layer.parameters);
      GRAFT_CHECK(allow_local_batch_norm_ || !(layer.flags & GRAFT_ENTRY_BATCH_STATISTICS),
                  "[model] layer " << i << " ('" << layer.type
                      << "') normalises with statistics over its batch, but under [parallel] "
                         "strategy = \"data_parallel\" each rank sees only its own rows, so its "
                         "statistics, outputs and gradients would differ from single's; set "
                         "[parallel] allow_local_batch_norm = true to accept per-rank statistics "
                         "(as PyTorch's DistributedDataParallel without SyncBatchNorm does)");
    }
    // The host planned ceil(B / micro) rows per slot for the whole batch B. This rank holds at
    // most ceil(B / N) rows, run as micro-batches of ceil(its rows / micro); micro is at least
    // ceil(B / host's rows), so that bounds them without knowing micro itself.
    const int64_t shard = (global_batch + world_.size - 1) / world_.size;
    const int64_t micro = (global_batch + plan.rows_per_slot - 1) / plan.rows_per_slot;
    plan.rows_per_slot = (shard + micro - 1) / micro;
    if (world_.size > 1) {  // for graft validate --world: what one step sends
      int64_t total = 0;
      for (int64_t f : floats) total += f;
      plan.messages_per_step = Buckets::count(floats, bucket_bytes_) + 1;  // + the step's sums
      plan.message_bytes_per_step = total * int64_t(sizeof(float)) +
                                    int64_t((GRAFT_MAX_METRICS + 2) * sizeof(double));
    }
  }

  // Rows [r B / N, (r + 1) B / N): parts within one row of each other, together the batch.
  void batch_rows(int64_t rows, bool, int64_t& begin, int64_t& end) override {
    begin = shard_begin(rows, world_.rank, world_.size);
    end = shard_begin(rows, world_.rank + 1, world_.size);
  }

  // Each rank's loss is scaled by 1 / global batch and its dropout masks keyed by global row,
  // so the sum over ranks of its gradients is single's gradient of the whole batch.
  void train_step(const graft_model_api& api, graft_model* model, const graft::Context& ctx,
                  const DLTensor& x, const DLTensor& y, graft_step_result& result) override {
    const int64_t layers = api.layer_count(model);
    if (communicating() && !buckets_.built_for(model)) {
      require_comm();
      GRAFT_CHECK(api.struct_size >= offsetof(graft_model_api, layer_stage) && api.gradients,
                  "data_parallel: this graft's model api has no gradients(); update graft");
      buckets_.build(api, model, bucket_bytes_);
    }
    graft::check(api.zero_grad(model));
    graft_step_result part{};
    part.struct_size = sizeof part;
    // A rank without rows this step (a short last batch) runs nothing; it joins the sums below.
    if (has_rows(x)) {
      for_each_micro_batch(ctx, x, y, [&](const graft::Context& c, const DLTensor& px,
                                          const DLTensor& py, bool last) {
        const DLTensor* prediction = nullptr;
        const DLTensor* dprediction = nullptr;
        graft::check(api.forward(model, &c, 0, layers, &px, &prediction));
        graft::check(api.loss(model, &c, prediction, &py, &part, &dprediction));
        // The sum over ranks starts as the last micro-batch's backward completes each bucket.
        const bool reduce = last && communicating();
        graft::check(api.backward(model, &c, 0, layers, dprediction, nullptr,
                                  reduce ? on_layer_done : nullptr, this));
      });
    }
    if (communicating()) {
      // A rank without rows this step (a short last batch) joins every bucket with zeros.
      buckets_.start_remaining(*world_.comm_api, world_.comm);
      buckets_.wait_all(*world_.comm_api, world_.comm);
    }
    // Every rank now holds the whole batch's gradients: the same update everywhere.
    graft::check(api.optimizer_step(model, &ctx));
    add_summed(part, result, "training step sums");
  }

  void eval_step(const graft_model_api& api, graft_model* model, const graft::Context& ctx,
                 const DLTensor& x, const DLTensor& y, graft_step_result& result) override {
    const int64_t layers = api.layer_count(model);
    graft_step_result part{};
    part.struct_size = sizeof part;
    if (has_rows(x)) {
      for_each_micro_batch(ctx, x, y, [&](const graft::Context& c, const DLTensor& px,
                                          const DLTensor& py, bool) {
        const DLTensor* prediction = nullptr;
        graft::check(api.forward(model, &c, 0, layers, &px, &prediction));
        graft::check(api.loss(model, &c, prediction, &py, &part, nullptr));
      });
    }
    add_summed(part, result, "evaluation sums");
  }

 private:
  bool communicating() const { return world_.size > 1; }
  static bool has_rows(const DLTensor& x) { return x.ndim > 0 && x.shape[0] > 0; }

  void require_comm() const {
    GRAFT_CHECK(world_.comm && world_.comm_api,
                "data_parallel: this world of " << world_.size
                    << " ranks has no communicator (it was made for planning only)");
  }

  // From the model's backward as each layer finishes: starts the bucket it completes.
  static void on_layer_done(void* user, int64_t layer) {
    auto* self = static_cast<DataParallel*>(user);
    self->buckets_.layer_done(*self->world_.comm_api, self->world_.comm, layer);
  }

  // Adds this rank's sums, summed over every rank, to result: every rank returns the whole
  // batch's (result may already hold earlier batches', as in an evaluation).
  void add_summed(const graft_step_result& part, graft_step_result& result, const char* what) {
    double values[GRAFT_MAX_METRICS + 2];
    values[0] = part.loss_sum;
    values[1] = double(part.rows);
    for (int m = 0; m < GRAFT_MAX_METRICS; ++m) values[2 + m] = part.metric_sums[m];
    if (communicating()) {
      require_comm();
      graft::check(world_.comm_api->all_reduce_f64(world_.comm, values, GRAFT_MAX_METRICS + 2,
                                                   GRAFT_REDUCE_SUM, what));
    }
    result.loss_sum += values[0];
    result.rows += int64_t(values[1] + 0.5);  // exact: counts far below 2^53
    for (int m = 0; m < GRAFT_MAX_METRICS; ++m) result.metric_sums[m] += values[2 + m];
  }

  graft_world world_;
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
