// Weight tying (a layer's `tie`): a GPT's output projection reusing its token embedding's
// table. Within a rank the two are one tensor whose gradient both layers add into (checked by
// finite differences on the model's loss); split over two pipeline stages each stage keeps a
// copy, and summing the copies' gradients (Model::tied_gradients, which the strategies call
// over their pipeline group) trains them exactly as the one tensor. Names, shapes and layouts
// that cannot be tied are errors naming the key and the fix.
#include <cmath>
#include <memory>
#include <random>
#include <string>

#include "device/host_api.hpp"
#include "gradient_check.hpp"
#include "model/model.hpp"
#include "util/errors.hpp"

namespace {

using graft::runtime::Model;
using graft::runtime::ModelSettings;
using graft::runtime::PluginChoice;
using graft::runtime::UserError;
using namespace graft::test;

constexpr int64_t kVocab = 6, kWidth = 4, kPositions = 3, kRows = 4;

PluginChoice choice(graft_kind kind, const std::string& name, const std::string& text = "") {
  const graft::runtime::PluginRecord* r = builtin_registry().find(kind, name);
  REQUIRE(r);
  return PluginChoice{r, options(kind, name, text), "[test " + name + "]"};
}

struct Variant {
  std::string linear = "units = 6\nflatten = false\nbias = false\ntranspose_weight = true";
  std::string param = "weight", target = "layers.0.weight";
  int32_t stages = 1, stage = 0;
  int32_t zero_level = 0;
};

// ids (3,) -> embedding (3, 4) -> linear per position (3, 6), its weight the embedding's table.
std::unique_ptr<Model> tied_model(const Variant& v = {}) {
  std::vector<PluginChoice> layers;
  layers.push_back(choice(GRAFT_KIND_LAYER, "embedding",
                          "num_embeddings = 6\nembedding_dim = 4\ninit_std = 0.5"));
  layers.push_back(choice(GRAFT_KIND_LAYER, "linear", v.linear));
  layers.back().ties.push_back({v.param, v.target, "gpt.toml:9:8: [[model.layers]] #1 tie.weight"});
  ModelSettings s;
  s.max_batch = kRows;
  s.seed = 3;
  s.schedule.lr = 0.05;
  if (v.stages > 1) {
    for (int32_t stage : {0, 1})
      s.placement.push_back({sizeof(graft_layer_placement), stage, GRAFT_SHARD_NONE});
    s.stages = v.stages;
    s.stage_index = v.stage;
  }
  if (v.zero_level > 0) {
    s.zero_parts = 2;
    s.zero_level = v.zero_level;
  }
  graft_target_info target{sizeof(graft_target_info), graft_shape{1, {kPositions}},
                           DLDataType{kDLInt, 32, 1}, kVocab};
  return std::make_unique<Model>(std::move(layers), choice(GRAFT_KIND_LOSS, "cross_entropy"),
                                 choice(GRAFT_KIND_OPTIMIZER, "adam"), graft_shape{1, {kPositions}},
                                 target, s);
}

struct Batch {
  Tensor x{{kRows, kPositions}}, y{{kRows, kPositions}, DLDataType{kDLInt, 32, 1}};
  explicit Batch(unsigned seed) {
    std::mt19937 rng(seed);
    for (int64_t i = 0; i < x.numel(); ++i) x.f()[i] = float(rng() % kVocab);
    for (int64_t i = 0; i < y.numel(); ++i) y.i()[i] = int32_t(rng() % kVocab);
  }
};

graft_exec_ctx step_ctx(int64_t step) {
  graft_exec_ctx ctx = cpu_ctx(true);
  ctx.global_batch = kRows;
  ctx.slot = 0;
  ctx.step = step;
  return ctx;
}

// The mean loss of the batch; with `gradient`, the gradients too (zeroed first).
double loss_of(Model& m, const Batch& b, bool gradient) {
  const graft_exec_ctx ctx = step_ctx(0);
  if (gradient) m.zero_grad();
  graft_step_result r{sizeof(graft_step_result), 0.0, {}, 0};
  const DLTensor* pred = m.forward(ctx, 0, 2, *b.x.get());
  const DLTensor* dpred = m.loss(ctx, *pred, *b.y.get(), r, gradient);
  if (gradient) m.backward(ctx, 0, 2, *dpred, nullptr, nullptr);
  return r.loss_sum / double(kRows);
}

std::string error_of(const Variant& v) {
  try {
    tied_model(v);
  } catch (const UserError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("a tie is one tensor: one set of floats, and both layers' gradients add into it") {
  auto m = tied_model();
  const auto& params = m->parameters();
  REQUIRE(params.size() == 2);
  CHECK(params[1].name == "layers.1.weight");
  CHECK(params[1].tied == 0);
  CHECK(params[1].alias);
  CHECK(m->parameter_count() == size_t(kVocab * kWidth));  // counted once
  CHECK(m->layer_parameter_count(1) == 0);
  CHECK(m->store().parameter_tensor(1)->data == m->store().parameter_tensor(0)->data);

  // d(loss)/d(table) by central differences on the one tensor both layers read.
  const Batch b(7);
  loss_of(*m, b, true);
  const float* grad = m->gradient_data() + params[0].offset;
  float* table = m->parameter_data() + params[0].offset;
  double largest = 0.0;
  for (int64_t e = 0; e < kVocab * kWidth; ++e) {
    const float keep = table[e], h = 1e-2f;
    table[e] = keep + h;
    const double up = loss_of(*m, b, false);
    table[e] = keep - h;
    const double down = loss_of(*m, b, false);
    table[e] = keep;
    const double numeric = (up - down) / (2.0 * double(h));
    CAPTURE(e);
    CHECK(std::fabs(numeric - grad[e]) <= 1e-3 + 1e-2 * std::fabs(numeric));
    largest = std::max(largest, std::fabs(double(grad[e])));
  }
  CHECK(largest > 1e-3);  // a gradient that is there to check
}

TEST_CASE("a tie across two pipeline stages: copies summed by tied_gradients train as one") {
  auto whole = tied_model();
  Variant first, last;
  first.stages = last.stages = 2;
  last.stage = 1;
  auto s0 = tied_model(first), s1 = tied_model(last);
  const size_t n = size_t(kVocab * kWidth);
  REQUIRE_FALSE(s0->parameters()[1].held);
  REQUIRE_FALSE(s1->parameters()[0].held);
  REQUIRE(s1->parameters()[1].held);
  CHECK_FALSE(s1->parameters()[1].alias);  // a copy of its own, drawn from the table's stream
  auto values = [n](Model& m, size_t p) {
    const float* d = m.parameter_data() + m.parameters()[p].offset;
    return std::vector<float>(d, d + n);
  };
  CHECK(values(*s1, 1) == values(*whole, 0));
  CHECK(values(*s0, 0) == values(*whole, 0));

  for (int64_t step = 0; step < 4; ++step) {
    const Batch b(unsigned(11 + step));
    const graft_exec_ctx ctx = step_ctx(step);
    loss_of(*whole, b, true);
    whole->optimizer_step(ctx);

    s0->zero_grad();
    s1->zero_grad();
    graft_step_result r{sizeof(graft_step_result), 0.0, {}, 0};
    const DLTensor* h = s0->forward(ctx, 0, 1, *b.x.get());
    const DLTensor* pred = s1->forward(ctx, 1, 2, *h);
    const DLTensor* dpred = s1->loss(ctx, *pred, *b.y.get(), r, true);
    const DLTensor* dh = s1->backward(ctx, 1, 2, *dpred, nullptr, nullptr);
    s0->backward(ctx, 0, 1, *dh, nullptr, nullptr);
    if (step == 0) {  // a strategy that does not sum them cannot step: the copies would part
      DLTensor unused{};
      const graft_model_api* api = Model::api();
      CHECK_THROWS_WITH(graft::runtime::throw_if_failed(
                            api->optimizer_step_layers(s1->handle(), &ctx, 1, 2, -1.0), "step"),
                        doctest::Contains("tied_gradients, ABI 1.4"));
      s1->tied_gradients(false, unused);  // packing alone is not the sum
      CHECK_THROWS_WITH_AS(s1->optimizer_step(ctx), doctest::Contains("'layers.1.weight' is tied"),
                           graft::runtime::Failure);
    }
    // What the pipeline strategy does over its group: pack, sum (here by hand), unpack.
    DLTensor a{}, c{};
    s0->tied_gradients(false, a);
    s1->tied_gradients(false, c);
    REQUIRE(a.shape[0] == int64_t(n));
    REQUIRE(c.shape[0] == int64_t(n));
    for (size_t e = 0; e < n; ++e) {
      const float total = static_cast<float*>(a.data)[e] + static_cast<float*>(c.data)[e];
      static_cast<float*>(a.data)[e] = static_cast<float*>(c.data)[e] = total;
    }
    s0->tied_gradients(true, a);
    s1->tied_gradients(true, c);
    s0->updater().step_layers(ctx, 0, 1, -1.0);
    s1->updater().step_layers(ctx, 1, 2, -1.0);
  }
  // The copies take the same steps from the same sums: equal to the bit.
  CHECK(values(*s0, 0) == values(*s1, 1));
  const std::vector<float> want = values(*whole, 0), got = values(*s0, 0);
  for (size_t e = 0; e < n; ++e) CHECK(std::fabs(got[e] - want[e]) <= 1e-5f);
  DLTensor none{};
  whole->tied_gradients(false, none);
  CHECK(none.shape[0] == 0);  // one stage: nothing crosses, nothing to sum
}

TEST_CASE("ties that cannot be made are errors naming the key and the fix") {
  Variant typo;
  typo.target = "layers.0.wieght";
  std::string e = error_of(typo);
  CHECK(has(e, "gpt.toml:9:8: [[model.layers]] #1 tie.weight"));
  CHECK(has(e, "did you mean 'layers.0.weight'"));

  Variant own;
  own.param = "kernel";
  e = error_of(own);
  CHECK(has(e, "has no parameter 'kernel'"));
  CHECK(has(e, "its parameters: weight"));

  Variant layout;
  layout.linear = "units = 6\nflatten = false\nbias = false";  // W (4, 6), the table (6, 4)
  e = error_of(layout);
  CHECK(has(e, "(4, 6)"));
  CHECK(has(e, "transpose_weight = true"));

  Variant zero2;
  zero2.zero_level = 2;
  e = error_of(zero2);
  CHECK(has(e, "ZeRO-2"));
  CHECK(has(e, "zero = 1"));
  Variant zero1;
  zero1.zero_level = 1;
  CHECK(error_of(zero1) == "no error");  // ZeRO-1 keeps whole gradients: the alias stands
}
