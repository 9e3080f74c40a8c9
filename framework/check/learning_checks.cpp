// The `learns` checks: the plugin inside the runtime's Model, next to built-in layers, trained
// on a small task whose answer the model can represent. A layer or activation student learns a
// teacher of its own architecture; a loss trains a linear model on labels a linear rule makes.
#include <algorithm>
#include <cmath>
#include <memory>
#include <random>

#include "check/check_common.hpp"
#include "check/gradient_check.hpp"
#include "comm/local.hpp"
#include "device/host_api.hpp"
#include "model/model.hpp"
#include "model/model_survey.hpp"
#include "plugin/strategy_instance.hpp"
#include "util/errors.hpp"

namespace graft::checker::detail {

namespace {

using runtime::Failure;
using runtime::PluginRecord;

constexpr int64_t kSamples = 64;  // one full batch, trained on repeatedly
constexpr int kSteps = 300;

struct Part {
  const PluginRecord* record;
  toml::table options;
};

// A model the check builds: layers, loss and optimizer with their options.
struct Task {
  std::vector<Part> layers;
  Part loss, optimizer;
  std::vector<int64_t> input;
  graft_target_info target;
  double lr;
};

const PluginRecord& builtin(const runtime::Registry& registry, graft_kind kind,
                            const std::string& name) {
  if (const PluginRecord* r = registry.find(kind, name)) return *r;
  throw Failure("this check puts the plugin next to the built-in " + runtime::kind_name(kind) +
                " '" + name +
                "', which is not loaded; run a graft whose built-in plugins are "
                "installed beside it, or pass their folder with --plugin-dir");
}

toml::table table(const std::string& text) { return toml::parse(text, std::string("check")); }

std::string describe(const Task& task) {
  std::vector<std::string> names;
  for (const Part& p : task.layers) names.push_back(p.record->name);
  return runtime::join(names, " -> ") + " on input " + shape_text(task.input) + ", " +
         task.loss.record->name + " loss, " + task.optimizer.record->name + " lr " +
         number(task.lr);
}

runtime::PluginChoice choice(const Part& part, const std::string& section) {
  runtime::PluginChoice c{};
  c.record = part.record;
  c.options = bind(*part.record, part.options);
  c.section = section;
  return c;
}

// With a strategy, the model is built with the layout its plan() gives for a world of one, as
// a session would build it.
std::unique_ptr<runtime::Model> build(const Task& task, uint64_t seed,
                                      runtime::StrategyInstance* strategy = nullptr) {
  std::vector<runtime::PluginChoice> layers;
  for (size_t i = 0; i < task.layers.size(); ++i)
    layers.push_back(choice(task.layers[i], "[[model.layers]] #" + std::to_string(i + 1)));
  runtime::ModelSettings settings;
  settings.max_batch = kSamples;
  settings.seed = seed;
  settings.schedule.lr = task.lr;
  graft_shape input{};
  for (int64_t d : task.input) input.dims[input.ndim++] = d;
  if (strategy) {
    const runtime::LayoutPlan layout =
        runtime::plan_layout(*strategy, runtime::survey_layers(layers, input), kSamples, 1);
    settings.max_batch = std::max<int64_t>(layout.plan.rows_per_slot, kSamples);
    layout.apply_to(settings);
  }
  return std::make_unique<runtime::Model>(std::move(layers), choice(task.loss, "[loss]"),
                                          choice(task.optimizer, "[optimizer]"), input, task.target,
                                          settings);
}

graft_exec_ctx model_context(bool training, int64_t step) {
  graft_exec_ctx ctx = cpu_context(training);
  ctx.step = step;
  ctx.global_batch = kSamples;
  return ctx;
}

// The mean loss over the batch in evaluation mode.
double evaluate(runtime::Model& model, const Tensor& x, const Tensor& y) {
  const graft_exec_ctx ctx = model_context(false, 0);
  graft_step_result result{sizeof(graft_step_result), 0.0, {}, 0};
  const DLTensor* prediction = model.forward(ctx, 0, model.layer_count(), *x.get());
  model.loss(ctx, *prediction, *y.get(), result, false);
  return result.loss_sum / double(result.rows);
}

// The lecture's step, as the `single` strategy takes it.
void train(runtime::Model& model, const Tensor& x, const Tensor& y) {
  for (int step = 0; step < kSteps; ++step) {
    const graft_exec_ctx ctx = model_context(true, step);
    graft_step_result result{sizeof(graft_step_result), 0.0, {}, 0};
    model.zero_grad();
    const DLTensor* prediction = model.forward(ctx, 0, model.layer_count(), *x.get());
    const DLTensor* dprediction = model.loss(ctx, *prediction, *y.get(), result, true);
    model.backward(ctx, 0, model.layer_count(), *dprediction, nullptr, nullptr);
    model.optimizer_step(ctx);
  }
}

void judge(double before, double after, double factor, const std::string& how, CheckResult& r) {
  r.value = "loss " + number(before) + " -> " + number(after) + " (" + number(before / after) +
            "x, needs " + number(factor) + "x) " + how;
  if (!(std::isfinite(after) && after * factor <= before)) {
    r.outcome = Outcome::fail;
    r.message = "the loss did not fall by " + number(factor) + "x";
  }
}

// Inputs uniform in [-1, 1]; targets: a teacher model of the same architecture (another seed),
// standardised, so the student can represent them exactly.
void teacher_student(const Task& task, bool integer_ids, double factor, CheckResult& r) {
  std::vector<int64_t> dims{kSamples};
  dims.insert(dims.end(), task.input.begin(), task.input.end());
  Tensor x(dims), y({kSamples, 1});
  std::mt19937 rng(17);
  GradientSettings inputs;
  if (integer_ids) inputs.inputs = GradientSettings::Inputs::ids;
  fill_inputs(x, rng, inputs);
  std::unique_ptr<runtime::Model> teacher = build(task, 2);
  const DLTensor* out =
      teacher->forward(model_context(false, 0), 0, teacher->layer_count(), *x.get());
  const float* values = static_cast<const float*>(out->data);
  double mean = 0.0, square = 0.0;
  for (int64_t i = 0; i < kSamples; ++i) mean += values[i] / double(kSamples);
  for (int64_t i = 0; i < kSamples; ++i) square += std::pow(values[i] - mean, 2) / double(kSamples);
  const double scale = square > 1e-12 ? 1.0 / std::sqrt(square) : 1.0;
  for (int64_t i = 0; i < kSamples; ++i) y.f()[i] = float((values[i] - mean) * scale);

  std::unique_ptr<runtime::Model> student = build(task, 1);
  const double before = evaluate(*student, x, y);
  train(*student, x, y);
  judge(before, evaluate(*student, x, y), factor,
        "after " + std::to_string(kSteps) +
            " steps learning a teacher of the same architecture: " + describe(task),
        r);
}

Task regression_task(const runtime::Registry& registry, std::vector<int64_t> input) {
  Task task{{},
            {&builtin(registry, GRAFT_KIND_LOSS, "mse"), {}},
            {&builtin(registry, GRAFT_KIND_OPTIMIZER, "adam"), {}},
            std::move(input),
            float_targets({1}),
            0.01};
  return task;
}

}  // namespace

CheckResult layer_learns(const runtime::Registry& registry, const PluginRecord& record,
                         const toml::table& options, const std::vector<int64_t>& input_shape,
                         bool integer_ids, const CheckSettings& settings) {
  return run_check(record, "learns", [&](CheckResult& r) {
    const PluginRecord& linear = builtin(registry, GRAFT_KIND_LAYER, "linear");
    Task task = regression_task(registry, input_shape);
    // A flat input gets a linear layer in front, so the layer's dx is used in training too.
    if (input_shape.size() == 1 && !integer_ids)
      task.layers.push_back({&linear, table("units = " + std::to_string(input_shape[0]))});
    task.layers.push_back({&record, options});
    task.layers.push_back({&linear, table("units = 1")});
    teacher_student(task, integer_ids, settings.learn_factor, r);
  });
}

CheckResult activation_learns(const runtime::Registry& registry, const PluginRecord& record,
                              const toml::table& options, const CheckSettings& settings) {
  return run_check(record, "learns", [&](CheckResult& r) {
    const PluginRecord& linear = builtin(registry, GRAFT_KIND_LAYER, "linear");
    Task task = regression_task(registry, {8});
    task.layers = {
        {&linear, table("units = 16")}, {&record, options}, {&linear, table("units = 1")}};
    teacher_student(task, false, settings.learn_factor, r);
  });
}

CheckResult loss_learns(const runtime::Registry& registry, const PluginRecord& record,
                        const toml::table& options, int64_t prediction_features,
                        const graft_target_info& target, const CheckSettings& settings) {
  return run_check(record, "learns", [&](CheckResult& r) {
    const PluginRecord& linear = builtin(registry, GRAFT_KIND_LAYER, "linear");
    // Plain SGD, unlike Adam, notices a gradient of the wrong scale (a backward that ignores
    // `scale` takes steps 64 times too long and diverges).
    Task task{{{&linear, table("units = " + std::to_string(prediction_features))}},
              {&record, options},
              {&builtin(registry, GRAFT_KIND_OPTIMIZER, "sgd"), {}},
              {8},
              target,
              0.5};
    const bool classes = target.classes > 0;
    std::vector<int64_t> target_dims{kSamples};
    if (!classes) target_dims.push_back(prediction_features);
    Tensor x({kSamples, 8}), y(target_dims, target.dtype);
    std::mt19937 rng(19);
    fill_random(x, rng, 1.0f);
    // A linear rule labels the data: each float target is 1 where its score is positive, each
    // class label is the highest-scoring class.
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> rule(static_cast<size_t>(8 * prediction_features));
    for (float& w : rule) w = normal(rng);
    for (int64_t n = 0; n < kSamples; ++n) {
      int64_t best = 0;
      double best_score = -1e300;
      for (int64_t k = 0; k < prediction_features; ++k) {
        double score = 0.0;
        for (int64_t d = 0; d < 8; ++d)
          score += x.f()[n * 8 + d] * rule[d * prediction_features + k];
        if (!classes) y.f()[n * prediction_features + k] = score > 0.0 ? 1.0f : 0.0f;
        if (score > best_score) best_score = score, best = k;
      }
      if (classes) y.i()[n] = static_cast<int32_t>(best);
    }
    std::unique_ptr<runtime::Model> model = build(task, 1);
    const double before = evaluate(*model, x, y);
    train(*model, x, y);
    judge(before, evaluate(*model, x, y), settings.loss_learn_factor,
          "after " + std::to_string(kSteps) + " steps fitting " +
              (classes ? "class labels" : "0/1 targets") + " of a linear rule: " + describe(task),
          r);
  });
}

CheckResult strategy_learns(const runtime::Registry& registry, const PluginRecord& record,
                            const toml::table& options, const CheckSettings& settings) {
  return run_check(record, "learns", [&](CheckResult& r) {
    const PluginRecord& linear = builtin(registry, GRAFT_KIND_LAYER, "linear");
    Task task = regression_task(registry, {8});
    task.layers = {{&linear, table("units = 16\nactivation = \"tanh\"")},
                   {&linear, table("units = 1")}};
    const runtime::BoundOptions bound = bind(record, options);
    runtime::LocalCommunicator local;  // a world of one, as `graft train` without mpirun
    const graft_world world{sizeof(graft_world), 0,  1, runtime::comm_handle(local),
                            runtime::comm_api(), 0.0};
    runtime::StrategyInstance strategy(record, bound, world, runtime::StrategyUse::check);
    std::vector<int64_t> dims{kSamples, 8};
    Tensor x(dims), y({kSamples, 1});
    std::mt19937 rng(23);
    fill_random(x, rng, 1.0f);
    for (int64_t n = 0; n < kSamples; ++n)
      y.f()[n] = std::sin(2.0f * x.f()[n * 8] + x.f()[n * 8 + 1]);
    std::unique_ptr<runtime::Model> model = build(task, 1, &strategy);
    auto run = [&](bool training, int64_t step) {
      const graft_exec_ctx ctx = model_context(training, step);
      graft_step_result result{sizeof(graft_step_result), 0.0, {}, 0};
      if (training)
        result = strategy.train_step(*model, ctx, *x.get(), *y.get());
      else
        strategy.eval_step(*model, ctx, *x.get(), *y.get(), result);
      if (result.rows != kSamples)
        throw Failure("the strategy's step reported " + std::to_string(result.rows) +
                      " rows for a "
                      "global batch of " +
                      std::to_string(kSamples));
      return result.loss_sum / double(result.rows);
    };
    const double before = run(false, 0);
    for (int step = 0; step < kSteps; ++step) run(true, step);
    judge(before, run(false, 0), settings.learn_factor,
          "after " + std::to_string(kSteps) +
              " steps through the strategy fitting sin(2 x0 + x1): " + describe(task),
          r);
  });
}

}  // namespace graft::checker::detail
