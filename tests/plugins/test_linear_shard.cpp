// The linear layer's tensor-parallel parts (shard COLUMN / ROW): each part computes its slice
// (or partial sum) of the whole layer's output and its slice of the gradients; and a model
// built with a plan holds the slices of the whole model's parameters, so two such models
// stepped side by side in one process (sums standing in for the all-reduces) train as one.
#include <cmath>
#include <random>
#include <string>

#include "gradient_check.hpp"
#include "model/model.hpp"
#include "model/model_survey.hpp"
#include "util/errors.hpp"

namespace {

using namespace graft::test;
using graft::runtime::UserError;

const graft::runtime::PluginRecord& linear() {
  return builtin_registry().get(GRAFT_KIND_LAYER, "linear");
}

// A linear created with `options` on `input`, optionally sharded, with its parameters.
struct Part {
  Part(const std::string& options, std::vector<int64_t> input, int mode = GRAFT_SHARD_NONE,
       int index = 0, int count = 1)
      : vt(&linear().vtable<graft_layer_vtable>()) {
    graft_shape shape{static_cast<int32_t>(input.size()), {}};
    for (size_t d = 0; d < input.size(); ++d) shape.dims[d] = input[d];
    const auto bound = bind_text(linear(), options);
    graft::runtime::throw_if_failed(
        vt->create(graft::runtime::host_api(), bound.get(), &shape, &self), "create");
    if (mode != GRAFT_SHARD_NONE)
      graft::runtime::throw_if_failed(vt->shard(self, mode, index, count), "linear shard");
    desc.struct_size = sizeof desc;
    graft::runtime::throw_if_failed(vt->describe(self, &desc), "describe");
    for (size_t k = 0; k < desc.n_params; ++k) {
      const graft_shape& s = desc.params[k].shape;
      params.emplace_back(std::vector<int64_t>(s.dims, s.dims + s.ndim));
      grads.emplace_back(std::vector<int64_t>(s.dims, s.dims + s.ndim));
    }
  }
  ~Part() { vt->destroy(self); }
  Part(const Part&) = delete;
  Part& operator=(const Part&) = delete;

  // y = layer(x); dx, grads from dy (grads accumulate from zero).
  void run(const Tensor& x, Tensor& y, const Tensor& dy, Tensor& dx) {
    const int64_t rows = x.shape()[0];
    Tensor workspace({rows, desc.workspace_per_sample});
    std::vector<const DLTensor*> p;
    std::vector<DLTensor*> g;
    for (auto& t : params) p.push_back(t.get());
    for (auto& t : grads) g.push_back(t.get());
    graft_exec_ctx ctx = cpu_ctx(true);
    ctx.global_batch = rows;
    graft::runtime::throw_if_failed(
        vt->forward(self, &ctx, p.data(), x.get(), y.get(), workspace.get()), "forward");
    graft::runtime::throw_if_failed(vt->backward(self, &ctx, p.data(), x.get(), y.get(), dy.get(),
                                                 dx.get(), g.data(), workspace.get()),
                                    "backward");
  }

  const graft_layer_vtable* vt;
  void* self = nullptr;
  graft_layer_desc desc{};
  std::vector<Tensor> params, grads;
};

void randomise(Tensor& t, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int64_t i = 0; i < t.numel(); ++i) t.f()[i] = u(rng);
}

// Element (r, c) of a row-major (rows, cols) tensor.
float at(const Tensor& t, int64_t r, int64_t c) { return t.f()[r * t.shape()[1] + c]; }

// Float32 products summed in a different order (parts, then the sum): relative 1e-5.
void check_close(float got, float want) {
  CHECK(std::fabs(got - want) <= 1e-5f * std::max(1.0f, std::fabs(want)));
}

}  // namespace

TEST_CASE("linear declares both shard modes on its entry") {
  const uint32_t flags = linear().entry->flags;
  CHECK((flags & GRAFT_ENTRY_SHARD_COLUMN) != 0);
  CHECK((flags & GRAFT_ENTRY_SHARD_ROW) != 0);
}

