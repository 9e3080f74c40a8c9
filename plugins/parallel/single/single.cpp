// The `single` strategy: one process, the whole model, the whole global batch — the reference
// every other strategy is tested against. It reads like the lecture: zero, forward, loss,
// backward, update; with gradient accumulation, the middle three once per micro-batch.
#include <cstddef>

#include <graft/cpp/plugin.hpp>
#include <graft/cpp/rows.hpp>

namespace {

using graft::micro_batches;
using graft::row_range;

class Single final : public graft::Strategy {
 public:
  Single(const graft::Options&, const graft_world& world, graft::Host) {
    GRAFT_CHECK(world.size == 1, "strategy 'single' runs on one process, but the job has "
                                     << world.size << " ranks; choose parallel.strategy = "
                                        "\"data_parallel\" (or another) for mpirun -np "
                                     << world.size);
  }
  static std::vector<graft::OptionDef> options() { return {}; }

  // The loss scales by 1 / global batch, so the micro-batches' gradients sum to the whole
  // batch's; dropout keys its masks by ctx.row_offset + row, so they do not change either.
  void train_step(const graft_model_api& api, graft_model* model, const graft::Context& ctx,
                  const DLTensor& x, const DLTensor& y, graft_step_result& result) override {
    const int64_t layers = api.layer_count(model);
    graft::check(api.zero_grad(model));
    for_each_micro_batch(ctx, x, y, [&](const graft::Context& part, const DLTensor& px,
                                        const DLTensor& py) {
      const DLTensor* prediction = nullptr;
      const DLTensor* dprediction = nullptr;
      graft::check(api.forward(model, &part, 0, layers, &px, &prediction));
      graft::check(api.loss(model, &part, prediction, &py, &result, &dprediction));
      graft::check(api.backward(model, &part, 0, layers, dprediction, nullptr, nullptr, nullptr));
    });
    graft::check(api.optimizer_step(model, &ctx));
  }

  void eval_step(const graft_model_api& api, graft_model* model, const graft::Context& ctx,
                 const DLTensor& x, const DLTensor& y, graft_step_result& result) override {
    const int64_t layers = api.layer_count(model);
    for_each_micro_batch(ctx, x, y, [&](const graft::Context& part, const DLTensor& px,
                                        const DLTensor& py) {
      const DLTensor* prediction = nullptr;
      graft::check(api.forward(model, &part, 0, layers, &px, &prediction));
      graft::check(api.loss(model, &part, prediction, &py, &result, nullptr));
    });
  }

 private:
  // Calls run(ctx, x rows, y rows) for each of ctx's micro-batches: ceil(rows / n) rows each
  // (the last may be shorter), with row_offset moved to the range's first row.
  template <class Run>
  static void for_each_micro_batch(const graft::Context& ctx, const DLTensor& x,
                                   const DLTensor& y, Run&& run) {
    const int64_t rows = x.ndim ? x.shape[0] : 0;
    const int64_t n = micro_batches(ctx);
    if (n == 1) {
      run(ctx, x, y);
      return;
    }
    GRAFT_CHECK(x.ndim <= GRAFT_MAX_DIMS + 1 && y.ndim <= GRAFT_MAX_DIMS + 1,
                "single: a batch tensor has more than " << GRAFT_MAX_DIMS + 1 << " axes");
    const int64_t size = (rows + n - 1) / n;
    int64_t x_shape[GRAFT_MAX_DIMS + 1], y_shape[GRAFT_MAX_DIMS + 1];
    for (int64_t begin = 0; begin < rows; begin += size) {
      const int64_t end = begin + size < rows ? begin + size : rows;
      graft::Context part = ctx;
      part.row_offset = ctx.row_offset + begin;
      const DLTensor px = row_range(x, begin, end, x_shape);
      const DLTensor py = row_range(y, begin, end, y_shape);
      run(part, px, py);
    }
  }
};

}  // namespace

GRAFT_PLUGIN_LIBRARY("single", "0.1.0",
                     graft::strategy<Single>("single", "one process: the reference strategy"))
