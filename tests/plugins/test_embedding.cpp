// The embedding layer: lookup values, the weight gradient by finite differences, zero dx, id
// checks that name the bad id, option errors, and a lookup table it must learn.
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gradient_check.hpp"
#include "util/errors.hpp"

namespace {

using graft::runtime::PluginRecord;
using graft::runtime::UserError;
using namespace graft::test;

const PluginRecord& embedding() { return builtin_registry().get(GRAFT_KIND_LAYER, "embedding"); }

void set(Tensor& t, const std::vector<float>& values) {
  REQUIRE(static_cast<int64_t>(values.size()) == t.numel());
  for (size_t i = 0; i < values.size(); ++i) t.f()[i] = values[i];
}

}  // namespace

TEST_CASE("embedding: shapes and the weight's init") {
  LayerUnderTest l(embedding(), "num_embeddings = 10\nembedding_dim = 4", {5}, 2);
  const graft_layer_desc& d = l.desc();
  REQUIRE(d.output.ndim == 2);
  CHECK(d.output.dims[0] == 5);
  CHECK(d.output.dims[1] == 4);
  REQUIRE(d.n_params == 1);
  CHECK(std::string(d.params[0].name) == "weight");
  CHECK(d.params[0].shape.dims[0] == 10);
  CHECK(d.params[0].shape.dims[1] == 4);
  CHECK(d.params[0].init == GRAFT_INIT_NORMAL);  // N(0, 1) as torch.nn.Embedding
  CHECK(d.params[0].gain == 1.0f);
  CHECK(d.params[0].is_bias_or_norm == 0);
  CHECK(d.workspace_per_sample == 0);
  LayerUnderTest gpt(embedding(), "num_embeddings = 10\nembedding_dim = 4\ninit_std = 0.02", {5},
                     2);
  CHECK(gpt.desc().params[0].gain == doctest::Approx(0.02));  // GPT-2's N(0, 0.02)
  LayerUnderTest grid(embedding(), "num_embeddings = 3\nembedding_dim = 2", {2, 3}, 1);
  CHECK(grid.desc().output.ndim == 3);  // (2, 3) ids give (2, 3, 2)
}

TEST_CASE("embedding: forward copies rows; backward adds rows; dx is zero") {
  LayerUnderTest l(embedding(), "num_embeddings = 4\nembedding_dim = 2", {3}, 2);
  set(l.params[0], {0, 1, 10, 11, 20, 21, 30, 31});
  set(l.x, {2, 0, 2, 3, 3, 1});
  l.forward(cpu_ctx());
  const std::vector<float> expected = {20, 21, 0, 1, 20, 21, 30, 31, 30, 31, 10, 11};
  for (int64_t i = 0; i < 12; ++i) CHECK(l.y.f()[i] == expected[i]);
  for (int64_t i = 0; i < l.dy.numel(); ++i) l.dy.f()[i] = float(i + 1);
  for (int64_t i = 0; i < l.dx.numel(); ++i) l.dx.f()[i] = std::numeric_limits<float>::quiet_NaN();
  l.backward(cpu_ctx());
  // Row 2 was read at positions 0 and 2, row 3 at 3 and 4, row 0 at 1, row 1 at 5.
  const std::vector<float> grad = {3, 4, 11, 12, 1 + 5, 2 + 6, 7 + 9, 8 + 10};
  for (int64_t i = 0; i < 8; ++i) CHECK(l.grads[0].f()[i] == grad[i]);
  for (int64_t i = 0; i < l.dx.numel(); ++i) CHECK(l.dx.f()[i] == 0.0f);
  l.backward(cpu_ctx(), false);  // accumulates, as micro-batches do
  CHECK(l.grads[0].f()[6] == 2 * grad[6]);
}

TEST_CASE("embedding: weight gradient by finite differences, repeated ids included") {
  constexpr int64_t n = 3, t = 4, v = 5, e = 3;
  std::mt19937 rng(9);
  LayerUnderTest l(embedding(), "num_embeddings = 5\nembedding_dim = 3", {t}, n);
  l.init_parameters(rng);
  std::uniform_int_distribution<int> id(0, v - 2);  // row v-1 is never read: its gradient is 0
  for (int64_t i = 0; i < n * t; ++i) l.x.f()[i] = float(id(rng));
  Tensor r = l.y;
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (int64_t i = 0; i < r.numel(); ++i) r.f()[i] = uniform(rng);
  l.forward(cpu_ctx());
  l.dy = r;
  l.backward(cpu_ctx());
  const Tensor analytic = l.grads[0];
  auto loss = [&] {
    l.forward(cpu_ctx());
    double total = 0.0;
    for (int64_t i = 0; i < l.y.numel(); ++i) total += double(l.y.f()[i]) * r.f()[i];
    return total;
  };
  GradientReport report;
  compare_gradient(
      "grad of weight", analytic.f(), v * e,
      [&](int64_t i, double step) {
        Tensor& w = l.params[0];
        const float original = w.f()[i];
        w.f()[i] = float(original + step);
        const double up = w.f()[i], loss_up = loss();
        w.f()[i] = float(original - step);
        const double down = w.f()[i], loss_down = loss();
        w.f()[i] = original;
        return (loss_up - loss_down) / (up - down);
      },
      GradientSettings{}, report);
  CHECK_MESSAGE(report.ok, report.summary());
  for (int64_t k = 0; k < e; ++k) CHECK(analytic.f()[(v - 1) * e + k] == 0.0f);
}

