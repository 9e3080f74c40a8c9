// The layer plugins linear, dropout and flatten: finite-difference gradients, hand-computed
// values, option errors and short training loops that must learn.
#include <cmath>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gradient_check.hpp"
#include "graft/random.h"
#include "util/errors.hpp"

namespace {

using graft::runtime::PluginRecord;
using graft::runtime::UserError;
using namespace graft::test;

const PluginRecord& loss(const std::string& name) {
  return builtin_registry().get(GRAFT_KIND_LOSS, name);
}

void set(Tensor& t, std::initializer_list<float> values) {
  REQUIRE(static_cast<int64_t>(values.size()) == t.numel());
  int64_t i = 0;
  for (float v : values) t.f()[i++] = v;
}

// Plain SGD written out: p -= lr * grad for every parameter.
void sgd_step(LayerUnderTest& l, float lr) {
  for (size_t k = 0; k < l.params.size(); ++k)
    for (int64_t i = 0; i < l.params[k].numel(); ++i) l.params[k].f()[i] -= lr * l.grads[k].f()[i];
}

graft_exec_ctx training_ctx(int64_t global_batch, int64_t step = 0, int32_t layer_index = 0) {
  graft_exec_ctx ctx = cpu_ctx(true);
  ctx.global_batch = global_batch;
  ctx.step = step;
  ctx.layer_index = layer_index;
  return ctx;
}

}  // namespace

TEST_CASE("linear: gradients with every fused activation, with and without bias") {
  for (const std::string activation : {"none", "relu", "leaky_relu", "sigmoid", "tanh", "gelu"})
    for (bool bias : {true, false})
      for (bool transposed : {false, true}) {
        CAPTURE(activation);
        CAPTURE(bias);
        CAPTURE(transposed);
        const std::string options = std::string("units = 4\nslope = 0.2\nactivation = \"") +
                                    activation + "\"\nbias = " + (bias ? "true" : "false") +
                                    "\ntranspose_weight = " + (transposed ? "true" : "false");
        GradientReport report = check_layer(layer("linear"), options, {2, 3});
        CHECK_MESSAGE(report.ok, report.summary());
        CHECK(report.checked == 3 * 6 + 6 * 4 + (bias ? 4 : 0));
      }
  GradientReport per_position =
      check_layer(layer("linear"), "units = 5\nflatten = false\ntranspose_weight = true", {3, 4});
  CHECK_MESSAGE(per_position.ok, per_position.summary());
}

TEST_CASE("linear: parameters, output shape and workspace") {
  LayerUnderTest plain(layer("linear"), "units = 5", {2, 3}, 2);
  const graft_layer_desc& d = plain.desc();
  CHECK(d.output.ndim == 1);
  CHECK(d.output.dims[0] == 5);
  REQUIRE(d.n_params == 2);
  CHECK(std::string(d.params[0].name) == "weight");
  CHECK(d.params[0].shape.ndim == 2);
  CHECK(d.params[0].shape.dims[0] == 6);  // (D, H): the (2, 3) input is flattened
  CHECK(d.params[0].shape.dims[1] == 5);
  CHECK(d.params[0].init == GRAFT_INIT_KAIMING_UNIFORM);
  CHECK(d.params[0].fan_in == 6);
  CHECK(d.params[0].fan_out == 5);
  // torch.nn.Linear's bound 1/sqrt(D) = gain * sqrt(3 / D).
  CHECK(d.params[0].gain * std::sqrt(3.0 / 6.0) == doctest::Approx(1.0 / std::sqrt(6.0)));
  CHECK(d.params[0].is_bias_or_norm == 0);
  CHECK(std::string(d.params[1].name) == "bias");
  CHECK(d.params[1].init == GRAFT_INIT_ZEROS);
  CHECK(d.params[1].is_bias_or_norm == 1);
  CHECK(d.workspace_per_sample == 0);

  LayerUnderTest fused(layer("linear"),
                       "units = 5\nbias = false\nactivation = \"gelu\"\n"
                       "init = \"xavier_uniform\"",
                       {7}, 2);
  REQUIRE(fused.desc().n_params == 1);
  CHECK(fused.desc().params[0].init == GRAFT_INIT_XAVIER_UNIFORM);
  CHECK(fused.desc().workspace_per_sample == 5);
  LayerUnderTest he(layer("linear"), "units = 2\ninit = \"kaiming_normal\"", {3}, 1);
  CHECK(he.desc().params[0].init == GRAFT_INIT_KAIMING_NORMAL);
  CHECK(he.desc().params[0].gain == 1.0f);
}

