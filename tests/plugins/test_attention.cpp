// The attention layer: forward against a naive double-precision softmax, gradients by finite
// differences (dropout included), dropout masks independent of the batch split, an O(T*C)
// workspace, option errors, and a copy task only attention can learn. Shards and the
// key-value cache are in test_attention_parts.cpp.
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "attention_reference.hpp"
#include "gradient_check.hpp"

namespace {

using namespace graft::test;
using graft::test::attention_reference::reference;

const graft::runtime::PluginRecord& attention() {
  return builtin_registry().get(GRAFT_KIND_LAYER, "attention");
}

void randomise(Tensor& t, std::mt19937& rng, float scale) {
  std::uniform_real_distribution<float> u(-scale, scale);
  for (int64_t i = 0; i < t.numel(); ++i) t.f()[i] = u(rng);
}

std::string options_text(int heads, bool causal, bool rope, int block, double dropout = 0.0) {
  return "heads = " + std::to_string(heads) + "\ncausal = " + (causal ? "true" : "false") +
         "\nrope = " + (rope ? "true" : "false") + "\nblock = " + std::to_string(block) +
         "\ndropout = " + std::to_string(dropout);
}

}  // namespace

TEST_CASE("attention: parameters, their shapes and the workspace") {
  LayerUnderTest l(attention(), "heads = 2", {5, 8}, 1);
  const graft_layer_desc& d = l.desc();
  CHECK(d.output.ndim == 2);
  CHECK(d.output.dims[0] == 5);
  CHECK(d.output.dims[1] == 8);
  REQUIRE(d.n_params == 4);
  const char* names[] = {"qkv_weight", "qkv_bias", "output_weight", "output_bias"};
  for (size_t k = 0; k < 4; ++k) CHECK(std::string(d.params[k].name) == names[k]);
  CHECK(d.params[0].shape.ndim == 3);
  CHECK(d.params[0].shape.dims[1] == 3);
  CHECK(d.params[0].fan_in == 8);
  CHECK(d.params[0].fan_out == 24);
  CHECK(d.params[1].is_bias_or_norm == 1);
  CHECK(d.params[3].is_bias_or_norm == 1);
  CHECK(d.params[2].is_bias_or_norm == 0);
  LayerUnderTest gpt(attention(), "heads = 2\nbias = false\ninit = \"normal\"", {5, 8}, 1);
  REQUIRE(gpt.desc().n_params == 2);
  CHECK(gpt.desc().params[0].init == GRAFT_INIT_NORMAL);
  CHECK(gpt.desc().params[0].gain == doctest::Approx(0.02));
}

TEST_CASE("attention: the workspace grows as T * C, never T * T") {
  constexpr int64_t t = 4096, c = 256;
  LayerUnderTest l(attention(), "heads = 4", {t, c}, 1);
  const int64_t floats = l.desc().workspace_per_sample;
  CHECK(floats <= 9 * t * c);
  CHECK(floats < t * t);  // one head's T x T scores alone would be 16M floats
  LayerUnderTest half(attention(), "heads = 4", {t / 2, c}, 1);
  CHECK(2 * half.desc().workspace_per_sample == floats);  // linear in T
}

TEST_CASE("attention: forward equals a full softmax in double precision") {
  struct Case {
    int heads;
    bool causal, rope;
    int64_t t, c;
    int block;
  };
  const std::vector<Case> cases{
      {1, true, false, 11, 8, 4},   {2, true, false, 11, 8, 4},   {4, false, false, 11, 8, 4},
      {2, false, true, 11, 8, 4},   {4, true, true, 11, 8, 4},    {1, true, true, 5, 6, 64},
      {2, true, false, 70, 16, 64}, {2, false, true, 70, 16, 64}, {2, true, true, 9, 8, 1},
  };
  std::mt19937 rng(5);
  for (const Case& k : cases) {
    CAPTURE(k.heads);
    CAPTURE(k.causal);
    CAPTURE(k.rope);
    CAPTURE(k.t);
    CAPTURE(k.block);
    LayerUnderTest l(attention(), options_text(k.heads, k.causal, k.rope, k.block), {k.t, k.c}, 3);
    for (Tensor& p : l.params) randomise(p, rng, 0.6f);
    randomise(l.x, rng, 1.0f);
    l.forward(cpu_ctx(false));
    const std::vector<double> want =
        reference(l.x, l.params, 3, k.t, k.c, k.heads, k.causal, k.rope, 10000.0);
    double worst = 0.0;
    for (int64_t i = 0; i < l.y.numel(); ++i)
      worst = std::max(worst, std::fabs(l.y.f()[i] - want[size_t(i)]) /
                                  std::max(1.0, std::fabs(want[size_t(i)])));
    CHECK(worst < 2e-5);
  }
}

