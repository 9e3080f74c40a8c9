// The normalisation layers batch_norm and layer_norm: finite-difference gradients, values
// against double-precision references and PyTorch, running statistics, train vs eval, errors.
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gradient_check.hpp"
#include "util/errors.hpp"

namespace {

using graft::runtime::PluginRecord;
using graft::runtime::UserError;
using namespace graft::test;

void set(Tensor& t, const std::vector<float>& values) {
  REQUIRE(static_cast<int64_t>(values.size()) == t.numel());
  for (size_t i = 0; i < values.size(); ++i) t.f()[i] = values[i];
}

// Per channel c of x (N, C, S): mean and biased variance in double.
struct ChannelStatistics {
  std::vector<double> mean, variance;
};
ChannelStatistics channel_statistics(const Tensor& x, int64_t n, int64_t c, int64_t s) {
  ChannelStatistics out{std::vector<double>(c), std::vector<double>(c)};
  for (int64_t k = 0; k < c; ++k) {
    double total = 0.0, squares = 0.0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < s; ++j) total += x.f()[(i * c + k) * s + j];
    out.mean[k] = total / double(n * s);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < s; ++j) {
        const double d = x.f()[(i * c + k) * s + j] - out.mean[k];
        squares += d * d;
      }
    out.variance[k] = squares / double(n * s);
  }
  return out;
}

// y = (x - mean) / sqrt(variance + eps) * weight + bias per channel, in double.
void check_normalised(const Tensor& x, const Tensor& y, const ChannelStatistics& statistics,
                      const float* weight, const float* bias, int64_t n, int64_t c, int64_t s) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < c; ++k)
      for (int64_t j = 0; j < s; ++j) {
        const int64_t e = (i * c + k) * s + j;
        const double expected =
            (x.f()[e] - statistics.mean[k]) / std::sqrt(statistics.variance[k] + 1e-5) * weight[k] +
            bias[k];
        CHECK(y.f()[e] == doctest::Approx(expected).epsilon(1e-5));
      }
}

}  // namespace

TEST_CASE("batch_norm: gradients in training through the batch statistics") {
  for (const std::vector<int64_t>& shape : {std::vector<int64_t>{3, 2, 3}, std::vector<int64_t>{5}})
    for (const bool affine : {true, false}) {
      CAPTURE(shape.size());
      CAPTURE(affine);
      GradientSettings settings;
      settings.batch = 4;
      settings.input_scale = 2.0f;
      GradientReport report =
          check_layer(layer("batch_norm"), affine ? "" : "affine = false", shape, settings);
      CHECK_MESSAGE(report.ok, report.summary());
      // dx, then weight and bias, then the running statistics (which have no gradient: 0 = 0).
      const int64_t features = shape.size() == 3 ? 18 : 5, channels = shape[0];
      CHECK(report.checked == 4 * features + (affine ? 4 : 2) * channels);
    }
}

TEST_CASE("batch_norm: gradients in evaluation, where the running statistics are constants") {
  std::mt19937 rng(3);
  LayerUnderTest l(layer("batch_norm"), "", {3, 2, 2}, 4);
  for (Tensor* t : {&l.x, &l.params[0], &l.params[1], &l.params[2]}) fill_uniform(*t, rng, -1, 1);
  fill_uniform(l.params[3], rng, 0.5f, 2.0f);  // running_var > 0
  Tensor r = l.y;
  fill_uniform(r, rng, -1, 1);
  const graft_exec_ctx eval = cpu_ctx(false);
  l.forward(eval);
  l.dy = r;
  l.backward(eval);
  const Tensor analytic_dx = l.dx;
  const std::vector<Tensor> analytic = l.grads;
  auto loss = [&] {
    l.forward(eval);
    double total = 0.0;
    for (int64_t i = 0; i < l.y.numel(); ++i) total += double(l.y.f()[i]) * r.f()[i];
    return total;
  };
  auto numeric = [&](Tensor& t) {
    return [&loss, &t](int64_t i, double step) {
      const float original = t.f()[i];
      t.f()[i] = float(original + step);
      const double up = t.f()[i], loss_up = loss();
      t.f()[i] = float(original - step);
      const double down = t.f()[i], loss_down = loss();
      t.f()[i] = original;
      return (loss_up - loss_down) / (up - down);
    };
  };
  GradientSettings settings;
  GradientReport report;
  compare_gradient("dx", analytic_dx.f(), analytic_dx.numel(), numeric(l.x), settings, report);
  compare_gradient("weight", analytic[0].f(), 3, numeric(l.params[0]), settings, report);
  compare_gradient("bias", analytic[1].f(), 3, numeric(l.params[1]), settings, report);
  CHECK_MESSAGE(report.ok, report.summary());
  for (const Tensor* g : {&analytic[2], &analytic[3]})  // buffers get no gradient
    for (int64_t i = 0; i < 3; ++i) CHECK(g->f()[i] == 0.0f);
}

