// The activation plugins: finite-difference gradients, hand-computed values, agreement with
// linear's fused activations, option errors, and a small network that must learn with each.
#include <cmath>
#include <random>
#include <string>

#include "gradient_check.hpp"
#include "util/errors.hpp"

namespace {

using graft::runtime::PluginRecord;
using graft::runtime::UserError;
using namespace graft::test;

const char* const kElementwise[] = {"relu", "leaky_relu", "sigmoid", "tanh", "gelu"};

const PluginRecord& activation(const std::string& name) {
  return builtin_registry().get(GRAFT_KIND_ACTIVATION, name);
}
// y = f(x) for the listed x, through the plugin.
std::vector<float> apply(const std::string& name, const std::string& options, std::vector<float> x,
                         std::vector<int64_t> shape = {}) {
  if (shape.empty()) shape = {1, static_cast<int64_t>(x.size())};
  ActivationUnderTest a(activation(name), options, shape);
  std::copy(x.begin(), x.end(), a.x.f());
  a.forward(cpu_ctx());
  return {a.y.f(), a.y.f() + a.y.numel()};
}

void sgd_step(LayerUnderTest& l, float lr) {
  for (size_t k = 0; k < l.params.size(); ++k)
    for (int64_t i = 0; i < l.params[k].numel(); ++i) l.params[k].f()[i] -= lr * l.grads[k].f()[i];
}

}  // namespace

TEST_CASE("activations: finite-difference gradients") {
  for (const std::string name : kElementwise) {
    CAPTURE(name);
    GradientSettings settings;
    settings.input_scale = 3.0f;    // reach into the saturated tails of sigmoid and tanh
    settings.input_margin = 0.05f;  // stay off the kink of relu and leaky_relu at 0
    const std::string options = name == "leaky_relu" ? "slope = 0.2" : "";
    GradientReport report = check_activation(activation(name), options, {3, 7}, settings);
    CHECK_MESSAGE(report.ok, report.summary());
  }
  for (std::vector<int64_t> shape : {std::vector<int64_t>{3, 5}, std::vector<int64_t>{2, 3, 4}}) {
    GradientSettings settings;
    settings.input_scale = 2.0f;
    GradientReport report = check_activation(activation("softmax"), "", shape, settings);
    CHECK_MESSAGE(report.ok, report.summary());
  }
}

TEST_CASE("activations: element-wise flag") {
  for (const std::string name : kElementwise) {
    CAPTURE(name);
    CHECK(ActivationUnderTest(activation(name), "", {1, 1}).elementwise());
  }
  CHECK_FALSE(ActivationUnderTest(activation("softmax"), "", {1, 1}).elementwise());
}

TEST_CASE("activations: values on hand-computed cases") {
  using doctest::Approx;
  std::vector<float> y = apply("relu", "", {-1.0f, 0.0f, 2.0f});
  CHECK(y == std::vector<float>{0.0f, 0.0f, 2.0f});
  y = apply("leaky_relu", "slope = 0.1", {-2.0f, 3.0f});
  CHECK(y[0] == Approx(-0.2));
  CHECK(y[1] == Approx(3.0));
  CHECK(apply("leaky_relu", "", {-1.0f})[0] == Approx(-0.01));
  y = apply("sigmoid", "", {0.0f, 100.0f, -100.0f, 1.0f});
  CHECK(y[0] == Approx(0.5));
  CHECK(y[1] == Approx(1.0));
  CHECK(y[2] == Approx(0.0));
  CHECK(y[3] == Approx(0.7310585786));
  CHECK(apply("tanh", "", {0.5f})[0] == Approx(0.4621171573));
  y = apply("gelu", "", {1.0f, -1.0f, 0.0f});
  CHECK(y[0] == Approx(0.8413447461));
  CHECK(y[1] == Approx(-0.1586552539));
  CHECK(y[2] == 0.0f);
  y = apply("softmax", "", {1.0f, 2.0f, 3.0f, 1000.0f, 1001.0f, 1000.0f}, {2, 3});
  CHECK(y[0] == Approx(0.0900305732));
  CHECK(y[1] == Approx(0.2447284711));
  CHECK(y[2] == Approx(0.6652409558));
  CHECK(y[3] == Approx(0.2119415576));  // large logits: no overflow
  CHECK(y[4] == Approx(0.5761168847));
  CHECK(y[5] == Approx(0.2119415576));
}

TEST_CASE("softmax: normalises over the last axis only") {
  std::vector<float> x(24);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(static_cast<float>(i));
  const std::vector<float> y = apply("softmax", "", x, {2, 3, 4});
  for (int row = 0; row < 6; ++row) {
    double sum = 0.0;
    for (int j = 0; j < 4; ++j) sum += y[row * 4 + j];
    CHECK(sum == doctest::Approx(1.0));
  }
}