TEST_CASE("linear COLUMN parts compute their slice of the output and of every gradient") {
  const int64_t N = 3, D = 6, H = 8;
  const std::string options = "units = 8\nactivation = \"tanh\"";
  std::mt19937 rng(7);
  Part whole(options, {D});
  for (auto& p : whole.params) randomise(p, rng);
  Tensor x({N, D}), y({N, H}), dy({N, H}), dx({N, D});
  randomise(x, rng);
  randomise(dy, rng);
  whole.run(x, y, dy, dx);
  for (int count : {2, 4}) {
    CAPTURE(count);
    const int64_t h = H / count;
    std::vector<float> dx_sum(size_t(N * D), 0.0f);
    for (int i = 0; i < count; ++i) {
      Part part(options, {D}, GRAFT_SHARD_COLUMN, i, count);
      REQUIRE(part.desc.output.dims[0] == h);
      const graft_param_spec& w = part.desc.params[0];
      CHECK(w.shape.dims[0] == D);
      CHECK(w.shape.dims[1] == h);
      CHECK(w.shard_axis == 1);
      CHECK(w.fan_in == D);  // the whole layer's fans: init must not depend on the layout
      CHECK(w.fan_out == H);
      CHECK(part.desc.params[1].shard_axis == 0);
      for (int64_t d = 0; d < D; ++d)
        for (int64_t c = 0; c < h; ++c)
          part.params[0].f()[d * h + c] = at(whole.params[0], d, i * h + c);
      for (int64_t c = 0; c < h; ++c) part.params[1].f()[c] = whole.params[1].f()[i * h + c];
      Tensor py({N, h}), pdy({N, h}), pdx({N, D});
      for (int64_t r = 0; r < N; ++r)
        for (int64_t c = 0; c < h; ++c) pdy.f()[r * h + c] = at(dy, r, i * h + c);
      part.run(x, py, pdy, pdx);
      for (int64_t r = 0; r < N; ++r)
        for (int64_t c = 0; c < h; ++c) check_close(at(py, r, c), at(y, r, i * h + c));
      for (int64_t d = 0; d < D; ++d)
        for (int64_t c = 0; c < h; ++c)
          check_close(at(part.grads[0], d, c), at(whole.grads[0], d, i * h + c));
      for (int64_t c = 0; c < h; ++c)
        check_close(part.grads[1].f()[c], whole.grads[1].f()[i * h + c]);
      for (int64_t k = 0; k < N * D; ++k) dx_sum[size_t(k)] += pdx.f()[k];
    }
    // The parts' input gradients are partial sums: their sum is the whole layer's.
    for (int64_t k = 0; k < N * D; ++k) check_close(dx_sum[size_t(k)], dx.f()[k]);
  }
}

TEST_CASE("linear transpose_weight: W stored (units, inputs) is the same layer, whole and split") {
  const int64_t N = 3, D = 4, H = 6;
  const std::string options = "units = 6\nactivation = \"tanh\"";
  std::mt19937 rng(3);
  Part plain(options, {D});
  for (auto& p : plain.params) randomise(p, rng);
  Tensor x({N, D}), y({N, H}), dy({N, H}), dx({N, D});
  randomise(x, rng);
  randomise(dy, rng);
  plain.run(x, y, dy, dx);
  for (int count : {1, 2}) {
    for (int mode : {GRAFT_SHARD_COLUMN, GRAFT_SHARD_ROW}) {
      if (mode == GRAFT_SHARD_ROW && count == 1) continue;
      const bool column = mode == GRAFT_SHARD_COLUMN;
      const std::string opts =
          column ? options + "\ntranspose_weight = true" : "units = 6\ntranspose_weight = true";
      Part plain_row("units = 6", {D});  // the ROW case's reference: no activation
      if (!column) {
        plain_row.params[0] = plain.params[0];
        plain_row.params[1] = plain.params[1];
      }
      Part& ref = column ? plain : plain_row;
      Tensor ry({N, H}), rdx({N, D});
      if (!column) ref.run(x, ry, dy, rdx);
      const Tensor& want_y = column ? y : ry;
      CAPTURE(count);
      CAPTURE(column);
      const int64_t h = column ? H / count : H, d = column ? D : D / count;
      std::vector<float> y_sum(size_t(N * H), 0.0f);
      for (int i = 0; i < count; ++i) {
        Part part(opts, {D}, count > 1 ? mode : GRAFT_SHARD_NONE, i, count);
        const graft_param_spec& w = part.desc.params[0];
        REQUIRE(w.shape.dims[0] == h);
        REQUIRE(w.shape.dims[1] == d);
        CHECK(w.shard_axis == (count == 1 ? -1 : column ? 0 : 1));
        // W^T's slice: row o of the part is output o0 + o, column k input k0 + k.
        const int64_t o0 = column ? i * h : 0, k0 = column ? 0 : i * d;
        for (int64_t o = 0; o < h; ++o)
          for (int64_t k = 0; k < d; ++k)
            part.params[0].f()[o * d + k] = at(ref.params[0], k0 + k, o0 + o);
        for (int64_t o = 0; o < part.params[1].numel(); ++o)
          part.params[1].f()[o] = ref.params[1].f()[(column ? o0 : 0) + o];
        Tensor px({N, d}), py({N, h}), pdy({N, h}), pdx({N, d});
        for (int64_t r = 0; r < N; ++r)
          for (int64_t k = 0; k < d; ++k) px.f()[r * d + k] = at(x, r, k0 + k);
        for (int64_t r = 0; r < N; ++r)
          for (int64_t o = 0; o < h; ++o) pdy.f()[r * h + o] = at(dy, r, o0 + o);
        part.run(px, py, pdy, pdx);
        for (int64_t r = 0; r < N; ++r)
          for (int64_t o = 0; o < h; ++o) y_sum[size_t(r * H + o0 + o)] += at(py, r, o);
        for (int64_t o = 0; o < h; ++o)
          for (int64_t k = 0; k < d; ++k)
            check_close(at(part.grads[0], o, k), at(ref.grads[0], k0 + k, o0 + o));
        if (!column)  // a row part's dx is its slice of the whole input's gradient
          for (int64_t r = 0; r < N; ++r)
            for (int64_t k = 0; k < d; ++k) check_close(at(pdx, r, k), at(rdx, r, k0 + k));
        if (column && count == 1)
          for (int64_t k = 0; k < N * D; ++k) check_close(pdx.f()[k], dx.f()[k]);
      }
      for (int64_t k = 0; k < N * H; ++k) check_close(y_sum[size_t(k)], want_y.f()[k]);
    }
  }
}

