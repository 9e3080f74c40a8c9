// The conv2d layer plugin: finite-difference gradients over strides, padding, dilation, groups
// and fused activations; forward and backward against a direct convolution; errors; learning.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gradient_check.hpp"
#include "util/errors.hpp"

namespace {

using graft::runtime::PluginRecord;
using graft::runtime::UserError;
using namespace graft::test;

// One convolution: input (C, H, W), O output channels, a k x k kernel.
struct ConvCase {
  int64_t c, h, w, o, k, stride = 1, padding = 0, dilation = 1, groups = 1;
  bool bias = true;
  std::string algorithm = "auto";

  int64_t out_h() const { return (h + 2 * padding - dilation * (k - 1) - 1) / stride + 1; }
  int64_t out_w() const { return (w + 2 * padding - dilation * (k - 1) - 1) / stride + 1; }
  std::string toml() const {
    return "out_channels = " + std::to_string(o) + "\nkernel_size = " + std::to_string(k) +
           "\nstride = " + std::to_string(stride) + "\npadding = " + std::to_string(padding) +
           "\ndilation = " + std::to_string(dilation) + "\ngroups = " + std::to_string(groups) +
           "\nbias = " + (bias ? "true" : "false") + "\nalgorithm = \"" + algorithm + "\"";
  }
};

// The convolution written out as its definition, in double precision. Each visit(n, o, oh,
// ow, x index, w index) is one product x * w that output (n, o, oh, ow) sums.
template <class F>
void for_each_product(const ConvCase& cc, int64_t batch, F&& visit) {
  const int64_t per_group_in = cc.c / cc.groups, per_group_out = cc.o / cc.groups;
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t o = 0; o < cc.o; ++o)
      for (int64_t oh = 0; oh < cc.out_h(); ++oh)
        for (int64_t ow = 0; ow < cc.out_w(); ++ow)
          for (int64_t cl = 0; cl < per_group_in; ++cl)
            for (int64_t i = 0; i < cc.k; ++i)
              for (int64_t j = 0; j < cc.k; ++j) {
                const int64_t c = (o / per_group_out) * per_group_in + cl;
                const int64_t ih = oh * cc.stride - cc.padding + i * cc.dilation;
                const int64_t iw = ow * cc.stride - cc.padding + j * cc.dilation;
                if (ih < 0 || ih >= cc.h || iw < 0 || iw >= cc.w) continue;
                visit(n, o, oh, ow, ((n * cc.c + c) * cc.h + ih) * cc.w + iw,
                      ((o * per_group_in + cl) * cc.k + i) * cc.k + j);
              }
}

int64_t output_index(const ConvCase& cc, int64_t n, int64_t o, int64_t oh, int64_t ow) {
  return ((n * cc.o + o) * cc.out_h() + oh) * cc.out_w() + ow;
}

void fill_uniform(Tensor& t, std::mt19937& rng) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (int64_t i = 0; i < t.numel(); ++i) t.f()[i] = uniform(rng);
}

// Largest |a - b| over the tensor, relative to the largest |b|.
double relative_difference(const float* a, const std::vector<double>& b) {
  double worst = 0.0, scale = 1e-12;
  for (size_t i = 0; i < b.size(); ++i) {
    worst = std::max(worst, std::fabs(a[i] - b[i]));
    scale = std::max(scale, std::fabs(b[i]));
  }
  return worst / scale;
}

// Elements whose bits differ.
int64_t differing(const Tensor& a, const Tensor& b) {
  int64_t count = 0;
  for (int64_t i = 0; i < a.numel(); ++i) count += std::memcmp(a.f() + i, b.f() + i, 4) != 0;
  return count;
}

