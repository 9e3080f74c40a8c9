// The loss plugins mse, mae, cross_entropy and bce_with_logits: finite-difference gradients,
// hand-computed sums and metrics, the sums-over-rows contract, and clear errors on bad targets.
#include <cmath>
#include <random>
#include <string>

#include "gradient_check.hpp"
#include "util/errors.hpp"

namespace {

using doctest::Approx;
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

Tensor random_float_target(std::vector<int64_t> shape, float low, float high, uint32_t seed) {
  Tensor t(std::move(shape));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(low, high);
  for (int64_t i = 0; i < t.numel(); ++i) t.f()[i] = uniform(rng);
  return t;
}

}  // namespace

TEST_CASE("losses: finite-difference gradients") {
  GradientSettings settings;
  settings.batch = 4;
  for (const std::string name : {"mse", "mae"}) {
    CAPTURE(name);
    const Tensor target = random_float_target({4, 2, 3}, -1.0f, 1.0f, 3);
    GradientReport report =
        check_loss(loss(name), "", {2, 3}, float_targets({2, 3}), target, settings);
    CHECK_MESSAGE(report.ok, report.summary());
  }
  {
    Tensor target = random_float_target({4, 3}, 0.0f, 1.0f, 4);
    target.f()[0] = 0.0f;
    target.f()[1] = 1.0f;
    GradientSettings wide = settings;
    wide.input_scale = 4.0f;
    GradientReport report =
        check_loss(loss("bce_with_logits"), "", {3}, float_targets({3}), target, wide);
    CHECK_MESSAGE(report.ok, report.summary());
  }
  for (const std::string options : {"", "label_smoothing = 0.1"}) {
    CAPTURE(options);
    Tensor labels({4}, DLDataType{kDLInt, 32, 1});
    const int32_t classes[] = {0, 4, 2, 2};
    std::copy(classes, classes + 4, labels.i());
    GradientSettings wide = settings;
    wide.input_scale = 3.0f;
    GradientReport report =
        check_loss(loss("cross_entropy"), options, {5}, class_targets(5), labels, wide);
    CHECK_MESSAGE(report.ok, report.summary());
  }
}

TEST_CASE("mse and mae: sums over rows of per-row means") {
  graft_exec_ctx ctx = cpu_ctx();
  LossUnderTest mse(loss("mse"), "", {2}, float_targets({2}), 2);
  set(mse.prediction, {1, 2, 3, 5});
  set(mse.target, {0, 2, 3, 3});
  CHECK(mse.forward(ctx) == Approx(0.5 + 2.0));
  mse.backward(ctx, 1.0f);  // 2 (p - t) / 2
  CHECK(std::vector<float>(mse.dprediction.f(), mse.dprediction.f() + 4) ==
        std::vector<float>{1, 0, 0, 2});
  CHECK(mse.metric_names().empty());

  LossUnderTest mae(loss("mae"), "", {2}, float_targets({2}), 2);
  mae.prediction = mse.prediction;
  mae.target = mse.target;
  CHECK(mae.forward(ctx) == Approx(0.5 + 1.0));
  mae.backward(ctx, 0.5f);  // scale * sign(p - t) / 2
  CHECK(std::vector<float>(mae.dprediction.f(), mae.dprediction.f() + 4) ==
        std::vector<float>{0.25f, 0, 0, 0.25f});
}

TEST_CASE("cross_entropy: loss, accuracy and gradient on a hand-computed case") {
  graft_exec_ctx ctx = cpu_ctx();
  LossUnderTest ce(loss("cross_entropy"), "", {3}, class_targets(3), 2);
  CHECK(ce.metric_names() == std::vector<std::string>{"accuracy"});
  set(ce.prediction, {1, 2, 3, 1, 2, 3});
  ce.target.i()[0] = 2;  // predicted right
  ce.target.i()[1] = 0;  // predicted wrong
  CHECK(ce.forward(ctx) == Approx(0.40760596444438 + 2.40760596444438));
  CHECK(ce.metrics.at(0) == 1.0);
  ce.backward(ctx, 1.0f);
  const double softmax[] = {0.09003057317038, 0.24472847105480, 0.66524095577482};
  for (int j = 0; j < 3; ++j) {
    CHECK(ce.dprediction.f()[j] == Approx(softmax[j] - (j == 2 ? 1.0 : 0.0)));
    CHECK(ce.dprediction.f()[3 + j] == Approx(softmax[j] - (j == 0 ? 1.0 : 0.0)));
  }

  LossUnderTest smooth(loss("cross_entropy"), "label_smoothing = 0.1", {3}, class_targets(3), 1);
  set(smooth.prediction, {1, 2, 3});
  smooth.target.i()[0] = 2;
  // lse - 0.9 * z_label - 0.1 * mean(z)
  CHECK(smooth.forward(ctx) == Approx(0.50760596444438));
  smooth.backward(ctx, 1.0f);
  CHECK(smooth.dprediction.f()[0] == Approx(softmax[0] - 0.1 / 3));
  CHECK(smooth.dprediction.f()[2] == Approx(softmax[2] - 0.9 - 0.1 / 3));

  LossUnderTest huge(loss("cross_entropy"), "", {3}, class_targets(3), 1);
  set(huge.prediction, {1000, 0, -1000});
  huge.target.i()[0] = 1;
  CHECK(huge.forward(ctx) == Approx(1000.0));  // stable log-sum-exp: no inf or nan
}

