// The optimizer checks: a quadratic bowl is minimised, steps repeat bit for bit, and state
// saved to a safetensors file and read into a fresh instance continues identically (resume).
#include <cmath>
#include <random>

#include "check/check_common.hpp"
#include "checkpoint/safetensors.hpp"
#include "plugin/optimizer_instance.hpp"
#include "util/errors.hpp"

namespace graft::checker::detail {

namespace {

using runtime::Failure;

constexpr int64_t kElements = 16;  // the bowl's dimension
constexpr int kBowlSteps = 300;

// An optimizer made as the model makes one, with one parameter, its gradient and its state.
class OptimizerUnderTest {
 public:
  OptimizerUnderTest(const runtime::PluginRecord& record, const graft_options& options)
      : optimizer_(record, options) {
    state_names = optimizer_.state_names();
    state.assign(state_names.size(), Tensor({kElements}));
  }

  // step is 1 for the first update.
  void step(float lr, int64_t step) {
    graft_exec_ctx ctx = cpu_context(true);
    ctx.step = step - 1;
    std::vector<DLTensor*> pointers;
    for (Tensor& t : state) pointers.push_back(t.get());
    const graft_param_update update{
        sizeof(graft_param_update), param.get(), grad.get(), pointers.data(), lr, step, 1};
    optimizer_.step(ctx, update);
  }

  Tensor param{{kElements}}, grad{{kElements}};
  std::vector<std::string> state_names;
  std::vector<Tensor> state;

 private:
  runtime::OptimizerInstance optimizer_;
};

// f(p) = 1/2 sum_i a_i (p_i - c_i)^2 with curvatures a_i in [0.5, 2] (condition number 4).
struct Bowl {
  std::vector<float> curvature, centre, start;
  explicit Bowl(uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> unit(0.0f, 1.0f), symmetric(-1.0f, 1.0f);
    for (int64_t i = 0; i < kElements; ++i) {
      curvature.push_back(0.5f + 1.5f * unit(rng));
      centre.push_back(symmetric(rng));
      start.push_back(centre.back() + symmetric(rng));
    }
  }
  void gradient(OptimizerUnderTest& o) const {
    for (int64_t i = 0; i < kElements; ++i)
      o.grad.f()[i] = curvature[i] * (o.param.f()[i] - centre[i]);
  }
  double distance(const float* p) const {
    double sum = 0.0;
    for (int64_t i = 0; i < kElements; ++i) sum += std::pow(double(p[i]) - centre[i], 2);
    return std::sqrt(sum);
  }
};

// Runs steps [first, last] on the bowl.
void descend(OptimizerUnderTest& o, const Bowl& bowl, float lr, int64_t first, int64_t last) {
  for (int64_t t = first; t <= last; ++t) {
    bowl.gradient(o);
    o.step(lr, t);
  }
}

}  // namespace

std::vector<CheckResult> optimizer_checks(const runtime::PluginRecord& record,
                                          const toml::table& options,
                                          const CheckSettings& settings) {
  const runtime::BoundOptions bound = bind(record, options);
  const Bowl bowl(29);
  std::vector<CheckResult> results;
  results.push_back(run_check(record, "learns", [&](CheckResult& r) {
    // Optimizers differ in their natural step size; the first rate that works is reported.
    double best = 0.0, best_lr = 0.0;
    for (float lr : {0.1f, 0.03f, 0.3f, 0.01f}) {
      OptimizerUnderTest o(record, *bound.get());
      std::copy(bowl.start.begin(), bowl.start.end(), o.param.f());
      descend(o, bowl, lr, 1, kBowlSteps);
      const double shrink = bowl.distance(bowl.start.data()) / bowl.distance(o.param.f());
      if (std::isfinite(shrink) && shrink > best) best = shrink, best_lr = lr;
      if (best >= settings.bowl_factor) break;
    }
    r.value = "distance to a quadratic bowl's minimum shrank " + number(best) + "x (needs " +
              number(settings.bowl_factor) + "x) in " + std::to_string(kBowlSteps) +
              " steps at lr " + number(best_lr);
    if (!(best >= settings.bowl_factor)) {
      r.outcome = Outcome::fail;
      r.message = "no learning rate of 0.3, 0.1, 0.03, 0.01 minimised the bowl";
    }
  }));
  results.push_back(run_check(record, "determinism", [&](CheckResult& r) {
    OptimizerUnderTest first(record, *bound.get()), second(record, *bound.get());
    std::copy(bowl.start.begin(), bowl.start.end(), first.param.f());
    second.param = first.param;
    descend(first, bowl, 0.05f, 1, 5);
    descend(second, bowl, 0.05f, 1, 5);
    expect_same(first.param, second.param,
                "two instances took different steps from the same start");
    r.value = "5 steps from the same start bit-identical in two instances";
  }));
  results.push_back(run_check(record, "save_load", [&](CheckResult& r) {
    OptimizerUnderTest kept(record, *bound.get()), resumed(record, *bound.get());
    std::copy(bowl.start.begin(), bowl.start.end(), kept.param.f());
    descend(kept, bowl, 0.05f, 1, 5);
    std::vector<runtime::NamedTensor> tensors{{"param", {kElements}, kept.param.f()}};
    for (size_t s = 0; s < kept.state.size(); ++s)
      tensors.push_back({"state." + kept.state_names[s], {kElements}, kept.state[s].f()});
    const std::filesystem::path file = settings.work_dir / (record.name + ".safetensors");
    runtime::write_safetensors(file, tensors, {{"plugin", record.name}});
    const runtime::SafetensorsFile read = runtime::read_safetensors(file);
    if (read.tensors.size() != tensors.size())
      throw Failure("state names are not unique: " + runtime::join(kept.state_names));
    auto load = [&](const std::string& name, Tensor& into) {
      const auto& values = read.tensors.at(name).values;
      std::copy(values.begin(), values.end(), into.f());
    };
    load("param", resumed.param);
    for (size_t s = 0; s < resumed.state.size(); ++s)
      load("state." + resumed.state_names[s], resumed.state[s]);
    descend(kept, bowl, 0.05f, 6, 10);
    descend(resumed, bowl, 0.05f, 6, 10);
    expect_same(kept.param, resumed.param,
                "after 5 steps, a fresh instance given the saved parameter and state continued "
                "differently (state kept outside the state tensors is lost in a checkpoint)");
    r.value = (kept.state.empty() ? std::string("no state tensors")
                                  : count(int64_t(kept.state.size()), "state tensor") + " (" +
                                        runtime::join(kept.state_names) + ")") +
              " saved after 5 steps; 5 more steps after loading bit-identical";
  }));
  return results;
}

}  // namespace graft::checker::detail
