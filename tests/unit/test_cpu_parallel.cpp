// The host's CPU threads (host->parallel_for and graft::parallel_for), sum_rows split across
// them, and the model's buffer plan: no input gradient for the layer reading the model's
// input, workspaces lent from the output's gradient or one shared scratch (layer.h's
// graft_workspace_use), with gradients equal to those of a model without workspaces.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <mutex>
#include <random>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "device/cpu/cpu_parallel.hpp"
#include "device/host_api.hpp"
#include "graft/cpp/parallel.hpp"
#include "model/model.hpp"
#include "test_support.hpp"

using namespace graft::runtime;

namespace {

struct Ranges {
  std::mutex mutex;
  std::vector<std::pair<int64_t, int64_t>> ranges;
  std::vector<std::thread::id> threads;
  void add(int64_t b, int64_t e) {
    std::lock_guard<std::mutex> lock(mutex);
    ranges.emplace_back(b, e);
    threads.push_back(std::this_thread::get_id());
  }
  // True when the ranges tile [0, n) exactly, each non-empty.
  bool tile(int64_t n) {
    std::sort(ranges.begin(), ranges.end());
    int64_t next = 0;
    for (const auto& [b, e] : ranges) {
      if (b != next || e <= b) return false;
      next = e;
    }
    return next == n;
  }
};

// Restores the default thread count when a test ends, passed or not.
struct Threads {
  explicit Threads(int n) { set_cpu_threads(n); }
  ~Threads() { set_cpu_threads(0); }
};

PluginChoice choice(graft_kind kind, const std::string& name, const std::string& text = "") {
  const PluginRecord* r = graft::test::builtin_registry().find(kind, name);
  REQUIRE(r);
  return PluginChoice{r, graft::test::options(kind, name, text), "[test " + name + "]"};
}

std::unique_ptr<Model> model(std::vector<PluginChoice> layers, int64_t inputs, int64_t classes,
                             int64_t batch) {
  ModelSettings s;
  s.max_batch = batch;
  s.seed = 3;
  s.schedule.lr = 0.1;
  graft_target_info target{sizeof(graft_target_info), graft_shape{0, {}}, DLDataType{kDLInt, 32, 1},
                           classes};
  return std::make_unique<Model>(std::move(layers), choice(GRAFT_KIND_LOSS, "cross_entropy"),
                                 choice(GRAFT_KIND_OPTIMIZER, "sgd", "momentum = 0.9"),
                                 graft_shape{1, {inputs}}, target, s);
}

// One forward, loss and backward over a batch of `rows`; returns the gradients.
std::vector<float> gradients(Model& m, int64_t inputs, int64_t rows) {
  graft::test::Tensor x({rows, inputs}), y({rows}, DLDataType{kDLInt, 32, 1});
  for (int64_t i = 0; i < x.numel(); ++i) x.f()[i] = std::sin(0.7f * float(i));
  for (int64_t r = 0; r < rows; ++r) y.i()[r] = int32_t(r % 3);
  graft_exec_ctx ctx = graft::test::cpu_ctx();
  ctx.global_batch = rows;
  graft_step_result result{};
  result.struct_size = sizeof result;
  m.zero_grad();
  const DLTensor* prediction = m.forward(ctx, 0, m.layer_count(), *x.get());
  const DLTensor* dprediction = m.loss(ctx, *prediction, *y.get(), result, true);
  m.backward(ctx, 0, m.layer_count(), *dprediction, nullptr, nullptr);
  return std::vector<float>(m.gradient_data(), m.gradient_data() + m.parameter_count());
}

}  // namespace

TEST_CASE("parallel_for tiles [0, n) with one range per thread, each of whole cache lines") {
  Threads two(2);
  Ranges r;
  cpu::parallel_for(100000, 1000, [&](int64_t b, int64_t e) { r.add(b, e); });
  CHECK(r.tile(100000));
  REQUIRE(r.ranges.size() == 2);
  CHECK(r.ranges[1].first % 16 == 0);
}