// Runs the plugin's forward and backward (no activation) on random data and compares y, dx,
// dW and db with for_each_product's sums.
void check_against_direct(const ConvCase& cc, int64_t batch) {
  CAPTURE(cc.toml());
  CAPTURE(batch);
  LayerUnderTest l(layer("conv2d"), cc.toml(), {cc.c, cc.h, cc.w}, batch);
  std::mt19937 rng(17);
  fill_uniform(l.x, rng);
  for (Tensor& p : l.params) fill_uniform(p, rng);
  fill_uniform(l.dy, rng);
  // The workspace starts as garbage: nothing may be read from it before it is written.
  for (int64_t i = 0; i < l.workspace.numel(); ++i)
    l.workspace.f()[i] = std::numeric_limits<float>::quiet_NaN();
  graft_exec_ctx ctx = cpu_ctx();
  l.forward(ctx);
  l.zero_gradients();
  l.backward(ctx, true);

  std::vector<double> y(l.y.numel(), 0.0), dx(l.x.numel(), 0.0), dw(l.params[0].numel(), 0.0);
  std::vector<double> db(cc.o, 0.0);
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t o = 0; o < cc.o; ++o)
      for (int64_t oh = 0; oh < cc.out_h(); ++oh)
        for (int64_t ow = 0; ow < cc.out_w(); ++ow) {
          const int64_t at = output_index(cc, n, o, oh, ow);
          if (cc.bias) y[at] = l.params[1].f()[o];
          db[o] += l.dy.f()[at];
        }
  for_each_product(cc, batch,
                   [&](int64_t n, int64_t o, int64_t oh, int64_t ow, int64_t xi, int64_t wi) {
                     const int64_t at = output_index(cc, n, o, oh, ow);
                     y[at] += double(l.x.f()[xi]) * l.params[0].f()[wi];
                     dx[xi] += double(l.dy.f()[at]) * l.params[0].f()[wi];
                     dw[wi] += double(l.dy.f()[at]) * l.x.f()[xi];
                   });
  CHECK(relative_difference(l.y.f(), y) < 1e-5);
  CHECK(relative_difference(l.dx.f(), dx) < 1e-5);
  CHECK(relative_difference(l.grads[0].f(), dw) < 1e-5);
  if (cc.bias) CHECK(relative_difference(l.grads[1].f(), db) < 1e-5);
}

}  // namespace

TEST_CASE("conv2d: gradients over stride, padding, dilation, groups and bias") {
  const ConvCase cases[] = {
      {2, 5, 5, 3, 3},                     // plain 3x3
      {2, 7, 6, 3, 3, 2, 1},               // stride 2, padding 1, not square
      {2, 7, 7, 2, 3, 1, 2, 2},            // dilation 2
      {4, 5, 5, 6, 3, 1, 1, 1, 2},         // groups 2
      {3, 6, 6, 3, 2, 1, 0, 1, 3, false},  // depthwise, no bias, even kernel
      {1, 4, 4, 2, 1, 3},                  // 1x1 kernel, stride 3
  };
  for (const ConvCase& cc : cases) {
    CAPTURE(cc.toml());
    GradientReport report = check_layer(layer("conv2d"), cc.toml(), {cc.c, cc.h, cc.w});
    CHECK_MESSAGE(report.ok, report.summary());
    const int64_t weights = cc.o * (cc.c / cc.groups) * cc.k * cc.k;
    CHECK(report.checked == 3 * cc.c * cc.h * cc.w + weights + (cc.bias ? cc.o : 0));
  }
}

TEST_CASE("conv2d: Winograd gradients over padding, odd sizes, groups and bias") {
  const ConvCase cases[] = {
      {2, 5, 5, 3, 3},                     // odd output: the last tiles are cut
      {3, 6, 7, 2, 3, 1, 1},               // padding 1, not square
      {2, 4, 4, 2, 3, 1, 2},               // padding 2
      {4, 5, 6, 6, 3, 1, 1, 1, 2, false},  // groups 2, no bias
  };
  for (ConvCase cc : cases) {
    cc.algorithm = "winograd";
    CAPTURE(cc.toml());
    GradientReport report = check_layer(layer("conv2d"), cc.toml(), {cc.c, cc.h, cc.w});
    CHECK_MESSAGE(report.ok, report.summary());
  }
}

