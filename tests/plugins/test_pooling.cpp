// The pooling plugins max_pool2d and avg_pool2d: values and gradients worked out by hand,
// finite-difference gradients, padding rules and shape errors.
#include <cmath>
#include <limits>
#include <random>
#include <string>

#include "gradient_check.hpp"
#include "util/errors.hpp"

namespace {

using graft::runtime::PluginRecord;
using graft::runtime::UserError;
using namespace graft::test;

void set(Tensor& t, std::initializer_list<float> values) {
  REQUIRE(static_cast<int64_t>(values.size()) == t.numel());
  int64_t i = 0;
  for (float v : values) t.f()[i++] = v;
}

void expect(const Tensor& t, std::initializer_list<float> values) {
  REQUIRE(static_cast<int64_t>(values.size()) == t.numel());
  int64_t i = 0;
  for (float v : values) {
    CAPTURE(i);
    CHECK(t.f()[i++] == doctest::Approx(v));
  }
}

}  // namespace

TEST_CASE("max_pool2d: 2x2 windows by hand; dy goes to each window's largest value") {
  LayerUnderTest l(layer("max_pool2d"), "", {1, 4, 4}, 1);
  CHECK(l.desc().output.dims[1] == 2);  // stride defaults to kernel_size
  CHECK(l.desc().workspace_per_sample == 4);
  set(l.x, {1, 5, 2, 0, 3, 4, 8, 7, -1, -2, 6, 6, -4, -3, 6, 9});
  l.forward(cpu_ctx());
  expect(l.y, {5, 8, -1, 9});
  set(l.dy, {10, 20, 30, 40});
  l.backward(cpu_ctx());
  expect(l.dx, {0, 10, 0, 0, 0, 0, 20, 0, 30, 0, 0, 0, 0, 0, 0, 40});
}

TEST_CASE("max_pool2d: overlapping windows with padding add up at a shared winner") {
  // kernel 3, stride 2, padding 1 over (1, 3, 3): windows centred on the corners.
  LayerUnderTest l(layer("max_pool2d"), "kernel_size = 3\nstride = 2\npadding = 1", {1, 3, 3}, 1);
  REQUIRE(l.desc().output.dims[1] == 2);
  set(l.x, {-5, -6, -7, -8, -1, -9, -2, -3, -4});
  l.forward(cpu_ctx());
  expect(l.y, {-1, -1, -1, -1});  // padding never wins, even over negative values
  set(l.dy, {1, 2, 3, 4});
  l.backward(cpu_ctx());
  expect(l.dx, {0, 0, 0, 0, 10, 0, 0, 0, 0});
}

TEST_CASE("max_pool2d: the first of equal values wins and NaN propagates, as in PyTorch") {
  LayerUnderTest l(layer("max_pool2d"), "", {2, 2, 2}, 1);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  set(l.x, {7, 7, 7, 7, 1, nan, 3, 2});
  l.forward(cpu_ctx());
  CHECK(l.y.f()[0] == 7.0f);
  CHECK(std::isnan(l.y.f()[1]));
  set(l.dy, {1, 1});
  l.backward(cpu_ctx());
  expect(l.dx, {1, 0, 0, 0, 0, 1, 0, 0});
}

TEST_CASE("avg_pool2d: means by hand, with and without the padding in the divisor") {
  LayerUnderTest plain(layer("avg_pool2d"), "", {1, 2, 4}, 1);
  set(plain.x, {1, 2, 3, 4, 5, 6, 7, 8});
  plain.forward(cpu_ctx());
  expect(plain.y, {3.5f, 5.5f});
  set(plain.dy, {4, 8});
  plain.backward(cpu_ctx());
  expect(plain.dx, {1, 1, 2, 2, 1, 1, 2, 2});

  // kernel 2, stride 1, padding 1 over (1, 2, 2): a 3x3 output whose corner windows hold one
  // input value, edges two and the centre four.
  const char* padded = "stride = 1\npadding = 1";
  LayerUnderTest counted(layer("avg_pool2d"), padded, {1, 2, 2}, 1);
  LayerUnderTest inside(layer("avg_pool2d"), std::string(padded) + "\ncount_include_pad = false",
                        {1, 2, 2}, 1);
  for (LayerUnderTest* l : {&counted, &inside}) {
    set(l->x, {4, 8, 12, 16});
    l->forward(cpu_ctx());
    set(l->dy, {1, 1, 1, 1, 1, 1, 1, 1, 1});
    l->backward(cpu_ctx());
  }
  expect(counted.y, {1, 3, 2, 4, 10, 6, 3, 7, 4});
  expect(inside.y, {4, 6, 8, 8, 10, 12, 12, 14, 16});
  // Each input lies in 4 windows: a corner (divisor 4 or 1), two edges (4 or 2), the centre.
  expect(counted.dx, {1, 1, 1, 1});
  expect(inside.dx, {2.25f, 2.25f, 2.25f, 2.25f});
}