TEST_CASE("parallel_for runs the ranges at the same time on two threads") {
  // The caller's range waits (at most 10 s) until the other range has started: only a worker
  // running it concurrently lets it go on early. (Had no worker taken it, the caller would
  // run it itself after the wait, on its own thread, and the check below would fail.)
  Threads two(2);
  Ranges r;
  std::atomic<bool> second_started{false};
  cpu::parallel_for(100000, 1000, [&](int64_t b, int64_t e) {
    if (b > 0)
      second_started = true;
    else
      for (int i = 0; i < 10000 && !second_started; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    r.add(b, e);
  });
  CHECK(r.tile(100000));
  REQUIRE(r.threads.size() == 2);
  CHECK(r.threads[0] != r.threads[1]);
}

TEST_CASE("parallel_for stays on the calling thread for short loops, one thread, or nesting") {
  {
    Threads two(2);
    Ranges r;
    cpu::parallel_for(1999, 1000, [&](int64_t b, int64_t e) { r.add(b, e); });  // < 2 grains
    CHECK(r.tile(1999));
    CHECK(r.threads == std::vector<std::thread::id>{std::this_thread::get_id()});
    // A body that calls parallel_for again: the threads are busy, so the inner call runs
    // whole on the thread of the outer range.
    std::atomic<int> inner_ranges{0}, inner_elements{0};
    std::atomic<bool> same_thread{true};
    cpu::parallel_for(100000, 1000, [&](int64_t, int64_t) {
      const auto outer = std::this_thread::get_id();
      cpu::parallel_for(50000, 1000, [&](int64_t b, int64_t e) {
        inner_ranges.fetch_add(1);
        inner_elements.fetch_add(int(e - b));
        if (std::this_thread::get_id() != outer) same_thread = false;
      });
    });
    CHECK(inner_elements.load() == 2 * 50000);
    CHECK(inner_ranges.load() == 2);
    CHECK(same_thread.load());
  }
  Threads one(1);
  Ranges r;
  cpu::parallel_for(100000, 1000, [&](int64_t b, int64_t e) { r.add(b, e); });
  CHECK(r.tile(100000));
  CHECK(r.ranges.size() == 1);
}

TEST_CASE("graft::parallel_for through the host API rethrows a range's exception") {
  Threads two(2);
  graft_exec_ctx ctx = graft::test::cpu_ctx();
  std::atomic<int64_t> covered{0};
  graft::parallel_for(ctx, 70000, 1000, [&](int64_t b, int64_t e) { covered += e - b; });
  CHECK(covered.load() == 70000);
  CHECK_THROWS_WITH_AS(graft::parallel_for(ctx, 70000, 1000,
                                           [](int64_t b, int64_t) {
                                             if (b > 0) throw std::runtime_error("second range");
                                           }),
                       "second range", std::runtime_error);
  // The pool is free again afterwards.
  Ranges r;
  graft::parallel_for(ctx, 70000, 1000, [&](int64_t b, int64_t e) { r.add(b, e); });
  CHECK(r.tile(70000));
  CHECK(r.ranges.size() == 2);
}

TEST_CASE("sum_rows gives the same bits on one thread and on two, and beta 0 ignores old values") {
  const int64_t rows = 300, cols = 2001;
  graft::test::Tensor x({rows, cols});
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t i = 0; i < x.numel(); ++i) x.f()[i] = normal(rng);
  graft_exec_ctx ctx = graft::test::cpu_ctx();
  std::vector<graft::test::Tensor> results;
  for (int threads : {1, 2}) {
    Threads t(threads);
    graft::test::Tensor out({cols});
    for (int64_t j = 0; j < cols; ++j) out.f()[j] = float(j % 5);
    REQUIRE(host_api()->sum_rows(&ctx, x.get(), 0.5f, out.get()) == nullptr);
    results.push_back(out);
  }
  CHECK(graft::checker::same_bits(results[0], results[1]));
  double expected = 0.5 * (7 % 5);
  for (int64_t i = 0; i < rows; ++i) expected += x.f()[i * cols + 7];
  CHECK(results[0].f()[7] == doctest::Approx(expected).epsilon(1e-5));
  graft::test::Tensor out({cols});
  for (int64_t j = 0; j < cols; ++j) out.f()[j] = std::nanf("");
  REQUIRE(host_api()->sum_rows(&ctx, x.get(), 0.0f, out.get()) == nullptr);
  for (int64_t j = 0; j < cols; ++j) CHECK(std::isfinite(out.f()[j]));
}