TEST_CASE("attention: gradients by finite differences") {
  GradientSettings settings;
  settings.ctx.global_batch = settings.batch;
  for (const bool causal : {true, false})
    for (const bool rope : {false, true})
      for (const int heads : {1, 2, 4}) {
        CAPTURE(causal);
        CAPTURE(rope);
        CAPTURE(heads);
        const GradientReport report =
            check_layer(attention(), options_text(heads, causal, rope, 3), {7, 8}, settings);
        CHECK_MESSAGE(report.ok, report.summary());
      }
}

TEST_CASE("attention: gradients with dropout on the probabilities, and without biases") {
  GradientSettings settings;
  settings.ctx.global_batch = settings.batch;
  for (const bool causal : {true, false}) {
    CAPTURE(causal);
    GradientReport report =
        check_layer(attention(), options_text(2, causal, true, 4, 0.3), {9, 8}, settings);
    CHECK_MESSAGE(report.ok, report.summary());
    report = check_layer(attention(), "heads = 2\nbias = false", {6, 4}, settings);
    CHECK_MESSAGE(report.ok, report.summary());
  }
}

TEST_CASE("attention: dropout masks depend on the global row, not on the batch split") {
  const std::string options = options_text(2, true, false, 4, 0.5);
  std::mt19937 rng(3);
  LayerUnderTest together(attention(), options, {6, 8}, 4), alone(attention(), options, {6, 8}, 2);
  for (Tensor& p : together.params) randomise(p, rng, 0.6f);
  alone.params = together.params;
  randomise(together.x, rng, 1.0f);
  for (int64_t i = 0; i < alone.x.numel(); ++i) alone.x.f()[i] = together.x.f()[2 * 48 + i];
  graft_exec_ctx ctx = cpu_ctx(true);
  ctx.global_batch = 4;
  together.forward(ctx);
  ctx.row_offset = 2;  // rows 2 and 3 of the same global batch
  alone.forward(ctx);
  for (int64_t i = 0; i < alone.y.numel(); ++i)
    CHECK(alone.y.f()[i] == doctest::Approx(together.y.f()[2 * 48 + i]).epsilon(1e-5));
  // The masks do drop: evaluation (no dropout) gives another output.
  const Tensor dropped = alone.y;
  alone.forward(cpu_ctx(false));
  double differ = 0.0;
  for (int64_t i = 0; i < alone.y.numel(); ++i)
    differ = std::max(differ, double(std::fabs(alone.y.f()[i] - dropped.f()[i])));
  CHECK(differ > 1e-3);
}

TEST_CASE("attention: errors name the key and the fix") {
  const std::string uneven = user_error([] {
    LayerUnderTest l(attention(), "heads = 3", {4, 8}, 1);
  });
  CHECK(has(uneven, "heads = 3"));
  CHECK(has(uneven, "C = 8"));
  CHECK(has(uneven, "choose heads dividing 8: 1, 2, 4, 8"));
  const std::string odd = user_error([] {
    LayerUnderTest l(attention(), "heads = 2\nrope = true", {4, 6}, 1);
  });
  CHECK(has(odd, "rope"));
  CHECK(has(odd, "heads = 2"));
  CHECK(has(odd, "even C / heads: 1, 3"));
  const std::string flat = user_error([] { LayerUnderTest l(attention(), "heads = 1", {8}, 1); });
  CHECK(has(flat, "(T, C)"));
}