TEST_CASE("pooling: values and winners match a direct max and mean over random inputs") {
  struct Case {
    int64_t kernel, stride, padding;
  };
  // The default 2x2 windows (max_pool2d's vectorized path) on odd sizes, then other windows.
  const Case cases[] = {{2, 2, 0}, {3, 2, 1}, {2, 1, 0}, {3, 3, 0}, {4, 2, 2}};
  const int64_t c = 3, h = 7, w = 9, batch = 2;
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (const Case& k : cases) {
    const std::string options = "kernel_size = " + std::to_string(k.kernel) +
                                "\nstride = " + std::to_string(k.stride) +
                                "\npadding = " + std::to_string(k.padding);
    CAPTURE(options);
    LayerUnderTest max(layer("max_pool2d"), options, {c, h, w}, batch);
    LayerUnderTest mean(layer("avg_pool2d"), options + "\ncount_include_pad = false", {c, h, w},
                        batch);
    for (int64_t i = 0; i < max.x.numel(); ++i) max.x.f()[i] = uniform(rng);
    mean.x = max.x;
    max.forward(cpu_ctx());
    mean.forward(cpu_ctx());
    for (int64_t i = 0; i < max.dy.numel(); ++i) max.dy.f()[i] = static_cast<float>(i + 1);
    max.backward(cpu_ctx());
    const int64_t oh_count = max.desc().output.dims[1], ow_count = max.desc().output.dims[2];
    Tensor expected_dx = max.dx;
    for (int64_t i = 0; i < expected_dx.numel(); ++i) expected_dx.f()[i] = 0.0f;
    for (int64_t plane = 0; plane < batch * c; ++plane)
      for (int64_t oh = 0; oh < oh_count; ++oh)
        for (int64_t ow = 0; ow < ow_count; ++ow) {
          float best = -INFINITY, sum = 0.0f;
          int64_t winner = -1, count = 0;
          for (int64_t i = 0; i < k.kernel; ++i)
            for (int64_t j = 0; j < k.kernel; ++j) {
              const int64_t ih = oh * k.stride - k.padding + i, iw = ow * k.stride - k.padding + j;
              if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
              const int64_t at = plane * h * w + ih * w + iw;
              if (max.x.f()[at] > best) {
                best = max.x.f()[at];
                winner = at;
              }
              sum += max.x.f()[at];
              ++count;
            }
          const int64_t out = (plane * oh_count + oh) * ow_count + ow;
          CHECK(max.y.f()[out] == best);
          CHECK(mean.y.f()[out] == doctest::Approx(sum / count));
          expected_dx.f()[winner] += max.dy.f()[out];
        }
    for (int64_t i = 0; i < expected_dx.numel(); ++i) CHECK(max.dx.f()[i] == expected_dx.f()[i]);
  }
}

TEST_CASE("pooling: finite-difference gradients") {
  struct Case {
    const char* name;
    const char* options;
    std::vector<int64_t> shape;
  };
  const Case cases[] = {
      {"max_pool2d", "", {2, 6, 6}},
      {"max_pool2d", "kernel_size = 3\nstride = 2\npadding = 1", {3, 7, 5}},
      {"max_pool2d", "kernel_size = 2\nstride = 1", {1, 4, 5}},
      {"avg_pool2d", "", {2, 6, 6}},
      {"avg_pool2d", "kernel_size = 3\nstride = 2\npadding = 1", {3, 7, 5}},
      {"avg_pool2d",
       "kernel_size = 3\npadding = 1\nstride = 1\ncount_include_pad = false",
       {2, 4, 4}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    CAPTURE(c.options);
    GradientReport report = check_layer(layer(c.name), c.options, c.shape);
    CHECK_MESSAGE(report.ok, report.summary());
    CHECK(report.checked == 3 * c.shape[0] * c.shape[1] * c.shape[2]);
  }
}

TEST_CASE("pooling: shape and option errors name the problem and the fix") {
  for (const char* name : {"max_pool2d", "avg_pool2d"}) {
    CAPTURE(name);
    CHECK_THROWS_WITH_AS(LayerUnderTest(layer(name), "", {64}, 1),
                         doctest::Contains("the input per sample is (64,)"), UserError);
    CHECK_THROWS_WITH_AS(LayerUnderTest(layer(name), "kernel_size = 3\npadding = 2", {1, 8, 8}, 1),
                         doctest::Contains("padding = 2 is more than half of kernel_size = 3"),
                         UserError);
    CHECK_THROWS_WITH_AS(LayerUnderTest(layer(name), "kernel_size = 4", {2, 3, 8}, 1),
                         doctest::Contains("the input (2, 3, 8) is smaller than the 4 x 4 window"),
                         UserError);
    CHECK_THROWS_WITH_AS(LayerUnderTest(layer(name), "kernel_size = 0", {1, 8, 8}, 1),
                         doctest::Contains("out of range"), UserError);
  }
  CHECK_THROWS_WITH_AS(
      LayerUnderTest(layer("max_pool2d"), "count_include_pad = true", {1, 8, 8}, 1),
      doctest::Contains("unknown key 'count_include_pad'"), UserError);
}