TEST_CASE("batch_norm: parameters and buffers") {
  LayerUnderTest l(layer("batch_norm"), "", {4, 5, 5}, 2);
  const graft_layer_desc& d = l.desc();
  CHECK(d.output.ndim == 3);
  CHECK(d.output.dims[0] == 4);
  CHECK(d.workspace_per_sample == 0);  // backward recomputes the statistics from x
  REQUIRE(d.n_params == 4);
  const char* names[] = {"weight", "bias", "running_mean", "running_var"};
  const int32_t inits[] = {GRAFT_INIT_ONES, GRAFT_INIT_ZEROS, GRAFT_INIT_ZEROS, GRAFT_INIT_ONES};
  for (size_t k = 0; k < 4; ++k) {
    CAPTURE(k);
    CHECK(std::string(d.params[k].name) == names[k]);
    CHECK(d.params[k].init == inits[k]);
    CHECK(d.params[k].shape.ndim == 1);
    CHECK(d.params[k].shape.dims[0] == 4);
    CHECK(d.params[k].is_bias_or_norm == 1);
    CHECK(d.params[k].is_buffer == (k >= 2 ? 1 : 0));
  }
  LayerUnderTest plain(layer("batch_norm"), "affine = false", {6}, 2);
  REQUIRE(plain.desc().n_params == 2);
  CHECK(std::string(plain.desc().params[0].name) == "running_mean");
  CHECK(plain.desc().params[1].is_buffer == 1);
}

TEST_CASE("batch_norm: training forward normalises with the batch statistics") {
  constexpr int64_t n = 5, c = 3, s = 4 * 2;
  std::mt19937 rng(8);
  LayerUnderTest l(layer("batch_norm"), "", {c, 4, 2}, n);
  fill_uniform(l.x, rng, -3.0f, 5.0f);
  fill_uniform(l.params[0], rng, 0.5f, 2.0f);
  fill_uniform(l.params[1], rng, -1.0f, 1.0f);
  l.forward(cpu_ctx(true));
  check_normalised(l.x, l.y, channel_statistics(l.x, n, c, s), l.params[0].f(), l.params[1].f(), n,
                   c, s);
}

TEST_CASE("batch_norm: running statistics follow PyTorch's formula over k steps") {
  constexpr int64_t n = 6, d = 4, steps = 5;
  constexpr double momentum = 0.3;
  std::mt19937 rng(21);
  LayerUnderTest l(layer("batch_norm"), "momentum = 0.3", {d}, n);
  std::vector<double> mean(d, 0.0), variance(d, 1.0);  // the buffers' initial values
  set(l.params[2], {0, 0, 0, 0});
  set(l.params[3], {1, 1, 1, 1});
  for (int64_t step = 0; step < steps; ++step) {
    fill_uniform(l.x, rng, -2.0f + float(step), 3.0f);
    l.forward(cpu_ctx(true));
    const ChannelStatistics batch = channel_statistics(l.x, n, d, 1);
    for (int64_t k = 0; k < d; ++k) {
      mean[k] = (1 - momentum) * mean[k] + momentum * batch.mean[k];
      variance[k] = (1 - momentum) * variance[k] + momentum * batch.variance[k] * n / (n - 1);
    }
  }
  for (int64_t k = 0; k < d; ++k) {
    CHECK(l.params[2].f()[k] == doctest::Approx(mean[k]).epsilon(1e-6));
    CHECK(l.params[3].f()[k] == doctest::Approx(variance[k]).epsilon(1e-6));
  }
  // Evaluation normalises with them and leaves them as they are.
  fill_uniform(l.x, rng, -1.0f, 1.0f);
  l.forward(cpu_ctx(false));
  check_normalised(l.x, l.y, ChannelStatistics{mean, variance}, l.params[0].f(), l.params[1].f(), n,
                   d, 1);
  CHECK(l.params[2].f()[0] == doctest::Approx(mean[0]).epsilon(1e-6));
}