TEST_CASE("activations: linear's fused activation equals linear then the activation plugin") {
  for (const std::string name : kElementwise) {
    CAPTURE(name);
    constexpr int64_t n = 5, d = 6, h = 4;
    const std::string slope = "slope = 0.2\n";
    const std::string fused_options = slope + "units = 4\nactivation = \"" + name + "\"";
    LayerUnderTest fused(layer("linear"), fused_options, {d}, n);
    LayerUnderTest plain(layer("linear"), "units = 4", {d}, n);
    ActivationUnderTest act(activation(name), name == "leaky_relu" ? slope : "", {n, h});
    std::mt19937 rng(9);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    for (int64_t i = 0; i < fused.x.numel(); ++i) fused.x.f()[i] = uniform(rng);
    for (Tensor& p : fused.params)
      for (int64_t i = 0; i < p.numel(); ++i) p.f()[i] = uniform(rng);
    for (int64_t i = 0; i < fused.dy.numel(); ++i) fused.dy.f()[i] = uniform(rng);
    plain.x = fused.x;
    plain.params = fused.params;
    graft_exec_ctx ctx = cpu_ctx();
    fused.forward(ctx);
    fused.backward(ctx);
    plain.forward(ctx);
    act.x = plain.y;
    act.forward(ctx);
    act.dy = fused.dy;
    act.backward(ctx);
    plain.dy = act.dx;
    plain.backward(ctx);
    for (int64_t i = 0; i < fused.y.numel(); ++i)
      CHECK(fused.y.f()[i] == doctest::Approx(act.y.f()[i]).epsilon(1e-5));
    for (int64_t i = 0; i < fused.dx.numel(); ++i)
      CHECK(fused.dx.f()[i] == doctest::Approx(plain.dx.f()[i]).epsilon(1e-5));
    for (size_t k = 0; k < fused.grads.size(); ++k)
      for (int64_t i = 0; i < fused.grads[k].numel(); ++i)
        CHECK(fused.grads[k].f()[i] == doctest::Approx(plain.grads[k].f()[i]).epsilon(1e-5));
  }
}

TEST_CASE("activations: option errors") {
  const std::vector<int64_t> shape{1, 1};
  CHECK_THROWS_WITH_AS(ActivationUnderTest(activation("leaky_relu"), "slope = 2.0", shape),
                       doctest::Contains("out of range"), UserError);
  CHECK_THROWS_WITH_AS(ActivationUnderTest(activation("relu"), "slope = 0.1", shape),
                       doctest::Contains("unknown key 'slope'"), UserError);
}

// linear(16) -> activation -> linear(1) fits y = sin(3x) on [-1, 1] with mse and SGD. The
// best straight line leaves most of the variance, so beating it 10x needs the nonlinearity.
TEST_CASE("activations: linear + activation + linear learns sin(3x)") {
  constexpr int64_t n = 64;
  std::vector<float> xs(n), ts(n);
  for (int64_t i = 0; i < n; ++i) {
    xs[i] = -1.0f + 2.0f * static_cast<float>(i) / (n - 1);
    ts[i] = std::sin(3.0f * xs[i]);
  }
  // Least-squares line t = a x + b: x is centred, so b = mean t and a = <x, t> / <x, x>.
  double xx = 0, xt = 0, mean_t = 0;
  for (int64_t i = 0; i < n; ++i) {
    xx += xs[i] * xs[i];
    xt += xs[i] * ts[i];
    mean_t += ts[i] / n;
  }
  double line_loss = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double r = xt / xx * xs[i] + mean_t - ts[i];
    line_loss += r * r / n;
  }
  for (const std::string name : kElementwise) {
    CAPTURE(name);
    std::mt19937 rng(21);
    LayerUnderTest first(layer("linear"), "units = 16", {1}, n);
    ActivationUnderTest act(activation(name), "", {n, 16});
    LayerUnderTest second(layer("linear"), "units = 1", {16}, n);
    const PluginRecord& mse_record = builtin_registry().get(GRAFT_KIND_LOSS, "mse");
    LossUnderTest mse(mse_record, "", {1}, float_targets({1}), n);
    first.init_parameters(rng);
    second.init_parameters(rng);
    // Spread the first layer's kinks and centres over the input range.
    for (int64_t j = 0; j < 16; ++j) {
      first.params[0].f()[j] = (j % 2 ? 3.0f : -3.0f) * (0.5f + static_cast<float>(j) / 16.0f);
      first.params[1].f()[j] = -1.5f + 3.0f * static_cast<float>(j) / 15.0f;
    }
    std::copy(xs.begin(), xs.end(), first.x.f());
    std::copy(ts.begin(), ts.end(), mse.target.f());
    graft_exec_ctx ctx = cpu_ctx();
    double first_loss = 0.0, last_loss = 0.0;
    for (int step = 0; step < 3000; ++step) {
      first.forward(ctx);
      act.x = first.y;
      act.forward(ctx);
      second.x = act.y;
      second.forward(ctx);
      mse.prediction = second.y;
      last_loss = mse.forward(ctx) / n;
      if (step == 0) first_loss = last_loss;
      mse.backward(ctx, 1.0f / n);
      second.dy = mse.dprediction;
      second.zero_gradients();
      second.backward(ctx, true);
      act.dy = second.dx;
      act.backward(ctx);
      first.dy = act.dx;
      first.zero_gradients();
      first.backward(ctx, false);
      sgd_step(second, 0.1f);
      sgd_step(first, 0.1f);
    }
    MESSAGE(name << ": mse from " << first_loss << " to " << last_loss << " (best line "
                 << line_loss << ")");
    CHECK(last_loss * 10.0 <= first_loss);
    CHECK(last_loss * 10.0 <= line_loss);
  }
}
