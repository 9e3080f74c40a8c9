// The model api the parallel strategies use beyond a whole step: parameter and gradient views
// by layer range, the gradient norm of a range (buffers never count), and the optimizer step
// over a range, which over every layer is exactly optimizer_step.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "model/model.hpp"
#include "test_support.hpp"

using namespace graft::runtime;
using graft::test::options;

namespace {
PluginChoice choice(graft_kind kind, const std::string& name, const std::string& text = "") {
  const PluginRecord* r = graft::test::builtin_registry().find(kind, name);
  REQUIRE(r);
  return PluginChoice{r, options(kind, name, text), "[test " + name + "]"};
}

ModelSettings settings(double lr = 0.1, double clip = 0.0) {
  ModelSettings s;
  s.max_batch = 8;
  s.seed = 5;
  s.schedule.lr = lr;
  s.clip_grad_norm = clip;
  return s;
}

// (3) -> linear 8 relu -> dropout -> [batch_norm] -> linear 2, cross-entropy.
std::unique_ptr<Model> model(ModelSettings s, bool batch_norm = false,
                             const std::string& optimizer = "sgd") {
  std::vector<PluginChoice> layers;
  layers.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 8\nactivation = \"relu\""));
  layers.push_back(choice(GRAFT_KIND_LAYER, "dropout", "p = 0.25"));
  if (batch_norm) layers.push_back(choice(GRAFT_KIND_LAYER, "batch_norm"));
  layers.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 2"));
  graft_target_info target{sizeof(graft_target_info), graft_shape{0, {}}, DLDataType{kDLInt, 32, 1},
                           2};
  return std::make_unique<Model>(std::move(layers), choice(GRAFT_KIND_LOSS, "cross_entropy"),
                                 choice(GRAFT_KIND_OPTIMIZER, optimizer), graft_shape{1, {3}},
                                 target, s);
}

// One forward, loss and backward over a fixed batch of 8, leaving the gradients.
void backward(Model& m) {
  graft::test::Tensor x({8, 3});
  graft::test::Tensor y({8}, DLDataType{kDLInt, 32, 1});
  for (int64_t i = 0; i < 24; ++i) x.f()[i] = float((i * 37) % 11) / 11.0f - 0.5f;
  for (int64_t i = 0; i < 8; ++i) y.i()[i] = int32_t(i % 2);
  graft_exec_ctx ctx = graft::test::cpu_ctx();
  ctx.global_batch = 8;
  graft_step_result r{};
  r.struct_size = sizeof r;
  m.zero_grad();
  const DLTensor* prediction = m.forward(ctx, 0, m.layer_count(), *x.get());
  const DLTensor* dprediction = m.loss(ctx, *prediction, *y.get(), r, true);
  m.backward(ctx, 0, m.layer_count(), *dprediction, nullptr, nullptr);
}

int64_t numel(const DLTensor& t) { return t.ndim == 1 ? t.shape[0] : -1; }

std::string message(graft_status* st) {
  REQUIRE(st != nullptr);
  return take(st)->message;
}
}  // namespace

TEST_CASE("gradients and parameters view whole layers of the contiguous buffers") {
  auto m = model(settings());
  const graft_model_api* api = Model::api();
  REQUIRE(api->struct_size >= sizeof(graft_model_api));
  DLTensor t{};
  REQUIRE(api->parameters(m->handle(), 0, 1, &t) == nullptr);
  CHECK(numel(t) == 3 * 8 + 8);
  CHECK(t.data == m->parameter_data());
  CHECK(t.dtype.code == kDLFloat);
  CHECK(t.dtype.bits == 32);
  REQUIRE(api->parameters(m->handle(), 1, 2, &t) == nullptr);  // dropout owns nothing
  CHECK(numel(t) == 0);
  REQUIRE(api->gradients(m->handle(), 1, 3, &t) == nullptr);
  CHECK(numel(t) == 8 * 2 + 2);
  CHECK(t.data == m->gradient_data() + 32);
  DLTensor whole{};
  REQUIRE(api->gradients(m->handle(), 0, 3, &whole) == nullptr);
  CHECK(numel(whole) == int64_t(m->parameter_count()));
  CHECK(numel(t) == 18);  // an earlier view keeps its shape while the model lives
  const std::string bad = message(api->gradients(m->handle(), 2, 4, &t));
  CHECK(bad.find("[2, 4)") != std::string::npos);
  CHECK(bad.find("3 layers") != std::string::npos);
}