TEST_CASE("batch_norm: train and eval differ, and both match torch 1.13") {
  // Produced once with torch 1.13 (python3-torch): torch.nn.BatchNorm2d(2, momentum=0.1) with
  // weight [1.5, -0.5], bias [0.1, 0.2] on this (2, 2, 1, 3) input, one train() call, then eval().
  LayerUnderTest l(layer("batch_norm"), "", {2, 1, 3}, 2);
  set(l.x, {0.5f, -1.25f, 2.0f, 3.5f, 0.0f, -0.75f, 1.0f, 4.0f, -2.5f, 0.25f, 1.5f, -3.0f});
  set(l.params[0], {1.5f, -0.5f});
  set(l.params[1], {0.1f, 0.2f});
  set(l.params[3], {1.0f, 1.0f});  // running_var's init (running_mean's zeros are there)
  const std::vector<float> torch_train = {0.011147767f, -1.2327834f, 1.0773745f,   -0.61676407f,
                                          0.26282799f,  0.45131201f, 0.36655667f,  2.4990101f,
                                          -2.1213057f,  0.19999999f, -0.11414003f, 1.016764f};
  const std::vector<float> torch_eval = {0.64794439f, -1.5438331f, 2.5266109f,   -1.2817395f,
                                         0.21066f,    0.53045988f, 1.2741665f,   5.0314994f,
                                         -3.1093884f, 0.10406003f, -0.42893979f, 1.4898596f};
  l.forward(cpu_ctx(true));
  for (int64_t i = 0; i < 12; ++i)
    CHECK(l.y.f()[i] == doctest::Approx(torch_train[i]).epsilon(1e-5));
  CHECK(l.params[2].f()[0] == doctest::Approx(0.0625));
  CHECK(l.params[2].f()[1] == doctest::Approx(0.025));
  CHECK(l.params[3].f()[0] == doctest::Approx(1.4343749));
  CHECK(l.params[3].f()[1] == doctest::Approx(1.375));
  l.forward(cpu_ctx(false));
  for (int64_t i = 0; i < 12; ++i)
    CHECK(l.y.f()[i] == doctest::Approx(torch_eval[i]).epsilon(1e-5));
  CHECK(std::fabs(torch_eval[7] - torch_train[7]) > 1.0f);
}

TEST_CASE("batch_norm: option and shape errors") {
  CHECK_THROWS_WITH_AS(LayerUnderTest(layer("batch_norm"), "momentum = 1.5", {3}, 2),
                       doctest::Contains("out of range"), UserError);
  CHECK_THROWS_WITH_AS(LayerUnderTest(layer("batch_norm"), "eps = 0.0", {3}, 2),
                       doctest::Contains("positive eps"), UserError);
  CHECK_THROWS_WITH_AS(LayerUnderTest(layer("batch_norm"), "momentun = 0.5", {3}, 2),
                       doctest::Contains("did you mean 'momentum'"), UserError);
  CHECK_THROWS_WITH_AS(LayerUnderTest(layer("batch_norm"), "", {}, 2),
                       doctest::Contains("no channel axis"), UserError);
  // One sample of (D,) has one value per channel: no variance to train with; eval is fine.
  LayerUnderTest single(layer("batch_norm"), "", {3}, 1);
  CHECK_THROWS_WITH_AS(single.forward(cpu_ctx(true)),
                       doctest::Contains("more than one value per channel"), UserError);
  single.forward(cpu_ctx(false));
}