TEST_CASE("linear: forward and backward on a hand-computed case") {
  LayerUnderTest l(layer("linear"), "units = 3\nactivation = \"relu\"", {2}, 2);
  set(l.params[0], {1, 2, 3, 4, 5, 6});  // W (2, 3)
  set(l.params[1], {0.5f, -10, 0});
  set(l.x, {1, 1, -1, 2});
  graft_exec_ctx ctx = cpu_ctx();
  l.forward(ctx);
  // x W + b = [[5.5, -3, 9], [7.5, -2, 9]], then relu.
  const float expected_y[] = {5.5f, 0, 9, 7.5f, 0, 9};
  for (int i = 0; i < 6; ++i) CHECK(l.y.f()[i] == doctest::Approx(expected_y[i]));
  set(l.dy, {1, 1, 1, 1, 1, 1});
  l.backward(ctx);
  // dz = [[1, 0, 1], [1, 0, 1]]; dW = x^T dz; db = column sums; dx = dz W^T.
  const float expected_dw[] = {0, 0, 0, 3, 0, 3};
  for (int i = 0; i < 6; ++i) CHECK(l.grads[0].f()[i] == doctest::Approx(expected_dw[i]));
  const float expected_db[] = {2, 0, 2};
  for (int i = 0; i < 3; ++i) CHECK(l.grads[1].f()[i] == doctest::Approx(expected_db[i]));
  const float expected_dx[] = {4, 10, 4, 10};
  for (int i = 0; i < 4; ++i) CHECK(l.dx.f()[i] == doctest::Approx(expected_dx[i]));
  // A second backward adds to the gradients (micro-batches accumulate).
  l.backward(ctx);
  CHECK(l.grads[0].f()[3] == doctest::Approx(6));
  CHECK(l.grads[1].f()[0] == doctest::Approx(4));
}

TEST_CASE("linear: option errors name the key and the fix") {
  CHECK_THROWS_WITH_AS(LayerUnderTest(layer("linear"), "", {3}, 1),
                       doctest::Contains("missing required key 'units'"), UserError);
  CHECK_THROWS_WITH_AS(LayerUnderTest(layer("linear"), "units = 0", {3}, 1),
                       doctest::Contains("out of range"), UserError);
  CHECK_THROWS_WITH_AS(LayerUnderTest(layer("linear"), "units = 2\nactivation = \"relux\"", {3}, 1),
                       doctest::Contains("did you mean 'relu'"), UserError);
  CHECK_THROWS_WITH_AS(LayerUnderTest(layer("linear"), "units = 2\ninit = \"he\"", {3}, 1),
                       doctest::Contains("kaiming_uniform"), UserError);
  CHECK_THROWS_WITH_AS(LayerUnderTest(layer("linear"), "units = 2\nunit = 3", {3}, 1),
                       doctest::Contains("unknown key 'unit'"), UserError);
}

