// The `residual` block of the model (y = x + f(x)): gradients through the whole Model against
// finite differences (dx = dy + f's dx reaches the layer before the block), nesting, parameter
// names, the shape check, and that its forward is the sum it promises.
#include <cmath>
#include <random>

#include "gradient_check.hpp"
#include "model/model.hpp"
#include "test_support.hpp"
#include "util/errors.hpp"

using namespace graft::runtime;
using graft::test::options;
using graft::test::Tensor;

namespace {

PluginChoice choice(graft_kind kind, const std::string& name, const std::string& text = "") {
  const PluginRecord* r = graft::test::builtin_registry().find(kind, name);
  REQUIRE(r);
  return PluginChoice{r, options(kind, name, text), "[test " + name + "]"};
}

PluginChoice linear(int64_t units, const std::string& activation = "") {
  std::string text = "units = " + std::to_string(units);
  if (!activation.empty()) text += "\nactivation = \"" + activation + "\"";
  return choice(GRAFT_KIND_LAYER, "linear", text);
}

PluginChoice block(std::vector<PluginChoice> inner) {
  return PluginChoice::residual_block(std::move(inner), "[test residual]");
}

ModelSettings settings(int64_t batch) {
  ModelSettings s;
  s.max_batch = batch;
  s.seed = 5;
  s.schedule.lr = 0.1;
  return s;
}

// (D) -> linear D -> residual(linear D relu, linear D) -> linear 3, with mse on (3,) targets.
// The linear before the block makes its weight gradient depend on the block's dx.
std::unique_ptr<Model> residual_model(int64_t d, int64_t batch, bool nested = false) {
  std::vector<PluginChoice> inner;
  inner.push_back(linear(d, "relu"));
  if (nested) {
    std::vector<PluginChoice> deeper;
    deeper.push_back(linear(d, "tanh"));
    inner.push_back(block(std::move(deeper)));
  }
  inner.push_back(linear(d));
  std::vector<PluginChoice> layers;
  layers.push_back(linear(d));
  layers.push_back(block(std::move(inner)));
  layers.push_back(linear(3));
  graft_target_info target{sizeof(graft_target_info), graft_shape{1, {3}},
                           DLDataType{kDLFloat, 32, 1}, 0};
  return std::make_unique<Model>(std::move(layers), choice(GRAFT_KIND_LOSS, "mse"),
                                 choice(GRAFT_KIND_OPTIMIZER, "sgd"), graft_shape{1, {d}}, target,
                                 settings(batch));
}

// The mean loss of the model on (x, target), and with `gradients` its parameter gradients.
double mean_loss(Model& m, const Tensor& x, const Tensor& target, bool gradients) {
  graft_exec_ctx ctx = graft::test::cpu_ctx();
  const int64_t rows = x.shape()[0];
  ctx.global_batch = rows;
  graft_step_result r{};
  r.struct_size = sizeof r;
  if (gradients) m.zero_grad();
  const DLTensor* y = m.forward(ctx, 0, m.layer_count(), *x.get());
  const DLTensor* dy = m.loss(ctx, *y, *target.get(), r, gradients);
  if (gradients) m.backward(ctx, 0, m.layer_count(), *dy, nullptr, nullptr);
  return r.loss_sum / double(rows);
}

void check_gradients(Model& m, int64_t d, int64_t batch) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  Tensor x({batch, d}), target({batch, 3});
  for (int64_t i = 0; i < x.numel(); ++i) x.f()[i] = uniform(rng);
  for (int64_t i = 0; i < target.numel(); ++i) target.f()[i] = uniform(rng);
  mean_loss(m, x, target, true);
  std::vector<float> analytic(m.gradient_data(), m.gradient_data() + m.parameter_count());
  float* params = m.parameter_data();
  auto numeric = [&](int64_t i, double step) {
    const float saved = params[i];
    params[i] = float(saved + step);
    const double plus = mean_loss(m, x, target, false);
    params[i] = float(saved - step);
    const double minus = mean_loss(m, x, target, false);
    params[i] = saved;
    return (plus - minus) / (double(float(saved + step)) - double(float(saved - step)));
  };
  graft::test::GradientSettings gs;
  gs.epsilon = 1e-2;
  gs.tolerance = 1e-2;
  graft::test::GradientReport report;
  for (const ParameterInfo& p : m.parameters())
    graft::test::compare_gradient(
        p.name, analytic.data() + p.offset, int64_t(p.numel),
        [&](int64_t i, double step) { return numeric(int64_t(p.offset) + i, step); }, gs, report);
  INFO(report.summary());
  CHECK(report.ok);
  CHECK(report.checked == int64_t(m.parameter_count()));
}

}  // namespace

TEST_CASE("a residual block's gradients match finite differences through the model") {
  const int64_t d = 5, batch = 4;
  auto m = residual_model(d, batch);
  REQUIRE(m->layer_count() == 3);
  CHECK(m->layer_name(1) == "residual");
  CHECK(m->layer_parameter_count(1) == 2 * (d * d + d));
  check_gradients(*m, d, batch);
}

