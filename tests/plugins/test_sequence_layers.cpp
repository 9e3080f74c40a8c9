// What a sequence (T, C) needs of the layers around attention: positional_embedding (values,
// finite-difference gradients, generation offsets, errors, learning), linear applied at each
// position (flatten = false) and cross_entropy over every position of (T) labels.
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gradient_check.hpp"
#include "util/errors.hpp"

namespace {

using graft::runtime::PluginRecord;
using graft::runtime::UserError;
using namespace graft::test;

// T int32 labels of `classes` per sample.
graft_target_info sequence_targets(int64_t positions, int64_t classes) {
  graft_target_info info = class_targets(classes);
  info.shape.ndim = 1;
  info.shape.dims[0] = positions;
  return info;
}

// The values of `from` into `to`, which has as many elements in another shape.
void copy_values(const Tensor& from, Tensor& to) {
  REQUIRE(from.numel() == to.numel());
  for (int64_t i = 0; i < from.numel(); ++i) to.f()[i] = from.f()[i];
}

}  // namespace

TEST_CASE("positional_embedding: adds the row of each position, from `first` in generation") {
  LayerUnderTest l(layer("positional_embedding"), "max_positions = 5", {3, 2}, 2);
  REQUIRE(l.desc().n_params == 1);
  CHECK(l.desc().params[0].shape.dims[0] == 5);
  CHECK(l.desc().params[0].init == GRAFT_INIT_NORMAL);
  CHECK(l.desc().params[0].gain == doctest::Approx(0.02));
  for (int64_t i = 0; i < 10; ++i) l.params[0].f()[i] = float(10 * (i / 2) + i % 2);
  for (int64_t i = 0; i < l.x.numel(); ++i) l.x.f()[i] = 0.5f;
  l.forward(cpu_ctx());
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t t = 0; t < 3; ++t)
      for (int64_t c = 0; c < 2; ++c) CHECK(l.y.f()[(n * 3 + t) * 2 + c] == 10 * t + c + 0.5f);

  LayerUnderTest one(layer("positional_embedding"), "max_positions = 5", {1, 2}, 1);
  one.params[0] = l.params[0];
  for (int64_t first = 0; first < 5; ++first) {
    one.set_positions(first, 5);
    one.x.f()[0] = one.x.f()[1] = 0.0f;
    one.forward(cpu_ctx(false));
    CHECK(one.y.f()[0] == 10 * first);
    CHECK(one.y.f()[1] == 10 * first + 1);
  }
  CHECK_THROWS_WITH_AS(one.set_positions(5, 6), doctest::Contains("max_positions = 5"), UserError);
  one.set_positions(-1, 0);
  one.forward(cpu_ctx(false));
  CHECK(one.y.f()[0] == 0.0f);
}

TEST_CASE("positional_embedding: gradients by finite differences; errors name the option") {
  GradientReport report = check_layer(layer("positional_embedding"), "max_positions = 6", {4, 3});
  CHECK_MESSAGE(report.ok, report.summary());
  CHECK_THROWS_WITH_AS(
      LayerUnderTest(layer("positional_embedding"), "max_positions = 3", {4, 2}, 1),
      doctest::Contains("set max_positions >= 4"), UserError);
  CHECK_THROWS_WITH_AS(LayerUnderTest(layer("positional_embedding"), "max_positions = 3", {4}, 1),
                       doctest::Contains("not a sequence (T, C)"), UserError);
}

TEST_CASE("positional_embedding: trained with mse and SGD it learns a vector per position") {
  constexpr int64_t t = 4, c = 3, n = 8;
  std::mt19937 rng(3);
  LayerUnderTest l(layer("positional_embedding"), "max_positions = 4", {t, c}, n);
  l.init_parameters(rng);
  auto target = [](int64_t position, int64_t k) { return std::sin(float(position * c + k)); };
  double first_loss = 0.0, loss = 0.0;
  for (int step = 0; step < 60; ++step) {
    fill_uniform(l.x, rng, -0.1f, 0.1f);  // noise the table must see through
    l.forward(cpu_ctx());
    loss = 0.0;
    for (int64_t e = 0; e < l.y.numel(); ++e) {
      const float d = l.y.f()[e] - target((e / c) % t, e % c);
      loss += d * d / double(l.y.numel());
      l.dy.f()[e] = 2.0f * d / float(l.y.numel());
    }
    if (step == 0) first_loss = loss;
    l.zero_gradients();
    l.backward(cpu_ctx());
    for (int64_t i = 0; i < l.params[0].numel(); ++i)
      l.params[0].f()[i] -= 5.0f * l.grads[0].f()[i];
  }
  CHECK(first_loss > 0.2);
  CHECK(loss < 0.01);  // the noise alone leaves 0.0033
}