TEST_CASE("grad_sq_norm sums ranges, leaves buffers out and replicas when asked") {
  auto m = model(settings(), /*batch_norm=*/true);
  backward(*m);
  const graft_model_api* api = Model::api();
  // Running statistics are buffers: give their (unused) gradient slots values that would show.
  double expected = 0.0;
  for (const ParameterInfo& p : m->parameters()) {
    for (size_t k = 0; k < p.numel; ++k) {
      float& g = m->gradient_data()[p.offset + k];
      if (p.spec.is_buffer)
        g = 1000.0f;
      else
        expected += double(g) * g;
    }
  }
  REQUIRE(expected > 0.0);
  double whole = -1, front = -1, back = -1, shards_only = -1;
  REQUIRE(api->grad_sq_norm(m->handle(), 0, 4, 1, &whole) == nullptr);
  REQUIRE(api->grad_sq_norm(m->handle(), 0, 2, 1, &front) == nullptr);
  REQUIRE(api->grad_sq_norm(m->handle(), 2, 4, 1, &back) == nullptr);
  REQUIRE(api->grad_sq_norm(m->handle(), 0, 4, 0, &shards_only) == nullptr);
  CHECK(whole == doctest::Approx(expected).epsilon(1e-12));
  CHECK(front + back == doctest::Approx(whole).epsilon(1e-12));
  CHECK(front > 0.0);
  CHECK(back > 0.0);
  CHECK(shards_only == 0.0);  // nothing is sharded, so every tensor is a replica
  CHECK(message(api->grad_sq_norm(m->handle(), 3, 2, 1, &whole)).find("[3, 2)") !=
        std::string::npos);
}

TEST_CASE("optimizer_step_layers over every layer is optimizer_step, bit for bit") {
  for (double clip : {0.0, 0.05}) {
    CAPTURE(clip);
    auto a = model(settings(0.1, clip), false, "adam");
    auto b = model(settings(0.1, clip), false, "adam");
    graft_exec_ctx ctx = graft::test::cpu_ctx();
    for (int step = 0; step < 3; ++step) {
      backward(*a);
      backward(*b);
      a->optimizer_step(ctx);
      REQUIRE(Model::api()->optimizer_step_layers(b->handle(), &ctx, 0, 3, -1.0) == nullptr);
    }
    REQUIRE(std::memcmp(a->parameter_data(), b->parameter_data(),
                        a->parameter_count() * sizeof(float)) == 0);
    CHECK(a->optimizer_steps() == b->optimizer_steps());
  }
}

TEST_CASE("optimizer_step_layers updates only its layers, clipping by the total it is given") {
  const double lr = 0.5, clip = 0.01;
  auto m = model(settings(lr, clip));
  backward(*m);
  const std::vector<float> before(m->parameter_data(), m->parameter_data() + m->parameter_count());
  const std::vector<float> grads(m->gradient_data(), m->gradient_data() + m->parameter_count());
  double local = 0.0;
  REQUIRE(Model::api()->grad_sq_norm(m->handle(), 2, 3, 1, &local) == nullptr);
  REQUIRE(std::sqrt(local) > clip);
  // As if other ranks held the rest: the global squared norm is 9x this range's, so the
  // clipped step is a third of the one the local norm alone would give.
  const double total = 9.0 * local;
  graft_exec_ctx ctx = graft::test::cpu_ctx();
  REQUIRE(Model::api()->optimizer_step_layers(m->handle(), &ctx, 2, 3, total) == nullptr);
  const double scale = clip / (std::sqrt(total) + 1e-6);
  for (size_t i = 0; i < m->parameter_count(); ++i) {
    CAPTURE(i);
    if (i < 32) {
      CHECK(m->parameter_data()[i] == before[i]);  // layer 0 is someone else's
      CHECK(m->gradient_data()[i] == grads[i]);    // and so are its gradients
    } else {
      const double step = double(m->parameter_data()[i]) - before[i];
      CHECK(step == doctest::Approx(-lr * scale * grads[i]).epsilon(1e-4));
    }
  }
  CHECK(m->optimizer_steps() == 1);
}