TEST_CASE("batch_norm: between linear layers it fits what a plain MLP cannot (badly scaled XOR)") {
  // Two features a thousand times larger and smaller than 1: no single learning rate suits both.
  constexpr int64_t n = 128, steps = 400;
  auto data = [](std::mt19937& rng, Tensor& x, Tensor& labels) {
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    for (int64_t i = 0; i < n; ++i) {
      float a, b;
      do {
        a = uniform(rng);
        b = uniform(rng);
      } while (std::fabs(a) < 0.1f || std::fabs(b) < 0.1f);
      x.f()[2 * i] = 1000.0f * a;
      x.f()[2 * i + 1] = 0.001f * b;
      labels.i()[i] = a * b > 0 ? 1 : 0;
    }
  };
  // {type, options, input shape}; returns the accuracy on fresh data in evaluation mode.
  using Spec = std::vector<std::pair<std::string, std::string>>;
  auto train = [&](const Spec& spec, float lr) {
    std::mt19937 rng(5);
    std::vector<std::unique_ptr<LayerUnderTest>> model;
    std::vector<int64_t> shape{2};
    for (const auto& [type, options] : spec) {
      model.push_back(std::make_unique<LayerUnderTest>(layer(type), options, shape, n));
      model.back()->init_parameters(rng);
      const graft_shape& out = model.back()->desc().output;
      shape.assign(out.dims, out.dims + out.ndim);
    }
    LossUnderTest loss(builtin_registry().get(GRAFT_KIND_LOSS, "cross_entropy"), "", {2},
                       class_targets(2), n);
    auto run = [&](const graft_exec_ctx& ctx) {
      for (size_t k = 0; k < model.size(); ++k) {
        if (k > 0) model[k]->x = model[k - 1]->y;
        model[k]->forward(ctx);
      }
      loss.prediction = model.back()->y;
      return loss.forward(ctx) / n;
    };
    data(rng, model[0]->x, loss.target);
    for (int64_t step = 0; step < steps; ++step) {
      if (!std::isfinite(run(cpu_ctx(true)))) return 0.0;  // diverged
      loss.backward(cpu_ctx(true), 1.0f / n);
      model.back()->dy = loss.dprediction;
      for (size_t k = model.size(); k-- > 0;) {
        model[k]->zero_gradients();
        model[k]->backward(cpu_ctx(true), k > 0);
        if (k > 0) model[k - 1]->dy = model[k]->dx;
        for (size_t p = 0; p < model[k]->params.size(); ++p) {
          if (model[k]->desc().params[p].is_buffer) continue;
          Tensor& param = model[k]->params[p];
          const Tensor& grad = model[k]->grads[p];
          for (int64_t i = 0; i < param.numel(); ++i) param.f()[i] -= lr * grad.f()[i];
        }
      }
    }
    data(rng, model[0]->x, loss.target);  // held-out points, through the running statistics
    run(cpu_ctx(false));
    return loss.metrics.at(0) / n;
  };
  const Spec normalised = {{"batch_norm", ""},
                           {"linear", "units = 16\nactivation = \"relu\""},
                           {"batch_norm", ""},
                           {"linear", "units = 2"}};
  const Spec plain = {{"linear", "units = 16\nactivation = \"relu\""}, {"linear", "units = 2"}};
  const double with_norm = train(normalised, 0.5f);
  double best_plain = 0.0;
  for (float lr : {1e-7f, 1e-6f, 1e-5f, 1e-4f, 1e-3f, 1e-2f, 1e-1f})
    best_plain = std::max(best_plain, train(plain, lr));
  MESSAGE("held-out accuracy with batch_norm " << with_norm << ", plain MLP at its best lr "
                                               << best_plain);
  CHECK(with_norm >= 0.95);
  CHECK(with_norm >= best_plain + 0.15);
}

TEST_CASE("layer_norm: gradients over all axes, the last one or two, with and without affine") {
  struct Case {
    std::string options;
    std::vector<int64_t> shape;
  };
  for (const Case& c :
       {Case{"", {2, 3, 4}}, Case{"normalized_dims = 1", {2, 3, 4}},
        Case{"normalized_dims = 2\nelementwise_affine = false", {2, 3, 4}}, Case{"", {7}}}) {
    CAPTURE(c.options);
    GradientSettings settings;
    settings.input_scale = 2.0f;
    GradientReport report = check_layer(layer("layer_norm"), c.options, c.shape, settings);
    CHECK_MESSAGE(report.ok, report.summary());
  }
}