TEST_CASE("linear ROW parts yield partial sums with the bias once, and sliced gradients") {
  const int64_t N = 3, D = 8, H = 5;
  const std::string options = "units = 5";
  std::mt19937 rng(11);
  Part whole(options, {D});
  for (auto& p : whole.params) randomise(p, rng);
  Tensor x({N, D}), y({N, H}), dy({N, H}), dx({N, D});
  randomise(x, rng);
  randomise(dy, rng);
  whole.run(x, y, dy, dx);
  for (int count : {2, 4}) {
    CAPTURE(count);
    const int64_t d_part = D / count;
    std::vector<float> y_sum(size_t(N * H), 0.0f);
    for (int i = 0; i < count; ++i) {
      Part part(options, {D}, GRAFT_SHARD_ROW, i, count);
      REQUIRE(part.desc.output.dims[0] == H);
      const graft_param_spec& w = part.desc.params[0];
      CHECK(w.shape.dims[0] == d_part);
      CHECK(w.shape.dims[1] == H);
      CHECK(w.shard_axis == 0);
      CHECK(w.fan_in == D);
      CHECK(w.fan_out == H);
      CHECK(part.desc.params[1].shard_axis == -1);  // the bias stays whole
      CHECK(part.desc.params[1].shape.dims[0] == H);
      // Rows i * d_part .. of the (D, H) weight are one contiguous run.
      for (int64_t k = 0; k < d_part * H; ++k)
        part.params[0].f()[k] = whole.params[0].f()[i * d_part * H + k];
      for (int64_t c = 0; c < H; ++c) part.params[1].f()[c] = whole.params[1].f()[c];
      Tensor px({N, d_part}), py({N, H}), pdx({N, d_part});
      for (int64_t r = 0; r < N; ++r)
        for (int64_t c = 0; c < d_part; ++c) px.f()[r * d_part + c] = at(x, r, i * d_part + c);
      part.run(px, py, dy, pdx);
      for (int64_t k = 0; k < N * H; ++k) y_sum[size_t(k)] += py.f()[k];
      for (int64_t d = 0; d < d_part; ++d)
        for (int64_t c = 0; c < H; ++c)
          check_close(at(part.grads[0], d, c), at(whole.grads[0], i * d_part + d, c));
      // Every part computes the whole bias gradient from the whole dy: replicas stay equal.
      for (int64_t c = 0; c < H; ++c) CHECK(part.grads[1].f()[c] == whole.grads[1].f()[c]);
      for (int64_t r = 0; r < N; ++r)
        for (int64_t c = 0; c < d_part; ++c) check_close(at(pdx, r, c), at(dx, r, i * d_part + c));
    }
    for (int64_t k = 0; k < N * H; ++k) check_close(y_sum[size_t(k)], y.f()[k]);
  }
}