TEST_CASE("conv2d: gradients with every fused activation, on both algorithms") {
  for (const std::string algorithm : {"im2col", "winograd"})
    for (const std::string activation : {"relu", "leaky_relu", "sigmoid", "tanh", "gelu"}) {
      CAPTURE(algorithm);
      CAPTURE(activation);
      GradientReport report =
          check_layer(layer("conv2d"),
                      "out_channels = 3\npadding = 1\nslope = 0.2\nactivation = \"" + activation +
                          "\"\nalgorithm = \"" + algorithm + "\"",
                      {2, 4, 5});
      CHECK_MESSAGE(report.ok, report.summary());
    }
}

TEST_CASE("conv2d: forward and backward match a direct convolution") {
  // Small cases, then shapes whose im2col spans several chunks of samples (conv2d.cpp aims
  // at 2 MiB of product: 8 samples here, so 8 + 1) and whose single sample fills a chunk
  // (the gemm then writes y directly).
  check_against_direct({3, 9, 8, 4, 3, 2, 1, 1, 1, true, "im2col"}, 2);
  check_against_direct({4, 8, 8, 6, 3, 1, 2, 2, 2}, 3);
  check_against_direct({2, 6, 7, 4, 5, 1, 2, 1, 2, false}, 2);
  check_against_direct({2, 32, 32, 64, 3, 1, 1}, 9);
  check_against_direct({2, 64, 64, 128, 3, 1, 1}, 2);
}

TEST_CASE("conv2d: Winograd forward and backward match a direct convolution") {
  // Odd and even outputs, padding 0 to 2, groups, fashion_cnn's conv2, and a batch over
  // several chunks of M (4 MiB: 2 samples of the last case, so 2 + 2 + 1). Then the smallest
  // input (one tile) and the gradient check's first shape over 4 samples: the shapes the GCC
  // sanitizer build crashed on in gather_input (winograd_tiles.hpp says why).
  const std::pair<ConvCase, int64_t> cases[] = {
      {{3, 9, 8, 4, 3, 1, 1}, 2},
      {{4, 7, 7, 6, 3, 1, 0, 1, 2}, 3},
      {{2, 5, 6, 3, 3, 1, 2, 1, 1, false}, 2},
      {{32, 14, 14, 64, 3, 1, 1}, 3},
      {{8, 40, 40, 64, 3, 1, 1}, 5},
      {{1, 3, 3, 2, 3}, 1},
      {{2, 5, 5, 3, 3}, 4},
  };
  for (auto [cc, batch] : cases) {
    cc.algorithm = "winograd";
    check_against_direct(cc, batch);
  }
}

TEST_CASE("conv2d: output shape, parameters as torch.nn.Conv2d, workspace") {
  LayerUnderTest l(layer("conv2d"), "out_channels = 6\nkernel_size = 5\ngroups = 2\nstride = 2",
                   {4, 28, 27}, 1);
  const graft_layer_desc& d = l.desc();
  REQUIRE(d.output.ndim == 3);
  CHECK(d.output.dims[0] == 6);
  CHECK(d.output.dims[1] == 12);  // (28 - 5) / 2 + 1
  CHECK(d.output.dims[2] == 12);  // (27 - 5) / 2 + 1
  REQUIRE(d.n_params == 2);
  CHECK(std::string(d.params[0].name) == "weight");
  const int64_t expected_shape[] = {6, 2, 5, 5};  // (O, C/groups, k, k)
  REQUIRE(d.params[0].shape.ndim == 4);
  for (int i = 0; i < 4; ++i) CHECK(d.params[0].shape.dims[i] == expected_shape[i]);
  CHECK(d.params[0].init == GRAFT_INIT_KAIMING_UNIFORM);
  CHECK(d.params[0].fan_in == 2 * 5 * 5);
  CHECK(d.params[0].fan_out == 6 * 5 * 5);
  // torch's bound 1/sqrt(fan_in) = gain * sqrt(3 / fan_in).
  CHECK(d.params[0].gain * std::sqrt(3.0 / 50.0) == doctest::Approx(1.0 / std::sqrt(50.0)));
  CHECK(std::string(d.params[1].name) == "bias");
  CHECK(d.params[1].init == GRAFT_INIT_ZEROS);
  CHECK(d.params[1].is_bias_or_norm == 1);
  // col (C*k*k, P) and the product (O, P) for one sample.
  CHECK(d.workspace_per_sample == 4 * 25 * 144 + 6 * 144);
  LayerUnderTest gelu(layer("conv2d"), "out_channels = 2\nbias = false\nactivation = \"gelu\"",
                      {1, 3, 3}, 1);
  CHECK(gelu.desc().n_params == 1);
  CHECK(gelu.desc().workspace_per_sample == 2 * 1 + 9 * 1 + 2 * 1);  // + pre-activation (O, P)
  // auto: Winograd's V (16, C, T) and M (16, O, T) for fashion_cnn's second convolution (7x7
  // tiles), im2col for its first, whose single input channel gives the gemms nothing to sum.
  LayerUnderTest second(layer("conv2d"), "out_channels = 64\npadding = 1", {32, 14, 14}, 1);
  CHECK(second.desc().workspace_per_sample == 16 * 32 * 49 + 16 * 64 * 49);
  LayerUnderTest first(layer("conv2d"), "out_channels = 32\npadding = 1", {1, 28, 28}, 1);
  CHECK(first.desc().workspace_per_sample == 9 * 784 + 32 * 784);
}

