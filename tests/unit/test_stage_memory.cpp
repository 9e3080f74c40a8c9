// A pipeline stage holds its own layers only: parameters, gradients, optimizer state and step
// buffers of the layers of other stages are described but never allocated, the values it holds
// are those `single` draws (so the layout does not change them), and running a layer it does
// not hold is a clear Failure. Two stages run one step between them as the whole model does.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "model/model.hpp"
#include "test_support.hpp"
#include "util/errors.hpp"

using namespace graft::runtime;
using graft::test::options;

namespace {
PluginChoice choice(graft_kind kind, const std::string& name, const std::string& text = "") {
  const PluginRecord* r = graft::test::builtin_registry().find(kind, name);
  REQUIRE(r);
  return PluginChoice{r, options(kind, name, text), "[test " + name + "]"};
}

constexpr int64_t N = 8, D = 16, H = 64, C = 4;  // batch, input, hidden, classes

// One stage of `stages` (stage 0: layer 0; stage 1: layers 1 and 2), or the whole model.
ModelSettings settings(int32_t stages, int32_t stage_index) {
  ModelSettings s;
  s.max_batch = N;
  s.seed = 9;
  s.schedule.lr = 0.01;
  if (stages > 1) {
    for (int32_t stage : {0, 1, 1})
      s.placement.push_back(graft_layer_placement{sizeof(graft_layer_placement), stage, 0});
    s.stages = stages;
    s.stage_index = stage_index;
  }
  return s;
}

// (D) -> linear H relu -> linear H relu -> linear C, cross-entropy, adam: the shape of
// 784-4096-4096-10 at small widths.
std::unique_ptr<Model> mlp(ModelSettings s) {
  std::vector<PluginChoice> layers;
  const std::string hidden = "units = " + std::to_string(H) + "\nactivation = \"relu\"";
  layers.push_back(choice(GRAFT_KIND_LAYER, "linear", hidden));
  layers.push_back(choice(GRAFT_KIND_LAYER, "linear", hidden));
  layers.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = " + std::to_string(C)));
  graft_target_info target{sizeof(graft_target_info), graft_shape{0, {}}, DLDataType{kDLInt, 32, 1},
                           C};
  return std::make_unique<Model>(std::move(layers), choice(GRAFT_KIND_LOSS, "cross_entropy"),
                                 choice(GRAFT_KIND_OPTIMIZER, "adam"), graft_shape{1, {D}}, target,
                                 s);
}

const ParameterInfo& named(const Model& m, const std::string& name) {
  for (const ParameterInfo& p : m.parameters())
    if (p.name == name) return p;
  FAIL("no parameter " << name);
  throw 0;
}

struct Batch {
  graft::test::Tensor x{{N, D}};
  graft::test::Tensor y{{N}, DLDataType{kDLInt, 32, 1}};
  Batch() {
    for (int64_t i = 0; i < N * D; ++i) x.f()[i] = float((i * 37) % 11) / 11.0f - 0.5f;
    for (int64_t i = 0; i < N; ++i) y.i()[i] = int32_t(i % C);
  }
};
}  // namespace

TEST_CASE("a stage allocates and initialises only its own layers' parameters") {
  auto whole = mlp(settings(1, 0));
  auto first = mlp(settings(2, 0));
  auto second = mlp(settings(2, 1));
  const size_t layer0 = D * H + H, rest = H * H + H + H * C + C;
  REQUIRE(whole->parameter_count() == layer0 + rest);
  CHECK(first->parameter_count() == layer0);
  CHECK(second->parameter_count() == rest);
  for (Model* m : {first.get(), second.get()}) {
    CAPTURE(m->settings().stage_index);
    // Every parameter is still described, whole shape and all.
    REQUIRE(m->parameters().size() == whole->parameters().size());
    const Model::MemorySplit split = m->planned_memory();
    const size_t bytes = m->parameter_count() * sizeof(float);
    CHECK(split.parameters == bytes);
    CHECK(split.gradients == bytes);
    CHECK(split.optimizer_state == 2 * bytes);  // adam: two moments
    CHECK(m->planned_fixed_bytes() == 4 * bytes);
    CHECK(split.activations < whole->planned_memory().activations);
    for (const ParameterInfo& p : m->parameters()) {
      CAPTURE(p.name);
      const ParameterInfo& w = named(*whole, p.name);
      CHECK(p.numel == w.numel);
      CHECK(p.held == (m->layer_stage(p.layer) == m->settings().stage_index));
      if (!p.held) continue;
      // Drawn from the same stream as single's, whichever stage holds it.
      CHECK(std::memcmp(m->parameter_data() + p.offset, whole->parameter_data() + w.offset,
                        p.numel * sizeof(float)) == 0);
    }
  }
  // A stage's plan for layer 0 alone (stage 0) is its whole share of the bytes.
  CHECK(first->planned_bytes() < whole->planned_bytes());
  CHECK(second->planned_bytes() < whole->planned_bytes());
}