TEST_CASE("linear: trained with mse and SGD it fits a random linear map") {
  for (bool transposed : {false, true}) {  // W stored (D, H), or (H, D)
    CAPTURE(transposed);
    constexpr int64_t n = 64, d = 8, h = 3;
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    LayerUnderTest model(layer("linear"),
                         transposed ? "units = 3\ntranspose_weight = true" : "units = 3", {d}, n);
    LossUnderTest mse(loss("mse"), "", {h}, float_targets({h}), n);
    model.init_parameters(rng);
    std::vector<float> true_w(d * h), true_b(h);
    for (float& v : true_w) v = uniform(rng);
    for (float& v : true_b) v = uniform(rng);
    for (int64_t i = 0; i < model.x.numel(); ++i) model.x.f()[i] = uniform(rng);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < h; ++j) {
        float t = true_b[j];
        for (int64_t k = 0; k < d; ++k) t += model.x.f()[i * d + k] * true_w[k * h + j];
        mse.target.f()[i * h + j] = t;
      }
    graft_exec_ctx ctx = cpu_ctx();
    double first = 0.0, last = 0.0;
    for (int step = 0; step < 200; ++step) {
      model.forward(ctx);
      mse.prediction = model.y;
      last = mse.forward(ctx) / n;
      if (step == 0) first = last;
      mse.backward(ctx, 1.0f / n);
      model.dy = mse.dprediction;
      model.zero_gradients();
      model.backward(ctx, false);
      sgd_step(model, 1.0f);
    }
    MESSAGE("mse from " << first << " to " << last);
    CHECK(last * 100.0 <= first);
  }
}

TEST_CASE("linear: an MLP with cross_entropy separates a 2-class problem (XOR quadrants)") {
  constexpr int64_t n = 128;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  LayerUnderTest hidden(layer("linear"), "units = 16\nactivation = \"relu\"", {2}, n);
  LayerUnderTest output(layer("linear"), "units = 2", {16}, n);
  LossUnderTest cross_entropy(loss("cross_entropy"), "", {2}, class_targets(2), n);
  hidden.init_parameters(rng);
  output.init_parameters(rng);
  for (int64_t i = 0; i < n; ++i) {
    float a, b;
    do {  // a margin around the axes keeps the classes separable
      a = uniform(rng);
      b = uniform(rng);
    } while (std::fabs(a) < 0.1f || std::fabs(b) < 0.1f);
    hidden.x.f()[2 * i] = a;
    hidden.x.f()[2 * i + 1] = b;
    cross_entropy.target.i()[i] = a * b > 0 ? 1 : 0;
  }
  graft_exec_ctx ctx = cpu_ctx();
  double accuracy = 0.0, first_loss = 0.0, last_loss = 0.0;
  for (int step = 0; step < 1500; ++step) {
    hidden.forward(ctx);
    output.x = hidden.y;
    output.forward(ctx);
    cross_entropy.prediction = output.y;
    last_loss = cross_entropy.forward(ctx) / n;
    if (step == 0) first_loss = last_loss;
    accuracy = cross_entropy.metrics.at(0) / n;
    cross_entropy.backward(ctx, 1.0f / n);
    output.dy = cross_entropy.dprediction;
    output.zero_gradients();
    output.backward(ctx, true);
    hidden.dy = output.dx;
    hidden.zero_gradients();
    hidden.backward(ctx, false);
    sgd_step(output, 0.5f);
    sgd_step(hidden, 0.5f);
  }
  MESSAGE("cross entropy from " << first_loss << " to " << last_loss << ", accuracy " << accuracy);
  CHECK(accuracy >= 0.95);
}

TEST_CASE("dropout: gradients in training with a fixed context") {
  GradientSettings settings;
  settings.ctx = training_ctx(settings.batch, 5, 2);
  GradientReport report = check_layer(layer("dropout"), "p = 0.4", {4, 5}, settings);
  CHECK_MESSAGE(report.ok, report.summary());
}