TEST_CASE("linear refuses a split it cannot make, naming what to change") {
  auto message = [](const std::string& options, std::vector<int64_t> input, int mode, int count) {
    try {
      Part part(options, std::move(input), mode, 0, count);
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string uneven = message("units = 10", {4}, GRAFT_SHARD_COLUMN, 4);
  CHECK(uneven.find("units = 10") != std::string::npos);
  CHECK(uneven.find("[parallel]") != std::string::npos);
  const std::string rows = message("units = 4", {6}, GRAFT_SHARD_ROW, 4);
  CHECK(rows.find("input features") != std::string::npos);
  const std::string fused = message("units = 4\nactivation = \"relu\"", {8}, GRAFT_SHARD_ROW, 2);
  CHECK(fused.find("activation = \"relu\"") != std::string::npos);
  const std::string image = message("units = 4", {2, 4}, GRAFT_SHARD_ROW, 2);
  CHECK(image.find("set flatten = false") != std::string::npos);
  CHECK(message("units = 4\nactivation = \"relu\"", {8}, GRAFT_SHARD_COLUMN, 2) == "no error");
}

// --- A model built with a plan, two "ranks" in one process ---

namespace {

using graft::runtime::Model;
using graft::runtime::ModelSettings;
using graft::runtime::PluginChoice;

PluginChoice choice(graft_kind kind, const std::string& name, const std::string& text = "") {
  const graft::runtime::PluginRecord* r = builtin_registry().find(kind, name);
  REQUIRE(r);
  return PluginChoice{r, options(kind, name, text), "[test " + name + "]"};
}

// (5) -> two Megatron pairs: linear 8 | tanh | linear 6, then linear 8 (relu fused) | linear 3.
// `shards` > 1 builds part `index` of the plan tensor_parallel makes for it.
std::unique_ptr<Model> two_pairs(int32_t shards, int32_t index) {
  std::vector<PluginChoice> layers;
  layers.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 8"));
  layers.push_back(choice(GRAFT_KIND_ACTIVATION, "tanh"));
  layers.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 6"));
  layers.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 8\nactivation = \"relu\""));
  layers.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 3"));
  ModelSettings s;
  s.max_batch = 4;
  s.seed = 5;
  s.schedule.lr = 0.05;
  if (shards > 1) {
    const int32_t modes[] = {GRAFT_SHARD_COLUMN, GRAFT_SHARD_NONE, GRAFT_SHARD_ROW,
                             GRAFT_SHARD_COLUMN, GRAFT_SHARD_ROW};
    for (int32_t m : modes) s.placement.push_back({sizeof(graft_layer_placement), 0, m});
    s.shards = shards;
    s.shard_index = index;
  }
  graft_target_info target{sizeof(graft_target_info), graft_shape{0, {}}, DLDataType{kDLInt, 32, 1},
                           3};
  return std::make_unique<Model>(std::move(layers), choice(GRAFT_KIND_LOSS, "cross_entropy"),
                                 choice(GRAFT_KIND_OPTIMIZER, "adam"), graft_shape{1, {5}}, target,
                                 s);
}

// Each part's copy of a tensor made the sum of all (what an all-reduce leaves on every rank).
void sum_in_place(std::vector<const DLTensor*> parts) {
  const int64_t n = graft::runtime::tensor_numel(*parts[0]);
  for (int64_t k = 0; k < n; ++k) {
    float total = 0.0f;
    for (const DLTensor* p : parts) total += static_cast<const float*>(p->data)[k];
    for (const DLTensor* p : parts) static_cast<float*>(p->data)[k] = total;
  }
}

// The whole parameter `p` of `whole` compared with the parts' slices along its shard axis.
void check_slices(Model& whole, std::vector<std::unique_ptr<Model>>& parts, double tolerance) {
  const int32_t count = static_cast<int32_t>(parts.size());
  for (size_t k = 0; k < whole.parameters().size(); ++k) {
    const auto& w = whole.parameters()[k];
    CAPTURE(w.name);
    const float* all = whole.parameter_data() + w.offset;
    std::vector<float> gathered(w.numel, 0.0f);
    for (int32_t i = 0; i < count; ++i) {
      const auto& p = parts[size_t(i)]->parameters()[k];
      REQUIRE(p.name == w.name);
      const float* part = parts[size_t(i)]->parameter_data() + p.offset;
      if (p.spec.shard_axis < 0) {
        REQUIRE(p.numel == w.numel);
        for (size_t e = 0; e < w.numel; ++e)
          CHECK(part[e] == parts[0]->parameter_data()[parts[0]->parameters()[k].offset + e]);
        std::copy(part, part + p.numel, gathered.begin());
        continue;
      }
      // (outer, length, inner) around the axis; part i holds lengths [i * length, ...).
      int64_t outer = 1, length = p.shape.dims[p.spec.shard_axis], inner = 1;
      for (int d = 0; d < p.shape.ndim; ++d) {
        if (d < p.spec.shard_axis) outer *= p.shape.dims[d];
        if (d > p.spec.shard_axis) inner *= p.shape.dims[d];
      }
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t j = 0; j < length * inner; ++j)
          gathered[size_t((o * count + i) * length * inner + j)] = part[o * length * inner + j];
    }
    for (size_t e = 0; e < w.numel; ++e)
      CHECK(std::fabs(gathered[e] - all[e]) <=
            tolerance * std::max(1.0, std::fabs(double(all[e]))));
  }
}

}  // namespace