TEST_CASE("running a layer of another stage is a Failure; views of its layers are empty") {
  auto first = mlp(settings(2, 0));
  auto second = mlp(settings(2, 1));
  Batch b;
  graft_exec_ctx ctx = graft::test::cpu_ctx();
  try {
    first->forward(ctx, 0, 3, *b.x.get());
    FAIL("forward over another stage's layers ran");
  } catch (const Failure& e) {
    const std::string what = e.what();
    CHECK(what.find("forward") != std::string::npos);
    CHECK(what.find("layer 1") != std::string::npos);
    CHECK(what.find("stage 1") != std::string::npos);
  }
  graft::test::Tensor dy({N, H});
  CHECK_THROWS_AS(second->backward(ctx, 0, 1, *dy.get(), nullptr, nullptr), Failure);
  const graft_model_api* api = Model::api();
  DLTensor t{};
  REQUIRE(api->parameters(second->handle(), 0, 1, &t) == nullptr);
  CHECK(t.shape[0] == 0);
  REQUIRE(api->gradients(second->handle(), 0, 3, &t) == nullptr);
  CHECK(size_t(t.shape[0]) == second->parameter_count());
  double norm = -1.0;
  REQUIRE(api->grad_sq_norm(second->handle(), 0, 1, 1, &norm) == nullptr);
  CHECK(norm == 0.0);
}

TEST_CASE("two stages step as the whole model does") {
  auto whole = mlp(settings(1, 0));
  auto first = mlp(settings(2, 0));
  auto second = mlp(settings(2, 1));
  Batch b;
  graft_exec_ctx ctx = graft::test::cpu_ctx();
  ctx.global_batch = N;
  graft_step_result r{}, r_whole{};
  r.struct_size = r_whole.struct_size = sizeof r;
  for (Model* m : {whole.get(), first.get(), second.get()}) m->zero_grad();
  const DLTensor* pw = whole->forward(ctx, 0, 3, *b.x.get());
  whole->backward(ctx, 0, 3, *whole->loss(ctx, *pw, *b.y.get(), r_whole, true), nullptr, nullptr);
  const DLTensor* h = first->forward(ctx, 0, 1, *b.x.get());
  const DLTensor* p = second->forward(ctx, 1, 3, *h);
  const DLTensor* dh =
      second->backward(ctx, 1, 3, *second->loss(ctx, *p, *b.y.get(), r, true), nullptr, nullptr);
  first->backward(ctx, 0, 1, *dh, nullptr, nullptr);
  CHECK(r.loss_sum == r_whole.loss_sum);
  for (Model* m : {first.get(), second.get()}) m->optimizer_step(ctx);
  whole->optimizer_step(ctx);
  for (Model* m : {first.get(), second.get()})
    for (const ParameterInfo& q : m->parameters()) {
      if (!q.held) continue;
      CAPTURE(q.name);
      const ParameterInfo& w = named(*whole, q.name);
      CHECK(std::memcmp(m->gradient_data() + q.offset, whole->gradient_data() + w.offset,
                        q.numel * sizeof(float)) == 0);
      CHECK(std::memcmp(m->parameter_data() + q.offset, whole->parameter_data() + w.offset,
                        q.numel * sizeof(float)) == 0);
    }
}