TEST_CASE("the model plans no input gradient for layer 0, and linear+relu's dz over its dy") {
  const int64_t batch = 4;
  std::vector<PluginChoice> layers;
  layers.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 7\nactivation = \"relu\""));
  layers.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 6\nactivation = \"relu\""));
  layers.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 3"));
  auto m = model(std::move(layers), 5, 3, batch);
  const size_t parameters = 5 * 7 + 7 + 7 * 6 + 6 + 6 * 3 + 3;
  REQUIRE(m->parameter_count() == parameters);
  // No workspace at all: each relu layer's dz takes the place of its dy.
  const size_t floats = 3 * parameters         // parameters, gradients, momentum
                        + batch * (7 + 6 + 3)  // outputs
                        + batch * (7 + 6)      // input gradients of layers 1 and 2 only
                        + batch * 3;           // the loss's gradient
  CHECK(m->planned_bytes() == floats * sizeof(float));
  // The gradients are those of the same model with relu as separate activation layers.
  std::vector<PluginChoice> split;
  split.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 7"));
  split.push_back(choice(GRAFT_KIND_ACTIVATION, "relu"));
  split.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 6"));
  split.push_back(choice(GRAFT_KIND_ACTIVATION, "relu"));
  split.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 3"));
  auto reference = model(std::move(split), 5, 3, batch);
  REQUIRE(reference->parameter_count() == parameters);
  // Layer numbers differ (the activations count), so the initial values do too: copy them.
  std::memcpy(reference->parameter_data(), m->parameter_data(), parameters * sizeof(float));
  CHECK(gradients(*m, 5, batch) == gradients(*reference, 5, batch));
}

TEST_CASE("a block's inner relu layers: the last takes the scratch, the block's dy survives") {
  const int64_t batch = 3;
  auto build = [&](bool fused) {
    std::vector<PluginChoice> inner;
    for (int k = 0; k < 2; ++k) {
      inner.push_back(choice(GRAFT_KIND_LAYER, "linear",
                             fused ? "units = 5\nactivation = \"relu\"" : "units = 5"));
      if (!fused) inner.push_back(choice(GRAFT_KIND_ACTIVATION, "relu"));
    }
    std::vector<PluginChoice> layers;
    layers.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 5"));
    layers.push_back(PluginChoice::residual_block(std::move(inner), "[test residual]"));
    layers.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 3"));
    return model(std::move(layers), 4, 3, batch);
  };
  auto m = build(true), reference = build(false);
  const size_t parameters = 4 * 5 + 5 + 2 * (5 * 5 + 5) + 5 * 3 + 3;
  REQUIRE(m->parameter_count() == parameters);
  const size_t floats = 3 * parameters +
                        batch * (5 + 5 + 5 + 5 + 3)  // outputs: layer 0, block, 2 inner, last
                        + batch * (5 + 5 + 5)        // dx: both inner layers, the last layer
                        + batch * 5                  // the scratch of the block's last layer
                        + batch * 3;
  CHECK(m->planned_bytes() == floats * sizeof(float));
  std::memcpy(reference->parameter_data(), m->parameter_data(), parameters * sizeof(float));
  CHECK(gradients(*m, 4, batch) == gradients(*reference, 4, batch));
}

TEST_CASE("the last layer's dz over the loss gradient, and a dy from outside the model") {
  const int64_t batch = 4;
  std::vector<PluginChoice> layers;
  layers.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 6\nactivation = \"relu\""));
  layers.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 3\nactivation = \"relu\""));
  auto m = model(std::move(layers), 5, 3, batch);
  const size_t parameters = 5 * 6 + 6 + 6 * 3 + 3;
  CHECK(m->planned_bytes() ==
        (3 * parameters + batch * (6 + 3) + batch * 6 + batch * 3) * sizeof(float));
  const std::vector<float> from_loss = gradients(*m, 5, batch);
  // The same backward with dy given in a tensor of the caller's (as a pipeline stage passes
  // what it received): the loss gradient's buffer then serves as scratch only.
  graft::test::Tensor x({batch, 5}), y({batch}, DLDataType{kDLInt, 32, 1});
  for (int64_t i = 0; i < x.numel(); ++i) x.f()[i] = std::sin(0.7f * float(i));
  for (int64_t r = 0; r < batch; ++r) y.i()[r] = int32_t(r % 3);
  graft_exec_ctx ctx = graft::test::cpu_ctx();
  ctx.global_batch = batch;
  graft_step_result result{};
  result.struct_size = sizeof result;
  m->zero_grad();
  const DLTensor* prediction = m->forward(ctx, 0, 2, *x.get());
  const DLTensor* dprediction = m->loss(ctx, *prediction, *y.get(), result, true);
  graft::test::Tensor dy({batch, 3});
  std::memcpy(dy.f(), dprediction->data, dy.bytes());
  const std::vector<float> dy_before(dy.f(), dy.f() + dy.numel());
  m->backward(ctx, 0, 2, *dy.get(), nullptr, nullptr);
  CHECK(std::vector<float>(m->gradient_data(), m->gradient_data() + parameters) == from_loss);
  CHECK(std::vector<float>(dy.f(), dy.f() + dy.numel()) == dy_before);  // read only
}