TEST_CASE("embedding: a bad id is an error that names it") {
  LayerUnderTest l(embedding(), "num_embeddings = 10\nembedding_dim = 2", {3}, 2);
  auto with_id = [&](float bad) {
    set(l.x, {1, 2, 3, 4, bad, 5});
    l.forward(cpu_ctx());
  };
  CHECK_THROWS_WITH_AS(with_id(2.5f),
                       doctest::Contains("id 2.5 (sample 1, position 1) is not an integer in "
                                         "[0, 10)"),
                       UserError);
  CHECK_THROWS_WITH_AS(with_id(10.0f), doctest::Contains("id 10 (sample 1"), UserError);
  CHECK_THROWS_WITH_AS(with_id(-1.0f), doctest::Contains("id -1 (sample 1"), UserError);
  CHECK_THROWS_WITH_AS(with_id(std::numeric_limits<float>::quiet_NaN()),
                       doctest::Contains("id nan"), UserError);
  CHECK_THROWS_WITH_AS(with_id(1e30f), doctest::Contains("id 1e+30"), UserError);
  with_id(9.0f);  // the last row is fine
  CHECK(l.y.f()[8] == l.params[0].f()[18]);
}

TEST_CASE("embedding: option and shape errors") {
  CHECK_THROWS_WITH_AS(LayerUnderTest(embedding(), "embedding_dim = 2", {3}, 1),
                       doctest::Contains("missing required key 'num_embeddings'"), UserError);
  CHECK_THROWS_WITH_AS(LayerUnderTest(embedding(), "num_embeddings = 2", {3}, 1),
                       doctest::Contains("missing required key 'embedding_dim'"), UserError);
  CHECK_THROWS_WITH_AS(LayerUnderTest(embedding(), "num_embeddings = 0\nembedding_dim = 2", {3}, 1),
                       doctest::Contains("out of range"), UserError);
  // Ids travel as float32, exact only up to 2^24.
  CHECK_THROWS_WITH_AS(
      LayerUnderTest(embedding(), "num_embeddings = 16777217\nembedding_dim = 2", {3}, 1),
      doctest::Contains("out of range"), UserError);
  CHECK_THROWS_WITH_AS(
      LayerUnderTest(embedding(), "num_embeddings = 4\nembedding_dim = 2", {1, 1, 1, 1, 1, 2}, 1),
      doctest::Contains("the output adds one"), UserError);
}

TEST_CASE("embedding: trained with mse and SGD it learns a lookup table") {
  constexpr int64_t n = 32, t = 3, v = 8, e = 4;
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> uniform(-2.0f, 2.0f);
  std::uniform_int_distribution<int> id(0, v - 1);
  std::vector<float> table(v * e);
  for (float& value : table) value = uniform(rng);
  LayerUnderTest model(embedding(), "num_embeddings = 8\nembedding_dim = 4", {t}, n);
  LossUnderTest mse(builtin_registry().get(GRAFT_KIND_LOSS, "mse"), "", {t, e},
                    float_targets({t, e}), n);
  model.init_parameters(rng);
  double first = 0.0, last = 0.0;
  for (int step = 0; step < 300; ++step) {
    for (int64_t i = 0; i < n * t; ++i) {  // a fresh batch of ids every step
      const int row = id(rng);
      model.x.f()[i] = float(row);
      for (int64_t k = 0; k < e; ++k) mse.target.f()[i * e + k] = table[row * e + k];
    }
    model.forward(cpu_ctx());
    mse.prediction = model.y;
    last = mse.forward(cpu_ctx()) / n;
    if (step == 0) first = last;
    mse.backward(cpu_ctx(), 1.0f / n);
    model.dy = mse.dprediction;
    model.zero_gradients();
    model.backward(cpu_ctx(), false);
    for (int64_t i = 0; i < v * e; ++i) model.params[0].f()[i] -= 1.0f * model.grads[0].f()[i];
  }
  MESSAGE("mse from " << first << " to " << last);
  CHECK(last * 1000.0 <= first);
  for (int64_t i = 0; i < v * e; ++i)
    CHECK(model.params[0].f()[i] == doctest::Approx(table[i]).epsilon(1e-2));
}
