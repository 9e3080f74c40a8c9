// The `single` strategy: one process, the whole model, the whole global batch — the reference
// every other strategy is tested against. It reads like the lecture: zero, forward, loss,
// backward, update; with gradient accumulation, the middle three once per micro-batch.
#include <graft/cpp/plugin.hpp>
#include <graft/cpp/strategy.hpp>

namespace {

using graft::for_each_micro_batch;

class Single final : public graft::Strategy {
 public:
  Single(const graft::Options&, const graft_world& world, graft::Host) {
    GRAFT_CHECK(world.size == 1, "strategy 'single' runs on one process, but the job has "
                                     << world.size
                                     << " ranks; choose parallel.strategy = "
                                        "\"data_parallel\" (or another) for mpirun -np "
                                     << world.size);
  }
  static std::vector<graft::OptionDef> options() { return {}; }

  // The loss scales by 1 / global batch, so the micro-batches' gradients sum to the whole
  // batch's; dropout keys its masks by ctx.row_offset + row, so they do not change either.
  void train_step(const graft_model_api& api, graft_model* handle, const graft::Context& ctx,
                  const DLTensor& x, const DLTensor& y, graft_step_result& result) override {
    const graft::ModelRef model(api, handle, "single");
    const int64_t layers = model.layer_count();
    model.zero_grad();
    for_each_micro_batch(
        ctx, x, y, [&](const graft::Context& part, const DLTensor& px, const DLTensor& py, bool) {
          const DLTensor& prediction = model.forward(part, 0, layers, px);
          const DLTensor& dprediction = model.loss_and_gradient(part, prediction, py, result);
          model.backward(part, 0, layers, dprediction);
        });
    model.optimizer_step(ctx);
  }

  void eval_step(const graft_model_api& api, graft_model* handle, const graft::Context& ctx,
                 const DLTensor& x, const DLTensor& y, graft_step_result& result) override {
    const graft::ModelRef model(api, handle, "single");
    const int64_t layers = model.layer_count();
    for_each_micro_batch(
        ctx, x, y, [&](const graft::Context& part, const DLTensor& px, const DLTensor& py, bool) {
          model.loss(part, model.forward(part, 0, layers, px), py, result);
        });
  }
};

}  // namespace

GRAFT_PLUGIN_LIBRARY("single", "0.1.0",
                     graft::strategy<Single>("single", "one process: the reference strategy"))
