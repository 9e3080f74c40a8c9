// An example optimizer: Adagrad as torch.optim.Adagrad (without lr_decay). It shows the
// optimizer kind: state tensors the host allocates, zeroes and checkpoints by name, and the
// learning rate, step number and weight-decay flag arriving with each update.
#include <cmath>

#include <graft/cpp/plugin.hpp>

namespace {

class Adagrad final : public graft::Optimizer {
 public:
  static std::vector<graft::OptionDef> options() {
    return {
        graft::option_float("eps", 1e-10, "added to the root of the sum of squares").range(0, 1),
        graft::option_float("weight_decay", 0.0, "L2 penalty added to the gradient").range(0, 1e6),
        graft::option_float("initial_accumulator_value", 0.0, "where the sum of squares starts")
            .range(0, 1e6),
    };
  }

  Adagrad(const graft::Options& options, graft::Host)
      : eps_(float(options.get_float("eps"))),
        weight_decay_(float(options.get_float("weight_decay"))),
        initial_(float(options.get_float("initial_accumulator_value"))) {}

  // One state tensor per parameter, shaped like it: the running sum of squared gradients.
  std::vector<std::string> state_names() const override { return {"sum"}; }

  void step(const graft::Context&, const graft_param_update& update) override {
    GRAFT_CHECK(graft::on_cpu(*update.param), "adagrad: only CPU tensors are supported");
    float* param = graft::f32(*update.param);
    const float* grad = graft::f32(*update.grad);
    float* sum = graft::f32(*update.state[0]);
    // The state starts at zero (the host's promise); the first step adds the initial value.
    const float start = update.step == 1 ? initial_ : 0.0f;
    const float decay = update.weight_decay ? weight_decay_ : 0.0f;
    for (int64_t i = 0; i < graft::numel(*update.param); ++i) {
      const float g = grad[i] + decay * param[i];
      sum[i] += start + g * g;
      param[i] -= update.lr * g / (std::sqrt(sum[i]) + eps_);
    }
  }

 private:
  float eps_, weight_decay_, initial_;
};

}  // namespace

GRAFT_PLUGIN_LIBRARY("adagrad_optimizer", "0.1.0",
                     graft::optimizer<Adagrad>("adagrad",
                                               "per-element rates from the sum of "
                                               "squared gradients (torch Adagrad)"))
