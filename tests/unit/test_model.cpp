// Model assembly and the training-step primitives: shapes inferred and checked, deterministic
// initialisation, the learning-rate schedules, gradient clipping, gradient accumulation, weight
// decay left off biases, and no allocation at all inside a training step (counted by replacing
// operator new and malloc for this executable).
#include <cmath>

#include "count_allocations.hpp"
#include "model/model.hpp"
#include "test_support.hpp"
#include "util/errors.hpp"

using graft::test::g_allocations;

using namespace graft::runtime;
using graft::test::options;

namespace {
PluginChoice choice(graft_kind kind, const std::string& name, const std::string& text = "") {
  const PluginRecord* r = graft::test::builtin_registry().find(kind, name);
  REQUIRE(r);
  return PluginChoice{r, options(kind, name, text), "[test " + name + "]"};
}

// An MLP (3) -> 8 relu -> dropout -> 2 with cross-entropy and the given optimizer.
std::unique_ptr<Model> small_model(ModelSettings settings, const std::string& optimizer = "sgd",
                                   const std::string& optimizer_options = "") {
  std::vector<PluginChoice> layers;
  layers.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 8\nactivation = \"relu\""));
  layers.push_back(choice(GRAFT_KIND_LAYER, "dropout", "p = 0.25"));
  layers.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 2"));
  graft_target_info target{sizeof(graft_target_info), graft_shape{0, {}}, DLDataType{kDLInt, 32, 1},
                           2};
  return std::make_unique<Model>(std::move(layers), choice(GRAFT_KIND_LOSS, "cross_entropy"),
                                 choice(GRAFT_KIND_OPTIMIZER, optimizer, optimizer_options),
                                 graft_shape{1, {3}}, target, settings);
}

ModelSettings settings(int64_t batch, double lr = 0.1) {
  ModelSettings s;
  s.max_batch = batch;
  s.seed = 11;
  s.schedule.lr = lr;
  return s;
}
}  // namespace

TEST_CASE("shapes flow from the data through every layer") {
  auto m = small_model(settings(4));
  REQUIRE(m->layer_count() == 3);
  CHECK(m->layer_output(0).dims[0] == 8);
  CHECK(m->layer_output(2).dims[0] == 2);
  CHECK(m->parameter_count() == 3 * 8 + 8 + 8 * 2 + 2);
  CHECK(m->parameters()[0].name == "layers.0.weight");
  CHECK(m->metric_names() == std::vector<std::string>{"accuracy"});
}

TEST_CASE("a loss that cannot take the model's output names the loss and the shape") {
  std::vector<PluginChoice> layers;
  layers.push_back(choice(GRAFT_KIND_LAYER, "flatten"));
  graft_target_info target{sizeof(graft_target_info), graft_shape{0, {}}, DLDataType{kDLInt, 32, 1},
                           2};
  try {
    Model m(std::move(layers), choice(GRAFT_KIND_LOSS, "cross_entropy"),
            choice(GRAFT_KIND_OPTIMIZER, "sgd"), graft_shape{1, {3}}, target, settings(4));
    FAIL("no error");
  } catch (const UserError& e) {
    INFO(e.what());
    CHECK(std::string(e.what()).find("cross_entropy") != std::string::npos);
    CHECK(std::string(e.what()).find("(3,)") != std::string::npos);
  }
}

