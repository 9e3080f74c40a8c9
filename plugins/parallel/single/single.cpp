// The `single` strategy: one process, the whole model, the whole global batch — the reference
// every other strategy is tested against. It reads like the lecture: zero, forward, loss,
// backward, update.
#include <graft/cpp/plugin.hpp>

namespace {

class Single final : public graft::Strategy {
 public:
  Single(const graft::Options&, const graft_world& world, graft::Host) {
    GRAFT_CHECK(world.size == 1, "strategy 'single' runs on one process, but the job has "
                                     << world.size << " ranks; choose parallel.strategy = "
                                        "\"data_parallel\" (or another) for mpirun -np "
                                     << world.size);
  }
  static std::vector<graft::OptionDef> options() { return {}; }

  void train_step(const graft_model_api& api, graft_model* model, const graft::Context& ctx,
                  const DLTensor& x, const DLTensor& y, graft_step_result& result) override {
    const int64_t layers = api.layer_count(model);
    const DLTensor* prediction = nullptr;
    const DLTensor* dprediction = nullptr;
    graft::check(api.zero_grad(model));
    graft::check(api.forward(model, &ctx, 0, layers, &x, &prediction));
    graft::check(api.loss(model, &ctx, prediction, &y, &result, &dprediction));
    graft::check(api.backward(model, &ctx, 0, layers, dprediction, nullptr, nullptr, nullptr));
    graft::check(api.optimizer_step(model, &ctx));
  }

  void eval_step(const graft_model_api& api, graft_model* model, const graft::Context& ctx,
                 const DLTensor& x, const DLTensor& y, graft_step_result& result) override {
    const DLTensor* prediction = nullptr;
    graft::check(api.forward(model, &ctx, 0, api.layer_count(model), &x, &prediction));
    graft::check(api.loss(model, &ctx, prediction, &y, &result, nullptr));
  }
};

}  // namespace

GRAFT_PLUGIN_LIBRARY("single", "0.1.0",
                     graft::strategy<Single>("single", "one process: the reference strategy"))