TEST_CASE("conv2d: forward and backward give the same bits every time, on both algorithms") {
  // fashion_cnn's conv2 at batch 45 spans chunks of 20 + 20 + 5 samples on either path.
  for (const std::string algorithm : {"im2col", "winograd"}) {
    CAPTURE(algorithm);
    LayerUnderTest l(
        layer("conv2d"),
        "out_channels = 64\npadding = 1\nactivation = \"relu\"\nalgorithm = \"" + algorithm + "\"",
        {32, 14, 14}, 45);
    std::mt19937 rng(2);
    fill_uniform(l.x, rng);
    for (Tensor& p : l.params) fill_uniform(p, rng);
    fill_uniform(l.dy, rng);
    l.forward(cpu_ctx(true));
    const Tensor first_y = l.y;
    l.zero_gradients();
    l.backward(cpu_ctx(true));
    const Tensor first_dx = l.dx, first_dw = l.grads[0];
    // Backward again on the same forward gives the same dx and adds the same gradients (up
    // to the rounding of adding chunk by chunk onto a non-zero sum).
    l.backward(cpu_ctx(true));
    CHECK(differing(l.dx, first_dx) == 0);
    Tensor twice = first_dw;
    for (int64_t i = 0; i < twice.numel(); ++i) twice.f()[i] *= 2.0f;
    CHECK(relative_difference(l.grads[0].f(),
                              std::vector<double>(twice.f(), twice.f() + twice.numel())) < 1e-6);
    // Forward after backward, and in evaluation mode, gives the first bits.
    for (bool training : {true, false}) {
      l.forward(cpu_ctx(training));
      CHECK(differing(l.y, first_y) == 0);
    }
  }
}

TEST_CASE("conv2d: option and shape errors name the problem and the fix") {
  auto create = [](const std::string& options, const std::vector<int64_t>& input) {
    LayerUnderTest l(layer("conv2d"), options, input, 1);
  };
  CHECK_THROWS_WITH_AS(create("", {1, 8, 8}),
                       doctest::Contains("missing required key 'out_channels'"), UserError);
  CHECK_THROWS_WITH_AS(create("out_channels = 4\ngroups = 3", {6, 8, 8}),
                       doctest::Contains("groups = 3 must divide both the input channels (6) "
                                         "and out_channels (4)"),
                       UserError);
  CHECK_THROWS_WITH_AS(create("out_channels = 4", {784}),
                       doctest::Contains("the input per sample is (784,); conv2d needs (C, H, W)"),
                       UserError);
  CHECK_THROWS_WITH_AS(create("out_channels = 4\nkernel_size = 3\ndilation = 2", {1, 4, 4}),
                       doctest::Contains("the input (1, 4, 4) is too small for the kernel: "
                                         "kernel_size 3 with dilation 2 spans 5 pixels"),
                       UserError);
  CHECK_NOTHROW(create("out_channels = 4\ndilation = 2\npadding = 1", {1, 4, 4}));
  CHECK_THROWS_WITH_AS(create("out_channels = 4\nstride = 0", {1, 4, 4}),
                       doctest::Contains("out of range"), UserError);
  CHECK_THROWS_WITH_AS(create("out_channels = 4\nactivation = \"rleu\"", {1, 4, 4}),
                       doctest::Contains("did you mean 'relu'"), UserError);
  CHECK_THROWS_WITH_AS(create("out_channels = 4\nstride = 2\nalgorithm = \"winograd\"", {1, 8, 8}),
                       doctest::Contains("algorithm = \"winograd\" needs kernel_size 3, stride 1 "
                                         "and dilation 1 (got 3, 2, 1)"),
                       UserError);
  CHECK_THROWS_WITH_AS(create("out_channels = 4\nkernel = 3", {1, 4, 4}),
                       doctest::Contains("unknown key 'kernel'"), UserError);
}