TEST_CASE("step buffers can be planned without being held, and a batch that wraps is named") {
  auto held = small_model(settings(4));
  const size_t fixed = held->planned_fixed_bytes();
  CHECK(fixed == held->parameter_count() * 2 * sizeof(float));  // and gradients; sgd keeps no state
  // A billion rows: planned in a moment, none allocated, the bytes the same as if held.
  ModelSettings billion = settings(1'000'000'000);
  billion.allocate_step_buffers = false;
  auto planned = small_model(billion);
  CHECK(!planned->step_buffers_allocated());
  CHECK(planned->planned_fixed_bytes() == fixed);
  CHECK(planned->planned_bytes() - fixed == (held->planned_bytes() - fixed) / 4 * 1'000'000'000);
  graft::test::Tensor x({2, 3});
  graft_exec_ctx ctx = graft::test::cpu_ctx();
  ctx.global_batch = 2;
  CHECK_THROWS_AS(planned->forward(ctx, 0, 3, *x.get()), Failure);
  // Allocated later, it is the model built whole.
  ModelSettings later = settings(4);
  later.allocate_step_buffers = false;
  auto deferred = small_model(later);
  CHECK(deferred->planned_bytes() == held->planned_bytes());
  deferred->allocate_step_buffers();
  CHECK(deferred->step_buffers_allocated());
  CHECK(deferred->forward(ctx, 0, 3, *x.get()) != nullptr);
  // Rows times a layer's width past 64 bits is the user's batch, not a wrapped small number.
  ModelSettings wraps = settings(INT64_MAX / 4);
  wraps.allocate_step_buffers = false;
  wraps.rows_origin = "run.toml:3:14: [data] batch_size = 2305843009213693951";
  try {
    small_model(wraps);
    FAIL("no error");
  } catch (const UserError& e) {
    INFO(e.what());
    CHECK(std::string(e.what()).find(wraps.rows_origin + ": [test linear] (layer 'linear'") == 0);
    CHECK(std::string(e.what()).find("more bytes than 64 bits can count; lower it") !=
          std::string::npos);
  }
}

TEST_CASE("initialisation depends on the seed only, and follows each init's bound") {
  auto a = small_model(settings(4));
  auto b = small_model(settings(8));
  for (size_t i = 0; i < a->parameter_count(); ++i)
    REQUIRE(a->parameter_data()[i] == b->parameter_data()[i]);
  ModelSettings other = settings(4);
  other.seed = 12;
  auto c = small_model(other);
  CHECK(a->parameter_data()[0] != c->parameter_data()[0]);
  // linear's default is PyTorch's: U(-1/sqrt(fan_in), 1/sqrt(fan_in)); biases start at zero.
  const ParameterInfo& w = a->parameters()[0];
  float largest = 0;
  for (size_t i = 0; i < w.numel; ++i)
    largest = std::max(largest, std::fabs(a->parameter_data()[w.offset + i]));
  CHECK(largest <= 1.0f / std::sqrt(3.0f));
  CHECK(largest > 0.3f);
  const ParameterInfo& bias = a->parameters()[1];
  for (size_t i = 0; i < bias.numel; ++i) CHECK(a->parameter_data()[bias.offset + i] == 0.0f);
}

TEST_CASE("learning-rate schedules") {
  Schedule s;
  s.lr = 1.0;
  CHECK(s.at(0) == 1.0);
  CHECK(s.at(1000) == 1.0);
  s.type = "step";
  s.step_size = 10;
  s.gamma = 0.5;
  CHECK(s.at(9) == 1.0);
  CHECK(s.at(10) == 0.5);
  CHECK(s.at(25) == 0.25);
  s.type = "cosine";
  s.total_steps = 100;
  s.min_lr = 0.0;
  CHECK(s.at(0) == doctest::Approx(1.0));
  CHECK(s.at(50) == doctest::Approx(0.5));
  CHECK(s.at(100) == doctest::Approx(0.0));
  s.warmup_steps = 10;
  CHECK(s.at(0) == doctest::Approx(0.1));
  CHECK(s.at(9) == doctest::Approx(1.0));
  CHECK(s.at(10) == doctest::Approx(1.0));
  CHECK(s.at(55) == doctest::Approx(0.5));
  // The same curve by its other name (configs/char_gpt.toml's), which once stayed at lr after
  // the warm-up.
  s.type = "linear_warmup_cosine";
  s.min_lr = 0.1;
  CHECK(s.at(9) == doctest::Approx(1.0));
  CHECK(s.at(55) == doctest::Approx(0.55));
  CHECK(s.at(100) == doctest::Approx(0.1));
}

TEST_CASE("gradient clipping scales the global norm down to the limit") {
  ModelSettings s = settings(4, /*lr=*/1.0);
  s.clip_grad_norm = 0.5;
  auto m = small_model(s);
  std::vector<float> before(m->parameter_data(), m->parameter_data() + m->parameter_count());
  double norm_squared = 0;
  for (size_t i = 0; i < m->parameter_count(); ++i) {
    m->gradient_data()[i] = float(i % 7) - 3.0f;
    norm_squared += double(m->gradient_data()[i]) * m->gradient_data()[i];
  }
  REQUIRE(std::sqrt(norm_squared) > 0.5);
  graft_exec_ctx ctx = graft::test::cpu_ctx();
  m->optimizer_step(ctx);
  double moved = 0;
  for (size_t i = 0; i < m->parameter_count(); ++i) {
    double d = double(m->parameter_data()[i]) - before[i];
    moved += d * d;
  }
  CHECK(std::sqrt(moved) == doctest::Approx(0.5).epsilon(1e-4));  // plain SGD, lr 1
  CHECK(m->optimizer_steps() == 1);
}

TEST_CASE("a training step allocates nothing") {
  const int64_t batch = 16;
  auto m = small_model(settings(batch), "adam");
  const PluginRecord* single = graft::test::builtin_registry().find(GRAFT_KIND_STRATEGY, "single");
  REQUIRE(single);
  const auto& strategy = single->vtable<graft_strategy_vtable>();
  auto strategy_options = options(GRAFT_KIND_STRATEGY, "single");
  graft_world world{sizeof(graft_world), 0, 1, nullptr, nullptr, 0.0};
  void* self = nullptr;
  REQUIRE(strategy.create(host_api(), strategy_options.get(), &world, &self) == nullptr);
  graft::test::Tensor x({batch, 3});
  graft::test::Tensor y({batch}, DLDataType{kDLInt, 32, 1});
  for (int64_t i = 0; i < batch * 3; ++i) x.f()[i] = float((i * 37) % 11) / 11.0f - 0.5f;
  for (int64_t i = 0; i < batch; ++i) y.i()[i] = x.f()[i * 3] + x.f()[i * 3 + 1] > 0 ? 1 : 0;
  graft_exec_ctx ctx = graft::test::cpu_ctx();
  ctx.global_batch = batch;
  double first_loss = 0, last_loss = 0;
  auto step = [&](int64_t n) {
    ctx.step = n;
    graft_step_result r{};
    r.struct_size = sizeof r;
    REQUIRE(strategy.train_step(self, Model::api(), m->handle(), &ctx, x.get(), y.get(), &r) ==
            nullptr);
    return r.loss_sum / double(r.rows);
  };
  first_loss = step(0);  // warm-up: OpenBLAS sets up its buffers on first use
  const long before = g_allocations.load();
  const size_t host_before = allocated_bytes();
  for (int64_t n = 1; n < 50; ++n) last_loss = step(n);
  CHECK(g_allocations.load() - before == 0);
  auto* probe = new std::vector<int>(100);  // the counter is live: this one is seen
  delete probe;
  CHECK(g_allocations.load() - before == 2);
  CHECK(allocated_bytes() == host_before);
  CHECK(last_loss < first_loss * 0.5);  // and it learned the (separable) toy labels
  strategy.destroy(self);
}

namespace {

// The built-in `single` strategy, made as a session makes it.
class SingleStrategy {
 public:
  SingleStrategy() {
    const PluginRecord* single =
        graft::test::builtin_registry().find(GRAFT_KIND_STRATEGY, "single");
    REQUIRE(single);
    vtable_ = &single->vtable<graft_strategy_vtable>();
    options_ = options(GRAFT_KIND_STRATEGY, "single");
    graft_world world{sizeof(graft_world), 0, 1, nullptr, nullptr, 0.0};
    REQUIRE(vtable_->create(host_api(), options_.get(), &world, &self_) == nullptr);
  }
  ~SingleStrategy() { vtable_->destroy(self_); }
  SingleStrategy(const SingleStrategy&) = delete;
  SingleStrategy& operator=(const SingleStrategy&) = delete;

  // One training step over (x, y) as `micro_batches` micro-batches; returns the mean loss.
  double train_step(Model& m, const graft::test::Tensor& x, const graft::test::Tensor& y,
                    int64_t step, int32_t micro_batches) {
    graft_exec_ctx ctx = graft::test::cpu_ctx();
    ctx.global_batch = x.shape()[0];
    ctx.step = step;
    ctx.micro_batches = micro_batches;
    graft_step_result r{};
    r.struct_size = sizeof r;
    graft_status* st =
        vtable_->train_step(self_, Model::api(), m.handle(), &ctx, x.get(), y.get(), &r);
    if (st) throw_if_failed(st, "single train_step");
    CHECK(r.rows == ctx.global_batch);  // every row once, whatever the split
    return r.loss_sum / double(r.rows);
  }

 private:
  const graft_strategy_vtable* vtable_ = nullptr;
  BoundOptions options_;
  void* self_ = nullptr;
};

// A batch of the toy task of small_model: (rows, 3) inputs, labels from the first two.
void toy_batch(graft::test::Tensor& x, graft::test::Tensor& y, int64_t rows, int64_t seed) {
  for (int64_t i = 0; i < rows * 3; ++i) x.f()[i] = float(((i + seed) * 37) % 11) / 11.0f - 0.5f;
  for (int64_t i = 0; i < rows; ++i) y.i()[i] = x.f()[i * 3] + x.f()[i * 3 + 1] > 0 ? 1 : 0;
}

}  // namespace

TEST_CASE("gradient accumulation: 4 micro-batches give the losses and parameters of 1") {
  // The same seed, batch and dropout masks; only the summation order differs, so results
  // agree to float rounding: 1e-5 relative on each loss, 1e-5 absolute on each parameter.
  const int64_t batch = 16;
  auto whole = small_model(settings(batch), "adam");
  auto split = small_model(settings(batch / 4), "adam");  // buffers for one micro-batch only
  SingleStrategy single;
  graft::test::Tensor x({batch, 3});
  graft::test::Tensor y({batch}, DLDataType{kDLInt, 32, 1});
  for (int64_t step = 0; step < 6; ++step) {
    toy_batch(x, y, batch, step);
    const double a = single.train_step(*whole, x, y, step, 1);
    const double b = single.train_step(*split, x, y, step, 4);
    CHECK(b == doctest::Approx(a).epsilon(1e-5));
  }
  size_t differing = 0;
  for (size_t i = 0; i < whole->parameter_count(); ++i) {
    CHECK(std::fabs(split->parameter_data()[i] - whole->parameter_data()[i]) <= 1e-5f);
    differing += whole->parameter_data()[i] != split->parameter_data()[i];
  }
  MESSAGE(differing << " of " << whole->parameter_count()
                    << " parameters differ in their last bits");
  // The split model's buffers hold 4 rows: the whole batch at once does not fit in them.
  graft_exec_ctx ctx = graft::test::cpu_ctx();
  ctx.global_batch = batch;
  CHECK_THROWS_AS(split->forward(ctx, 0, split->layer_count(), *x.get()), Failure);
  // A batch that does not divide evenly: ceil(10 / 4) = 3 rows each, the last one 1 row.
  graft::test::Tensor x10({10, 3});
  graft::test::Tensor y10({10}, DLDataType{kDLInt, 32, 1});
  toy_batch(x10, y10, 10, 9);
  auto whole10 = small_model(settings(10), "sgd");
  auto split10 = small_model(settings(3), "sgd");
  CHECK(single.train_step(*split10, x10, y10, 0, 4) ==
        doctest::Approx(single.train_step(*whole10, x10, y10, 0, 1)).epsilon(1e-6));
  for (size_t i = 0; i < whole10->parameter_count(); ++i)
    CHECK(std::fabs(split10->parameter_data()[i] - whole10->parameter_data()[i]) < 1e-6f);
}

TEST_CASE("decay_bias_and_norm = false: biases keep their value while weights decay") {
  for (bool decay_all : {true, false}) {
    CAPTURE(decay_all);
    ModelSettings s = settings(4, /*lr=*/0.1);
    s.decay_bias_and_norm = decay_all;
    auto m = small_model(s, "adamw", "weight_decay = 0.5");
    for (const ParameterInfo& p : m->parameters())
      if (p.spec.is_bias_or_norm)
        for (size_t i = 0; i < p.numel; ++i) m->parameter_data()[p.offset + i] = 1.0f;
    std::vector<float> before(m->parameter_data(), m->parameter_data() + m->parameter_count());
    m->zero_grad();  // zero gradients: AdamW moves a parameter by its decay alone
    graft_exec_ctx ctx = graft::test::cpu_ctx();
    m->optimizer_step(ctx);
    int biases = 0;
    for (const ParameterInfo& p : m->parameters()) {
      CAPTURE(p.name);
      const bool bias = p.name.find("bias") != std::string::npos;
      CHECK(bool(p.spec.is_bias_or_norm) == bias);  // linear marks its bias
      biases += bias;
      const float factor = bias && !decay_all ? 1.0f : float(1.0 - 0.1 * 0.5);
      for (size_t i = 0; i < p.numel; ++i)
        CHECK(m->parameter_data()[p.offset + i] ==
              doctest::Approx(before[p.offset + i] * factor).epsilon(1e-6));
    }
    CHECK(biases == 2);
  }
}

TEST_CASE("residual blocks and micro-batches allocate nothing in a training step") {
  std::vector<PluginChoice> inner;
  inner.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 8\nactivation = \"relu\""));
  inner.push_back(choice(GRAFT_KIND_LAYER, "dropout", "p = 0.25"));
  inner.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 8"));
  std::vector<PluginChoice> layers;
  layers.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 8"));
  layers.push_back(PluginChoice::residual_block(std::move(inner), "[test residual]"));
  layers.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 2"));
  graft_target_info target{sizeof(graft_target_info), graft_shape{0, {}}, DLDataType{kDLInt, 32, 1},
                           2};
  const int64_t batch = 16;
  Model m(std::move(layers), choice(GRAFT_KIND_LOSS, "cross_entropy"),
          choice(GRAFT_KIND_OPTIMIZER, "rmsprop"), graft_shape{1, {3}}, target,
          settings(batch / 4, 0.01));
  SingleStrategy single;
  graft::test::Tensor x({batch, 3});
  graft::test::Tensor y({batch}, DLDataType{kDLInt, 32, 1});
  toy_batch(x, y, batch, 0);
  const double first_loss = single.train_step(m, x, y, 0, 4);  // warm-up, as above
  const long before = g_allocations.load();
  const size_t host_before = allocated_bytes();
  double last_loss = first_loss;
  for (int64_t n = 1; n < 60; ++n) last_loss = single.train_step(m, x, y, n, 4);
  CHECK(g_allocations.load() - before == 0);
  CHECK(allocated_bytes() == host_before);
  CHECK(last_loss < first_loss * 0.5);
}
