// The attention layer in pieces: tensor-parallel parts by heads (shard PAIR) sum to the whole
// layer; a layer made for one position, fed position by position over its key-value cache,
// gives the whole sequence's causal output; and a copy task that only attention can learn.
#include <cmath>
#include <random>
#include <string>

#include "gradient_check.hpp"

namespace {

using namespace graft::test;
namespace rt = graft::runtime;

const rt::PluginRecord& attention() {
  return builtin_registry().get(GRAFT_KIND_LAYER, "attention");
}

// An attention layer through its vtable, optionally sharded, with parameters and gradients.
struct Part {
  Part(const std::string& options, std::vector<int64_t> input, int index = 0, int count = 1)
      : vt(&attention().vtable<graft_layer_vtable>()) {
    graft_shape shape{static_cast<int32_t>(input.size()), {}};
    for (size_t d = 0; d < input.size(); ++d) shape.dims[d] = input[d];
    const auto bound = bind_text(attention(), options);
    rt::throw_if_failed(vt->create(rt::host_api(), bound.get(), &shape, &self), "create");
    if (count > 1)
      rt::throw_if_failed(vt->shard(self, GRAFT_SHARD_PAIR, index, count), "attention shard");
    desc.struct_size = sizeof desc;
    rt::throw_if_failed(vt->describe(self, &desc), "describe");
    for (size_t k = 0; k < desc.n_params; ++k) {
      const graft_shape& s = desc.params[k].shape;
      params.emplace_back(std::vector<int64_t>(s.dims, s.dims + s.ndim));
      grads.emplace_back(std::vector<int64_t>(s.dims, s.dims + s.ndim));
    }
  }
  ~Part() { vt->destroy(self); }
  Part(const Part&) = delete;
  Part& operator=(const Part&) = delete;

  void forward(const graft_exec_ctx& ctx, const Tensor& x, Tensor& y) {
    workspace = Tensor({x.shape()[0], desc.workspace_per_sample});
    rt::throw_if_failed(
        vt->forward(self, &ctx, pointers().data(), x.get(), y.get(), workspace.get()), "forward");
  }
  void backward(const graft_exec_ctx& ctx, const Tensor& x, const Tensor& y, const Tensor& dy,
                Tensor& dx) {
    std::vector<DLTensor*> g;
    for (auto& t : grads) g.push_back(t.get());
    rt::throw_if_failed(vt->backward(self, &ctx, pointers().data(), x.get(), y.get(), dy.get(),
                                     dx.get(), g.data(), workspace.get()),
                        "backward");
  }
  void positions(int64_t first, int64_t capacity) {
    rt::throw_if_failed(vt->set_positions(self, first, capacity), "set_positions");
  }
  std::vector<const DLTensor*> pointers() {
    std::vector<const DLTensor*> p;
    for (auto& t : params) p.push_back(t.get());
    return p;
  }

  const graft_layer_vtable* vt;
  void* self = nullptr;
  graft_layer_desc desc{};
  std::vector<Tensor> params, grads;
  Tensor workspace{std::vector<int64_t>{1}};
};

void randomise(Tensor& t, std::mt19937& rng, float scale = 1.0f) {
  std::uniform_real_distribution<float> u(-scale, scale);
  for (int64_t i = 0; i < t.numel(); ++i) t.f()[i] = u(rng);
}

void check_close(float got, float want) {
  CHECK(std::fabs(got - want) <= 2e-5f * std::max(1.0f, std::fabs(want)));
}

}  // namespace

TEST_CASE("attention declares the PAIR shard on its entry") {
  CHECK((attention().entry->flags & GRAFT_ENTRY_SHARD_PAIR) != 0);
}

TEST_CASE("attention PAIR parts: outputs and dx sum to the whole's, gradients are its slices") {
  constexpr int64_t N = 3, T = 7, C = 8, count = 2, P = C / count;
  // Dropout too: a part must draw its heads' slice of the whole layer's masks.
  const std::string options = "heads = 4\nrope = true\nblock = 3\ndropout = 0.25";
  std::mt19937 rng(7);
  Part whole(options, {T, C});
  for (auto& p : whole.params) randomise(p, rng, 0.6f);
  Tensor x({N, T, C}), y({N, T, C}), dy({N, T, C}), dx({N, T, C});
  randomise(x, rng);
  randomise(dy, rng);
  graft_exec_ctx ctx = cpu_ctx(true);
  ctx.global_batch = N;
  whole.forward(ctx, x, y);
  whole.backward(ctx, x, y, dy, dx);
  std::vector<float> y_sum(size_t(N * T * C), 0.0f), dx_sum(y_sum);
  for (int i = 0; i < count; ++i) {
    CAPTURE(i);
    Part part(options, {T, C}, i, count);
    const graft_param_spec* s = part.desc.params;
    CHECK(s[0].shape.dims[2] == P);
    CHECK(s[0].shard_axis == 2);
    CHECK(s[0].fan_in == C);
    CHECK(s[0].fan_out == 3 * C);
    CHECK(s[1].shard_axis == 1);
    CHECK(s[2].shape.dims[0] == P);
    CHECK(s[2].shard_axis == 0);
    CHECK(s[3].shard_axis == -1);
    CHECK(s[3].shape.dims[0] == C);
    for (int64_t r = 0; r < 3 * C; ++r)  // (C, 3, P) rows of the whole's (C, 3, C)
      for (int64_t j = 0; j < P; ++j)
        part.params[0].f()[r * P + j] = whole.params[0].f()[r * C + i * P + j];
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t j = 0; j < P; ++j)
        part.params[1].f()[r * P + j] = whole.params[1].f()[r * C + i * P + j];
    for (int64_t k = 0; k < P * C; ++k) part.params[2].f()[k] = whole.params[2].f()[i * P * C + k];
    for (int64_t k = 0; k < C; ++k) part.params[3].f()[k] = whole.params[3].f()[k];
    Tensor py({N, T, C}), pdx({N, T, C});
    part.forward(ctx, x, py);
    part.backward(ctx, x, py, dy, pdx);
    for (int64_t k = 0; k < N * T * C; ++k) {
      y_sum[size_t(k)] += py.f()[k];
      dx_sum[size_t(k)] += pdx.f()[k];
    }
    for (int64_t r = 0; r < 3 * C; ++r)
      for (int64_t j = 0; j < P; ++j)
        check_close(part.grads[0].f()[r * P + j], whole.grads[0].f()[r * C + i * P + j]);
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t j = 0; j < P; ++j)
        check_close(part.grads[1].f()[r * P + j], whole.grads[1].f()[r * C + i * P + j]);
    for (int64_t k = 0; k < P * C; ++k)
      check_close(part.grads[2].f()[k], whole.grads[2].f()[i * P * C + k]);
    for (int64_t k = 0; k < C; ++k) check_close(part.grads[3].f()[k], whole.grads[3].f()[k]);
  }
  for (int64_t k = 0; k < N * T * C; ++k) {
    check_close(y_sum[size_t(k)], y.f()[k]);
    check_close(dx_sum[size_t(k)], dx.f()[k]);
  }
}

