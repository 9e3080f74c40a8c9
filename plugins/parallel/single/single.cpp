// The `single` strategy: one process, the whole model, the whole global batch — the reference
// every other strategy is tested against. It reads like the lecture: zero, forward, loss,
// backward, update; with gradient accumulation, the middle three once per micro-batch.
#include <cstddef>

#include <graft/cpp/plugin.hpp>
#include <graft/cpp/rows.hpp>

namespace {

using graft::for_each_micro_batch;
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
                                        const DLTensor& py, bool) {
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
                                        const DLTensor& py, bool) {
      const DLTensor* prediction = nullptr;
      graft::check(api.forward(model, &part, 0, layers, &px, &prediction));
      graft::check(api.loss(model, &part, prediction, &py, &result, nullptr));
    });
  }
};

}  // namespace

GRAFT_PLUGIN_LIBRARY("single", "0.1.0",
                     graft::strategy<Single>("single", "one process: the reference strategy"))