TEST_CASE("linear with flatten = false maps the last axis at each position") {
  LayerUnderTest seq(layer("linear"), "units = 3\nflatten = false\nactivation = \"gelu\"", {4, 5},
                     2);
  CHECK(seq.desc().output.ndim == 2);
  CHECK(seq.desc().output.dims[0] == 4);
  CHECK(seq.desc().output.dims[1] == 3);
  CHECK(seq.desc().params[0].shape.dims[0] == 5);
  LayerUnderTest row(layer("linear"), "units = 3\nactivation = \"gelu\"", {5}, 8);
  std::mt19937 rng(5);
  seq.init_parameters(rng);
  row.params = seq.params;
  fill_uniform(seq.x, rng, -2.0f, 2.0f);
  copy_values(seq.x, row.x);  // the 8 positions as 8 samples
  seq.forward(cpu_ctx());
  row.forward(cpu_ctx());
  for (int64_t e = 0; e < seq.y.numel(); ++e) CHECK(seq.y.f()[e] == row.y.f()[e]);

  for (const char* options :
       {"units = 3\nflatten = false", "units = 2\nflatten = false\nactivation = \"gelu\""}) {
    CAPTURE(options);
    GradientReport report = check_layer(layer("linear"), options, {3, 4});
    CHECK_MESSAGE(report.ok, report.summary());
  }
  // One position (generation's model) keeps its axis: (1, 5) -> (1, 3).
  LayerUnderTest one(layer("linear"), "units = 3\nflatten = false", {1, 5}, 2);
  CHECK(one.desc().output.ndim == 2);
  CHECK(one.desc().output.dims[1] == 3);
  // Flattened (the default), the same input is one vector of 20.
  LayerUnderTest whole(layer("linear"), "units = 3", {4, 5}, 2);
  CHECK(whole.desc().output.ndim == 1);
  CHECK(whole.desc().params[0].shape.dims[0] == 20);
}

TEST_CASE("cross_entropy over positions: the mean over a sample's T labels") {
  const PluginRecord& ce = builtin_registry().get(GRAFT_KIND_LOSS, "cross_entropy");
  constexpr int64_t t = 3, c = 4, n = 2;
  LossUnderTest seq(ce, "", {t, c}, sequence_targets(t, c), n);
  LossUnderTest rows(ce, "", {c}, class_targets(c), n * t);
  std::mt19937 rng(8);
  fill_uniform(seq.prediction, rng, -3.0f, 3.0f);
  copy_values(seq.prediction, rows.prediction);
  for (int64_t i = 0; i < n * t; ++i) seq.target.i()[i] = rows.target.i()[i] = int32_t(i % c);
  graft_exec_ctx ctx = cpu_ctx();
  CHECK(seq.forward(ctx) == doctest::Approx(rows.forward(ctx) / t));
  CHECK(seq.metrics.at(0) == doctest::Approx(rows.metrics.at(0) / t));
  seq.backward(ctx, 1.0f);
  rows.backward(ctx, 1.0f);
  for (int64_t e = 0; e < seq.dprediction.numel(); ++e)
    CHECK(seq.dprediction.f()[e] == doctest::Approx(rows.dprediction.f()[e] / t));

  LossUnderTest three(ce, "", {t, c}, sequence_targets(t, c), 3);  // check_loss's batch
  for (int64_t i = 0; i < 3 * t; ++i) three.target.i()[i] = int32_t((7 * i) % c);
  GradientReport report = check_loss(ce, "", {t, c}, sequence_targets(t, c), three.target);
  CHECK_MESSAGE(report.ok, report.summary());
  CHECK_THROWS_WITH_AS(LossUnderTest(ce, "", {t + 1, c}, sequence_targets(t, c), 1),
                       doctest::Contains("one row of logits per label"), UserError);
}