TEST_CASE("dropout: kept fraction, scaling and the documented mask formula") {
  constexpr int64_t n = 200, f = 500;
  constexpr float p = 0.3f;
  LayerUnderTest l(layer("dropout"), "p = 0.3", {f}, n);
  for (int64_t i = 0; i < l.x.numel(); ++i) l.x.f()[i] = 1.0f;
  const graft_exec_ctx ctx = training_ctx(1000, 3, 4);
  auto with_offset = ctx;
  with_offset.row_offset = 300;
  l.forward(with_offset);
  int64_t kept = 0, wrong = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < f; ++j) {
      const float v = l.y.f()[i * f + j];
      const uint64_t index = static_cast<uint64_t>((3 * 1000 + 300 + i) * f + j);
      const bool dropped = graft_random_uniform(1234, 0x44524f50u ^ 4u, index) < p;
      if (v != 0.0f) ++kept;
      if (dropped ? v != 0.0f : std::fabs(v - 1.0f / (1.0f - p)) > 1e-6f) ++wrong;
    }
  CHECK(wrong == 0);
  CHECK(static_cast<double>(kept) / (n * f) == doctest::Approx(1.0 - p).epsilon(0.01));
  // backward multiplies by the same mask.
  for (int64_t i = 0; i < l.dy.numel(); ++i) l.dy.f()[i] = 2.0f;
  l.backward(with_offset);
  for (int64_t i = 0; i < l.dx.numel(); i += 997)
    CHECK(l.dx.f()[i] == doctest::Approx(2.0f * l.y.f()[i]));
}

TEST_CASE("dropout: evaluation and p = 0 are the identity") {
  LayerUnderTest l(layer("dropout"), "p = 0.5", {10}, 4);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (int64_t i = 0; i < l.x.numel(); ++i) l.x.f()[i] = uniform(rng);
  l.dy = l.x;
  l.forward(cpu_ctx(false));
  l.backward(cpu_ctx(false));
  for (int64_t i = 0; i < l.x.numel(); ++i) {
    CHECK(l.y.f()[i] == l.x.f()[i]);
    CHECK(l.dx.f()[i] == l.dy.f()[i]);
  }
  LayerUnderTest none(layer("dropout"), "p = 0.0", {10}, 4);
  none.x = l.x;
  none.forward(training_ctx(4));
  for (int64_t i = 0; i < l.x.numel(); ++i) CHECK(none.y.f()[i] == l.x.f()[i]);
  CHECK(none.desc().workspace_per_sample == 0);
}

TEST_CASE("dropout: the mask depends on (seed, step, layer, global row) and nothing else") {
  constexpr int64_t n = 8, f = 37;
  auto mask = [&](const graft_exec_ctx& ctx, int64_t rows) {
    LayerUnderTest l(layer("dropout"), "p = 0.5", {f}, rows);
    for (int64_t i = 0; i < l.x.numel(); ++i) l.x.f()[i] = 1.0f;
    l.forward(ctx);
    return std::vector<float>(l.y.f(), l.y.f() + l.y.numel());
  };
  const graft_exec_ctx base = training_ctx(n, 2, 1);
  const std::vector<float> whole = mask(base, n);
  CHECK(mask(base, n) == whole);
  auto changed = base;
  changed.step = 3;
  CHECK(mask(changed, n) != whole);
  changed = base;
  changed.layer_index = 2;
  CHECK(mask(changed, n) != whole);
  changed = base;
  changed.seed = 99;
  CHECK(mask(changed, n) != whole);
  // Split the batch in two halves as data_parallel or micro-batches would.
  auto first_half = base, second_half = base;
  second_half.row_offset = n / 2;
  std::vector<float> split = mask(first_half, n / 2);
  const std::vector<float> second = mask(second_half, n / 2);
  split.insert(split.end(), second.begin(), second.end());
  CHECK(split == whole);
}

TEST_CASE("dropout: p = 1 and a missing global batch are clear errors") {
  CHECK_THROWS_WITH_AS(LayerUnderTest(layer("dropout"), "p = 1.0", {3}, 1),
                       doctest::Contains("choose p in [0, 1)"), UserError);
  LayerUnderTest l(layer("dropout"), "p = 0.5", {3}, 2);
  CHECK_THROWS_WITH_AS(l.forward(cpu_ctx(true)), doctest::Contains("global_batch"), UserError);
}