TEST_CASE("a model built with a tensor-parallel plan holds slices of the whole model's values") {
  auto whole = two_pairs(1, 0);
  for (int32_t count : {2, 4}) {
    CAPTURE(count);
    std::vector<std::unique_ptr<Model>> parts;
    for (int32_t i = 0; i < count; ++i) parts.push_back(two_pairs(count, i));
    CHECK(parts[0]->layer_output(0).dims[0] == 8 / count);  // the COLUMN part's output
    CHECK(parts[0]->layer_output(2).dims[0] == 6);          // the ROW layer's is whole
    check_slices(*whole, parts, 0.0);  // initialisation: exactly the whole tensor's slice
  }
}

TEST_CASE("two model parts stepped side by side train exactly as the whole model") {
  const int64_t N = 4;
  graft::test::Tensor x({N, 5}), y({N}, DLDataType{kDLInt, 32, 1});
  std::mt19937 rng(3);
  randomise(x, rng);
  for (int64_t r = 0; r < N; ++r) y.i()[r] = int32_t(r % 3);
  graft_exec_ctx ctx = cpu_ctx(true);
  ctx.global_batch = N;
  ctx.slot = 0;

  auto whole = two_pairs(1, 0);
  std::vector<std::unique_ptr<Model>> parts;
  for (int32_t i = 0; i < 2; ++i) parts.push_back(two_pairs(2, i));
  for (int step = 0; step < 5; ++step) {
    ctx.step = step;
    graft_step_result expected{sizeof(graft_step_result), 0.0, {}, 0};
    whole->zero_grad();
    const DLTensor* pred = whole->forward(ctx, 0, 5, *x.get());
    const DLTensor* dpred = whole->loss(ctx, *pred, *y.get(), expected, true);
    whole->backward(ctx, 0, 5, *dpred, nullptr, nullptr);
    whole->optimizer_step(ctx);

    // tensor_parallel's step, with sums for its all-reduces.
    std::vector<const DLTensor*> outs, grads;
    for (auto& m : parts) m->zero_grad();
    for (auto& m : parts) outs.push_back(m->forward(ctx, 0, 3, *x.get()));
    sum_in_place(outs);
    std::vector<const DLTensor*> preds;
    for (size_t i = 0; i < 2; ++i) preds.push_back(parts[i]->forward(ctx, 3, 5, *outs[i]));
    sum_in_place(preds);
    std::vector<const DLTensor*> dpreds;
    for (size_t i = 0; i < 2; ++i) {
      graft_step_result got{sizeof(graft_step_result), 0.0, {}, 0};
      dpreds.push_back(parts[i]->loss(ctx, *preds[i], *y.get(), got, true));
      CHECK(got.loss_sum == doctest::Approx(expected.loss_sum).epsilon(1e-6));
    }
    for (size_t i = 0; i < 2; ++i)
      grads.push_back(parts[i]->backward(ctx, 3, 5, *dpreds[i], nullptr, nullptr));
    sum_in_place(grads);
    for (size_t i = 0; i < 2; ++i) parts[i]->backward(ctx, 0, 3, *grads[i], nullptr, nullptr);
    for (auto& m : parts) m->optimizer_step(ctx);
  }
  check_slices(*whole, parts, 1e-5);
}

TEST_CASE("the layer survey keeps only the shard modes this linear's options allow") {
  std::vector<PluginChoice> layers;
  layers.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 8"));
  layers.push_back(choice(GRAFT_KIND_LAYER, "linear", "units = 8\nactivation = \"relu\""));
  layers.push_back(choice(GRAFT_KIND_ACTIVATION, "relu"));
  const auto survey = graft::runtime::survey_layers(layers, graft_shape{1, {5}});
  const uint32_t both = GRAFT_ENTRY_SHARD_COLUMN | GRAFT_ENTRY_SHARD_ROW;
  CHECK((survey[0].flags & both) == both);
  // A fused activation cannot follow a row split's partial sums: column only.
  CHECK((survey[1].flags & both) == GRAFT_ENTRY_SHARD_COLUMN);
  CHECK((survey[2].flags & both) == 0);
  CHECK((survey[2].flags & GRAFT_ENTRY_ELEMENTWISE) != 0);
}