TEST_CASE("attention refuses a split of the heads it cannot make") {
  const std::string message = user_error([] { Part part("heads = 2", {4, 8}, 0, 4); });
  CHECK(has(message, "heads = 2"));
  CHECK(has(message, "divisible by 4"));
}

TEST_CASE("attention with a key-value cache: one position at a time gives the causal output") {
  constexpr int64_t N = 2, T = 8, C = 8;
  for (const bool rope : {false, true}) {
    CAPTURE(rope);
    const std::string options =
        std::string("heads = 2\nblock = 3\nrope = ") + (rope ? "true" : "false");
    std::mt19937 rng(9);
    Part whole(options, {T, C}), step(options, {1, C});
    for (auto& p : whole.params) randomise(p, rng, 0.6f);
    step.params = whole.params;
    Tensor x({N, T, C}), y({N, T, C});
    randomise(x, rng);
    const graft_exec_ctx ctx = cpu_ctx(false);
    whole.forward(ctx, x, y);
    for (int64_t t = 0; t < T; ++t) {
      CAPTURE(t);
      step.positions(t, T);
      Tensor xt({N, 1, C}), yt({N, 1, C});
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c) xt.f()[n * C + c] = x.f()[(n * T + t) * C + c];
      step.forward(ctx, xt, yt);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < C; ++c) check_close(yt.f()[n * C + c], y.f()[(n * T + t) * C + c]);
    }
    CHECK(has(user_error([&] { step.positions(T, T); }), "capacity"));
    CHECK(has(user_error([&] { step.positions(T + 3, 2 * T); }), "beyond"));
    step.positions(-1, 0);  // back to whole sequences
  }
}

TEST_CASE("attention learns to copy the token at position 0 to the last position") {
  // One-hot tokens of V kinds; the last position's output is read as logits over V. Only a
  // query that finds position 0 by its rotary angle (q and k from their biases) can do it.
  constexpr int64_t N = 32, T = 6, V = 8;
  LayerUnderTest l(attention(), "heads = 2\nrope = true", {T, V}, N);
  std::mt19937 rng(1);
  l.init_parameters(rng);
  std::uniform_int_distribution<int> token(0, V - 1);
  const graft_exec_ctx ctx = cpu_ctx(true);
  double first_loss = 0.0, loss = 0.0;
  for (int step = 0; step < 400; ++step) {
    std::vector<int> target(N);
    for (int64_t i = 0; i < l.x.numel(); ++i) l.x.f()[i] = 0.0f;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t t = 0; t < T; ++t) {
        const int k = token(rng);
        l.x.f()[(n * T + t) * V + k] = 1.0f;
        if (t == 0) target[size_t(n)] = k;
      }
    l.forward(ctx);
    loss = 0.0;
    for (int64_t i = 0; i < l.dy.numel(); ++i) l.dy.f()[i] = 0.0f;
    for (int64_t n = 0; n < N; ++n) {  // softmax cross-entropy on the last position
      const float* logits = l.y.f() + (n * T + T - 1) * V;
      double top = logits[0], total = 0.0;
      for (int64_t k = 1; k < V; ++k) top = std::max(top, double(logits[k]));
      for (int64_t k = 0; k < V; ++k) total += std::exp(logits[k] - top);
      loss += (std::log(total) + top - logits[target[size_t(n)]]) / N;
      for (int64_t k = 0; k < V; ++k)
        l.dy.f()[(n * T + T - 1) * V + k] =
            float((std::exp(logits[k] - top) / total - (k == target[size_t(n)])) / N);
    }
    if (step == 0) first_loss = loss;
    l.zero_gradients();
    l.backward(ctx, false);
    for (size_t p = 0; p < l.params.size(); ++p)
      for (int64_t i = 0; i < l.params[p].numel(); ++i)
        l.params[p].f()[i] -= 1.0f * l.grads[p].f()[i];
  }
  MESSAGE("copy task: loss " << first_loss << " -> " << loss << " (chance " << std::log(V) << ")");
  CHECK(first_loss > 0.8 * std::log(double(V)));
  CHECK(loss < 0.25 * std::log(double(V)));
}