TEST_CASE("flatten: (C, H, W) to C*H*W, copies both ways, gradients") {
  LayerUnderTest l(layer("flatten"), "", {2, 3, 4}, 2);
  CHECK(l.desc().output.ndim == 1);
  CHECK(l.desc().output.dims[0] == 24);
  CHECK(l.desc().n_params == 0);
  for (int64_t i = 0; i < l.x.numel(); ++i) l.x.f()[i] = static_cast<float>(i) - 7.5f;
  for (int64_t i = 0; i < l.dy.numel(); ++i) l.dy.f()[i] = static_cast<float>(i * i);
  l.forward(cpu_ctx());
  l.backward(cpu_ctx());
  for (int64_t i = 0; i < l.x.numel(); ++i) {
    CHECK(l.y.f()[i] == l.x.f()[i]);
    CHECK(l.dx.f()[i] == l.dy.f()[i]);
  }
  GradientReport report = check_layer(layer("flatten"), "", {2, 2, 3});
  CHECK_MESSAGE(report.ok, report.summary());
}

TEST_CASE("linear: a scratch workspace carries nothing, may be dy's memory; dx may be y's") {
  // The model lends such a workspace from its buffers (layer.h's graft_workspace_use): the
  // claim must hold. Overwriting the workspace between forward and backward, or handing
  // backward dy's memory as the workspace, changes no gradient; nor does writing dx over y
  // (GRAFT_ENTRY_DX_OVER_OUTPUT: the model does it for a layer no wider than its output).
  enum class Workspace { own, scribbled, over_dy, dx_over_y };
  for (const std::string activation : {"relu", "leaky_relu", "sigmoid", "tanh", "gelu"}) {
    CAPTURE(activation);
    const std::string options = "units = 4\nactivation = \"" + activation + "\"";
    auto run = [&](Workspace how) {
      LayerUnderTest l(layer("linear"), options, {3}, 5);
      std::mt19937 rng(7);
      l.init_parameters(rng);
      std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
      for (int64_t i = 0; i < l.x.numel(); ++i) l.x.f()[i] = uniform(rng);
      for (int64_t i = 0; i < l.dy.numel(); ++i) l.dy.f()[i] = uniform(rng);
      l.zero_gradients();
      l.forward(cpu_ctx());
      if (how == Workspace::scribbled)
        for (int64_t i = 0; i < l.workspace.numel(); ++i) l.workspace.f()[i] = 1e30f;
      void* own = l.workspace.get()->data;
      if (how == Workspace::over_dy) l.workspace.get()->data = l.dy.get()->data;
      void* own_dx = l.dx.get()->data;
      if (how == Workspace::dx_over_y) l.dx.get()->data = l.y.get()->data;  // 3 <= 4 floats
      l.backward(cpu_ctx());
      l.workspace.get()->data = own;
      l.dx.get()->data = own_dx;
      const float* dx = how == Workspace::dx_over_y ? l.y.f() : l.dx.f();
      std::vector<float> out(dx, dx + l.dx.numel());
      for (auto& g : l.grads) out.insert(out.end(), g.f(), g.f() + g.numel());
      return std::make_pair(l.desc().workspace_use, out);
    };
    const auto [use, clean] = run(Workspace::own);
    CHECK(use == (activation == "gelu" ? GRAFT_WORKSPACE_KEPT  // gelu keeps its pre-activation
                                       : GRAFT_WORKSPACE_SCRATCH_OVER_DY));
    CHECK(run(Workspace::dx_over_y).second == clean);
    if (use == GRAFT_WORKSPACE_KEPT) continue;
    CHECK(run(Workspace::scribbled).second == clean);
    CHECK(run(Workspace::over_dy).second == clean);
  }
}