TEST_CASE("conv2d: a tiny conv net tells horizontal from vertical bars anywhere in the image") {
  constexpr int64_t n = 64, side = 8;
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> noise(-0.3f, 0.3f);
  std::uniform_int_distribution<int64_t> position(0, side - 1);
  LayerUnderTest conv(layer("conv2d"), "out_channels = 4\npadding = 1\nactivation = \"relu\"",
                      {1, side, side}, n);
  LayerUnderTest pool(layer("max_pool2d"), "", {4, side, side}, n);
  LayerUnderTest output(layer("linear"), "units = 2", {4, side / 2, side / 2}, n);
  LossUnderTest cross_entropy(builtin_registry().get(GRAFT_KIND_LOSS, "cross_entropy"), "", {2},
                              class_targets(2), n);
  conv.init_parameters(rng);
  output.init_parameters(rng);
  // Class 1 is a vertical bar, class 0 a horizontal one, at a random place, in noise.
  auto draw = [&](Tensor& images, Tensor& labels) {
    for (int64_t s = 0; s < n; ++s) {
      const int32_t vertical = static_cast<int32_t>(s % 2);
      const int64_t at = position(rng);
      labels.i()[s] = vertical;
      for (int64_t r = 0; r < side; ++r)
        for (int64_t c = 0; c < side; ++c)
          images.f()[(s * side + r) * side + c] =
              noise(rng) + ((vertical ? c : r) == at ? 1.0f : 0.0f);
    }
  };
  auto predict = [&](const graft_exec_ctx& ctx) {
    conv.forward(ctx);
    pool.x = conv.y;
    pool.forward(ctx);
    output.x = pool.y;
    output.forward(ctx);
    cross_entropy.prediction = output.y;
    return cross_entropy.forward(ctx) / n;
  };
  auto sgd = [](LayerUnderTest& l, float lr) {
    for (size_t k = 0; k < l.params.size(); ++k)
      for (int64_t i = 0; i < l.params[k].numel(); ++i)
        l.params[k].f()[i] -= lr * l.grads[k].f()[i];
  };
  graft_exec_ctx ctx = cpu_ctx();
  double first_loss = 0.0, last_loss = 0.0;
  for (int step = 0; step < 300; ++step) {
    draw(conv.x, cross_entropy.target);  // fresh samples every step
    last_loss = predict(ctx);
    if (step == 0) first_loss = last_loss;
    cross_entropy.backward(ctx, 1.0f / n);
    output.dy = cross_entropy.dprediction;
    output.zero_gradients();
    output.backward(ctx, true);
    pool.dy = output.dx;
    pool.backward(ctx, true);
    conv.dy = pool.dx;
    conv.zero_gradients();
    conv.backward(ctx, false);
    sgd(output, 0.2f);
    sgd(conv, 0.2f);
  }
  draw(conv.x, cross_entropy.target);
  predict(cpu_ctx(false));
  const double accuracy = cross_entropy.metrics.at(0) / n;
  MESSAGE("cross entropy from " << first_loss << " to " << last_loss << ", held-out accuracy "
                                << accuracy);
  CHECK(accuracy >= 0.95);
}