TEST_CASE("nested residual blocks: gradients, names and the layer listing") {
  const int64_t d = 4, batch = 3;
  auto m = residual_model(d, batch, /*nested=*/true);
  check_gradients(*m, d, batch);
  std::vector<std::string> names;
  for (const ParameterInfo& p : m->parameters()) names.push_back(p.name);
  CHECK(names ==
        std::vector<std::string>{"layers.0.weight", "layers.0.bias", "layers.1.layers.0.weight",
                                 "layers.1.layers.0.bias", "layers.1.layers.1.layers.0.weight",
                                 "layers.1.layers.1.layers.0.bias", "layers.1.layers.2.weight",
                                 "layers.1.layers.2.bias", "layers.2.weight", "layers.2.bias"});
  for (const ParameterInfo& p : m->parameters())
    CHECK(p.layer == (p.name.rfind("layers.1.", 0) == 0 ? 1 : p.name[7] - '0'));
  auto rows = m->layer_rows();
  REQUIRE(rows.size() == 7);
  std::vector<int> depths;
  for (const auto& r : rows) depths.push_back(r.depth);
  CHECK(depths == std::vector<int>{0, 0, 1, 1, 2, 1, 0});
  CHECK(rows[1].name == "residual");
  CHECK(rows[1].parameters == 3 * (d * d + d));
  CHECK(rows[3].parameters == d * d + d);  // the inner block holds one linear
}

TEST_CASE("a residual block's output is its input plus its inner layers' output") {
  // residual(linear with zero weights) must be the identity: the inner output is the bias, 0.
  const int64_t d = 3, batch = 2;
  std::vector<PluginChoice> inner;
  inner.push_back(linear(d));
  std::vector<PluginChoice> layers;
  layers.push_back(block(std::move(inner)));
  graft_target_info target{sizeof(graft_target_info), graft_shape{1, {d}},
                           DLDataType{kDLFloat, 32, 1}, 0};
  Model m(std::move(layers), choice(GRAFT_KIND_LOSS, "mse"), choice(GRAFT_KIND_OPTIMIZER, "sgd"),
          graft_shape{1, {d}}, target, settings(batch));
  Tensor x({batch, d});
  for (int64_t i = 0; i < x.numel(); ++i) x.f()[i] = float(i) - 2.5f;
  const ParameterInfo& weight = m.parameters()[0];
  REQUIRE(weight.name == "layers.0.layers.0.weight");
  graft_exec_ctx ctx = graft::test::cpu_ctx();
  ctx.global_batch = batch;
  // With its initial weights W (D in, D out), y = x + x W; with W = 0, y = x.
  const DLTensor* y = m.forward(ctx, 0, 1, *x.get());
  const float* w = m.parameter_data() + weight.offset;  // (D in, D out)
  for (int64_t r = 0; r < batch; ++r)
    for (int64_t j = 0; j < d; ++j) {
      double expected = x.f()[r * d + j];
      for (int64_t k = 0; k < d; ++k) expected += double(x.f()[r * d + k]) * w[k * d + j];
      CHECK(static_cast<const float*>(y->data)[r * d + j] ==
            doctest::Approx(expected).epsilon(1e-6));
    }
  std::fill(m.parameter_data() + weight.offset, m.parameter_data() + weight.offset + weight.numel,
            0.0f);
  y = m.forward(ctx, 0, 1, *x.get());
  for (int64_t i = 0; i < x.numel(); ++i) CHECK(static_cast<const float*>(y->data)[i] == x.f()[i]);
}

TEST_CASE("inner layers that change the shape are refused, naming the block and both shapes") {
  std::vector<PluginChoice> inner;
  inner.push_back(linear(8, "relu"));
  inner.push_back(linear(6));
  std::vector<PluginChoice> layers;
  layers.push_back(PluginChoice::residual_block(std::move(inner), "[[model.layers]] #0"));
  graft_target_info target{sizeof(graft_target_info), graft_shape{0, {}}, DLDataType{kDLInt, 32, 1},
                           4};
  try {
    Model m(std::move(layers), choice(GRAFT_KIND_LOSS, "cross_entropy"),
            choice(GRAFT_KIND_OPTIMIZER, "sgd"), graft_shape{1, {4}}, target, settings(2));
    FAIL("no error");
  } catch (const UserError& e) {
    const std::string message = e.what();
    INFO(message);
    CHECK(message.find("[[model.layers]] #0 (residual block)") != std::string::npos);
    CHECK(message.find("end with shape (6,)") != std::string::npos);
    CHECK(message.find("input is (4,)") != std::string::npos);
  }
  std::vector<PluginChoice> empty;
  std::vector<PluginChoice> outer;
  outer.push_back(PluginChoice::residual_block(std::move(empty), "[[model.layers]] #0"));
  try {
    Model m(std::move(outer), choice(GRAFT_KIND_LOSS, "cross_entropy"),
            choice(GRAFT_KIND_OPTIMIZER, "sgd"), graft_shape{1, {4}}, target, settings(2));
    FAIL("no error");
  } catch (const UserError& e) {
    CHECK(std::string(e.what()).find("has no inner layers") != std::string::npos);
  }
}