TEST_CASE("bce_with_logits: stable loss and element accuracy on a hand-computed case") {
  graft_exec_ctx ctx = cpu_ctx();
  LossUnderTest bce(loss("bce_with_logits"), "", {2}, float_targets({2}), 2);
  CHECK(bce.metric_names() == std::vector<std::string>{"accuracy"});
  set(bce.prediction, {0, 2, 100, -3});
  set(bce.target, {1, 1, 0, 0});
  // Row means: (log 2 + log(1 + e^-2)) / 2 and (100 + log(1 + e^-3)) / 2.
  CHECK(bce.forward(ctx) == Approx(50.434331271588334));
  CHECK(bce.metrics.at(0) == Approx(0.5 + 0.5));
  bce.backward(ctx, 1.0f);  // (sigmoid(z) - t) / 2
  CHECK(bce.dprediction.f()[0] == Approx(-0.25));
  CHECK(bce.dprediction.f()[2] == Approx(0.5));
}

TEST_CASE("losses: a batch's sums equal the sums of its two halves") {
  graft_exec_ctx ctx = cpu_ctx();
  std::mt19937 rng(8);
  std::uniform_real_distribution<float> uniform(-2.0f, 2.0f);
  LossUnderTest whole(loss("cross_entropy"), "", {4}, class_targets(4), 6);
  LossUnderTest top(loss("cross_entropy"), "", {4}, class_targets(4), 3);
  LossUnderTest bottom(loss("cross_entropy"), "", {4}, class_targets(4), 3);
  for (int64_t i = 0; i < whole.prediction.numel(); ++i) whole.prediction.f()[i] = uniform(rng);
  for (int64_t i = 0; i < 6; ++i) whole.target.i()[i] = static_cast<int32_t>(i % 4);
  std::copy(whole.prediction.f(), whole.prediction.f() + 12, top.prediction.f());
  std::copy(whole.prediction.f() + 12, whole.prediction.f() + 24, bottom.prediction.f());
  std::copy(whole.target.i(), whole.target.i() + 3, top.target.i());
  std::copy(whole.target.i() + 3, whole.target.i() + 6, bottom.target.i());
  const double sum = whole.forward(ctx);
  CHECK(sum == Approx(top.forward(ctx) + bottom.forward(ctx)));
  CHECK(whole.metrics[0] == top.metrics[0] + bottom.metrics[0]);
}

TEST_CASE("losses: wrong targets and shapes are clear errors") {
  const std::vector<int64_t> three{3};
  CHECK_THROWS_WITH_AS(LossUnderTest(loss("cross_entropy"), "", three, float_targets(three), 1),
                       doctest::Contains("targets must be int32 class labels"), UserError);
  CHECK_THROWS_WITH_AS(LossUnderTest(loss("cross_entropy"), "", three, float_targets(three), 1),
                       doctest::Contains("use mse, mae or bce_with_logits"), UserError);
  CHECK_THROWS_WITH_AS(LossUnderTest(loss("cross_entropy"), "", three, class_targets(4), 1),
                       doctest::Contains("units = 4"), UserError);
  CHECK_THROWS_WITH_AS(
      LossUnderTest(loss("cross_entropy"), "label_smoothing = 1.0", three, class_targets(3), 1),
      doctest::Contains("label_smoothing must be below 1"), UserError);
  CHECK_THROWS_WITH_AS(LossUnderTest(loss("mse"), "", three, class_targets(3), 1),
                       doctest::Contains("use cross_entropy"), UserError);
  CHECK_THROWS_WITH_AS(LossUnderTest(loss("mae"), "", three, float_targets({2}), 1),
                       doctest::Contains("make the last layer's output match"), UserError);
  CHECK_THROWS_WITH_AS(LossUnderTest(loss("bce_with_logits"), "", three, class_targets(3), 1),
                       doctest::Contains("float32"), UserError);

  LossUnderTest ce(loss("cross_entropy"), "", three, class_targets(3), 2);
  ce.target.i()[1] = 7;
  CHECK_THROWS_WITH_AS(ce.forward(cpu_ctx()), doctest::Contains("row 1 has label 7"), UserError);
  CHECK_THROWS_WITH_AS(ce.backward(cpu_ctx(), 1.0f), doctest::Contains("outside the classes 0..2"),
                       UserError);
}