TEST_CASE("a model that opens with a residual block plans no input gradient for its first layer") {
  const int64_t batch = 3;
  std::vector<PluginChoice> inner;
  inner.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 5\nactivation = \"gelu\""));
  inner.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 5"));
  std::vector<PluginChoice> layers;
  layers.push_back(PluginChoice::residual_block(std::move(inner), "[test residual]"));
  layers.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 3"));
  auto m = model(std::move(layers), 5, 3, batch);
  const size_t parameters = 2 * (5 * 5 + 5) + 5 * 3 + 3;
  REQUIRE(m->parameter_count() == parameters);
  const size_t floats = 3 * parameters +
                        batch * (5 + 5 + 5 + 3)  // outputs: block, its two layers, the last
                        + batch * (5 + 5)        // dx of the block's second layer and layer 1
                        + batch * 5              // gelu's pre-activation: its own, kept
                        + batch * 3;
  CHECK(m->planned_bytes() == floats * sizeof(float));
  const std::vector<float> g = gradients(*m, 5, batch);
  double norm = 0.0;
  for (float v : g) norm += double(v) * v;
  CHECK(norm > 0.0);
  CHECK(std::isfinite(norm));
}

TEST_CASE("layers no wider than their output write dx over it, with the same gradients") {
  const int64_t batch = 4;
  auto build = [&](bool over) {
    std::vector<PluginChoice> layers;
    layers.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 7\nactivation = \"relu\""));
    layers.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 7\nactivation = \"tanh\""));
    layers.push_back(choice(GRAFT_KIND_LAYER, "dropout", "p = 0.25"));
    layers.push_back(choice(GRAFT_KIND_ACTIVATION, "relu"));
    layers.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 9\nactivation = \"gelu\""));
    layers.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 3"));
    ModelSettings s;
    s.max_batch = batch;
    s.seed = 3;
    s.schedule.lr = 0.1;
    s.dx_over_outputs = over;
    graft_target_info target{sizeof(graft_target_info), graft_shape{0, {}},
                             DLDataType{kDLInt, 32, 1}, 3};
    return std::make_unique<Model>(std::move(layers), choice(GRAFT_KIND_LOSS, "cross_entropy"),
                                   choice(GRAFT_KIND_OPTIMIZER, "sgd", "momentum = 0.9"),
                                   graft_shape{1, {5}}, target, s);
  };
  auto m = build(true), reference = build(false);
  const size_t parameters = 5 * 7 + 7 + 7 * 7 + 7 + 7 * 9 + 9 + 9 * 3 + 3;
  REQUIRE(m->parameter_count() == parameters);
  // dx over the output: linear 7->7, dropout and linear 7->9. Not layer 0 (it has no dx), the
  // separate relu (an activation), nor the last layer (its output is the prediction).
  const size_t separate = batch * (7 + 7 + 7 + 7);  // dx of layers 1, 2, 3 (relu), 4
  const size_t shared = batch * 7;                  // the relu's only
  const size_t rest = 3 * parameters + batch * (7 + 7 + 7 + 7 + 9 + 3)  // outputs
                      + batch * 9                                       // the last layer's dx
                      + batch * 7                                       // dropout's mask
                      + batch * 9                                       // gelu's pre-activation
                      + batch * 3;                                      // the loss gradient
  CHECK(reference->planned_bytes() == (rest + separate) * sizeof(float));
  CHECK(m->planned_bytes() == (rest + shared) * sizeof(float));
  std::memcpy(reference->parameter_data(), m->parameter_data(), parameters * sizeof(float));
  // Two steps, so that a dx left over the output of the first would show in the second.
  for (int step = 0; step < 2; ++step) {
    CAPTURE(step);
    const std::vector<float> g = gradients(*m, 5, batch);
    CHECK(g == gradients(*reference, 5, batch));
    double norm = 0.0;
    for (float v : g) norm += double(v) * v;
    CHECK(norm > 0.0);
  }
}