TEST_CASE("layer_norm: parameters follow the normalised axes; workspace holds row statistics") {
  LayerUnderTest all(layer("layer_norm"), "", {2, 3, 4}, 2);
  REQUIRE(all.desc().n_params == 2);
  CHECK(all.desc().params[0].shape.ndim == 3);
  CHECK(all.desc().params[0].init == GRAFT_INIT_ONES);
  CHECK(all.desc().params[1].init == GRAFT_INIT_ZEROS);
  CHECK(all.desc().params[0].is_bias_or_norm == 1);
  CHECK(all.desc().params[1].is_bias_or_norm == 1);
  CHECK(all.desc().params[0].is_buffer == 0);
  CHECK(all.desc().workspace_per_sample == 2);
  LayerUnderTest last(layer("layer_norm"), "normalized_dims = 2", {2, 3, 4}, 2);
  CHECK(last.desc().params[0].shape.ndim == 2);
  CHECK(last.desc().params[0].shape.dims[0] == 3);
  CHECK(last.desc().params[0].shape.dims[1] == 4);
  CHECK(last.desc().workspace_per_sample == 4);  // 2 rows of 12 per sample
  LayerUnderTest plain(layer("layer_norm"), "elementwise_affine = false", {5}, 2);
  CHECK(plain.desc().n_params == 0);
}

TEST_CASE("layer_norm: values against a double reference and torch 1.13") {
  constexpr int64_t n = 3, rows = 2 * 3, length = 4;
  std::mt19937 rng(4);
  LayerUnderTest l(layer("layer_norm"), "normalized_dims = 1", {2, 3, length}, n);
  fill_uniform(l.x, rng, -4.0f, 6.0f);
  fill_uniform(l.params[0], rng, 0.5f, 2.0f);
  fill_uniform(l.params[1], rng, -1.0f, 1.0f);
  l.forward(cpu_ctx(false));
  for (int64_t r = 0; r < n * rows; ++r) {
    const float* x = l.x.f() + r * length;
    double mean = 0.0, variance = 0.0;
    for (int64_t k = 0; k < length; ++k) mean += x[k] / double(length);
    for (int64_t k = 0; k < length; ++k) variance += (x[k] - mean) * (x[k] - mean) / length;
    for (int64_t k = 0; k < length; ++k) {
      const double expected =
          (x[k] - mean) / std::sqrt(variance + 1e-5) * l.params[0].f()[k] + l.params[1].f()[k];
      CHECK(l.y.f()[r * length + k] == doctest::Approx(expected).epsilon(1e-5));
    }
  }
  // Produced once with torch 1.13 (python3-torch): torch.nn.LayerNorm([3]) with weight
  // [1, 2, -1] and bias [0, 0.5, 1] on this (2, 2, 3) input.
  LayerUnderTest t(layer("layer_norm"), "normalized_dims = 1", {2, 3}, 2);
  set(t.x, {0.5f, -1.25f, 2.0f, 3.5f, 0.0f, -0.75f, 1.0f, 4.0f, -2.5f, 0.25f, 1.5f, -3.0f});
  set(t.params[0], {1.0f, 2.0f, -1.0f});
  set(t.params[1], {0.0f, 0.5f, 1.0f});
  const std::vector<float> torch_y = {0.062745392f, -2.0098162f, -0.19216263f, 1.3947539f,
                                      -0.48982543f, 1.8998413f,  0.062745512f, 2.8843303f,
                                      2.2549107f,   0.35149932f, 2.521121f,    2.3620598f};
  t.forward(cpu_ctx(true));
  for (int64_t i = 0; i < 12; ++i) CHECK(t.y.f()[i] == doctest::Approx(torch_y[i]).epsilon(1e-5));
}

TEST_CASE("layer_norm: option and shape errors") {
  CHECK_THROWS_WITH_AS(LayerUnderTest(layer("layer_norm"), "normalized_dims = 3", {2, 3}, 1),
                       doctest::Contains("has 2 axes; use 1..2 or 0 for all"), UserError);
  CHECK_THROWS_WITH_AS(LayerUnderTest(layer("layer_norm"), "eps = 0.0", {3}, 1),
                       doctest::Contains("positive eps"), UserError);
  CHECK_THROWS_WITH_AS(LayerUnderTest(layer("layer_norm"), "affine = false", {3}, 1),
                       doctest::Contains("unknown key 'affine'"), UserError);
  CHECK_THROWS_WITH_AS(LayerUnderTest(layer("layer_norm"), "", {}, 1),
                       doctest::Contains("no axis to normalise"), UserError);
}
