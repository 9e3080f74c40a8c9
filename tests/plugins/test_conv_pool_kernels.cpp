// The one-element GRAFT_HD functions conv2d's and the pooling layers' CUDA kernels run (im2col
// and col2im entries, the product's layout, window maxima and means, backward's gathers),
// checked here on the CPU against the CPU loops they stand in for, bit for bit.
#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../../plugins/layers/conv2d/im2col.hpp"
#include "../../plugins/layers/pooling/pool_window.hpp"
#include "gradient_check.hpp"

namespace {

using graft::conv::Axis;
using graft::conv::Lowering;
using graft::pool::Window2d;
using namespace graft::test;

std::vector<float> random_values(int64_t n, unsigned seed, int levels = 0) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::uniform_int_distribution<int> level(0, levels > 0 ? levels - 1 : 0);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& e : v) e = levels > 0 ? float(level(rng)) : u(rng);
  return v;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// (C, H, W, O, k, stride, padding, dilation): odd sizes, padding wider than a stride, dilation
// and a stride past the kernel, so taps fall between strides and off both ends.
struct Geometry {
  int64_t c, h, w, o, k, stride, padding, dilation;
};
const Geometry kGeometries[] = {
    {3, 9, 11, 5, 3, 1, 1, 1}, {4, 13, 10, 6, 5, 2, 2, 1}, {6, 15, 15, 9, 3, 3, 0, 2},
    {2, 11, 8, 4, 4, 2, 3, 3}, {5, 9, 6, 7, 1, 2, 0, 1},   {1, 7, 7, 2, 7, 1, 3, 1},
};

Lowering lowering(const Geometry& g) {
  return Lowering{g.c,
                  g.h,
                  g.w,
                  g.k,
                  g.o,
                  Axis{g.h, g.k, g.stride, g.padding, g.dilation},
                  Axis{g.w, g.k, g.stride, g.padding, g.dilation}};
}

}  // namespace

TEST_CASE("conv2d's element functions give im2col's and col2im's values") {
  for (const Geometry& g : kGeometries) {
    const Lowering l = lowering(g);
    CAPTURE(g.k);
    CAPTURE(g.stride);
    CAPTURE(g.padding);
    CAPTURE(g.dilation);
    for (int64_t batch : {1, 3}) {
      const int64_t ld = batch * l.pixels();
      const std::vector<float> x = random_values(batch * g.c * g.h * g.w, 3);
      std::vector<float> col(static_cast<size_t>(l.patch() * ld));
      l.im2col(x.data(), batch, col.data());
      int wrong = 0;
      for (int64_t row = 0; row < l.patch(); ++row)
        for (int64_t column = 0; column < ld; ++column)
          wrong += !same_bits(l.column_entry(x.data(), row, column), col[row * ld + column]);
      CHECK(wrong == 0);

      const std::vector<float> dcol = random_values(l.patch() * ld, 4);
      std::vector<float> dx(x.size());
      l.col2im(dcol.data(), batch, dx.data());
      wrong = 0;
      for (int64_t e = 0; e < int64_t(dx.size()); ++e)
        wrong += !same_bits(l.input_gradient(dcol.data(), batch, e), dx[size_t(e)]);
      CHECK(wrong == 0);

      // product_index is scatter_output's map from (O, B*P) to y (B, O, P).
      const std::vector<float> product = random_values(g.o * ld, 5);
      std::vector<float> y(product.size());
      l.scatter_output<graft::elementwise::Kind::none>(product.data(), batch, nullptr, y.data(),
                                                       nullptr, 0.0f);
      wrong = 0;
      for (int64_t e = 0; e < int64_t(y.size()); ++e)
        wrong += !same_bits(product[size_t(l.product_index(batch, e))], y[size_t(e)]);
      CHECK(wrong == 0);
    }
  }
}

TEST_CASE("pooling's window functions give the CPU layers' outputs, winners and gradients") {
  struct PoolCase {
    std::string options;
    int64_t c, h, w, kernel, stride, padding;
  };
  const PoolCase cases[] = {
      {"", 2, 8, 8, 2, 2, 0},
      {"", 2, 9, 7, 2, 2, 0},
      {"kernel_size = 3\nstride = 2\npadding = 1", 2, 9, 7, 3, 2, 1},
      {"kernel_size = 3\nstride = 1\npadding = 1", 3, 10, 11, 3, 1, 1},
      {"kernel_size = 4\nstride = 3\npadding = 2", 2, 13, 12, 4, 3, 2},
      {"kernel_size = 5\nstride = 2", 1, 16, 9, 5, 2, 0},
  };
  const int64_t batch = 2;
  for (const PoolCase& p : cases) {
    CAPTURE(p.options);
    const Window2d window{p.h, p.w, p.kernel, p.stride, p.padding};
    const int64_t planes = batch * p.c, in_plane = p.h * p.w;
    const int64_t ow_count = window.out_width(), out_plane = window.out_height() * ow_count;
    for (int levels : {3, 0}) {  // few levels: windows hold ties
      LayerUnderTest max(builtin_registry().get(GRAFT_KIND_LAYER, "max_pool2d"), p.options,
                         {p.c, p.h, p.w}, batch);
      const std::vector<float> x = random_values(max.x.numel(), 6, levels);
      const std::vector<float> dy = random_values(max.dy.numel(), 7);
      std::copy(x.begin(), x.end(), max.x.f());
      std::copy(dy.begin(), dy.end(), max.dy.f());
      max.forward(cpu_ctx());
      max.backward(cpu_ctx());
      int wrong = 0;
      for (int64_t plane = 0; plane < planes; ++plane) {
        const float* winners = max.workspace.f() + plane * out_plane;
        for (int64_t o = 0; o < out_plane; ++o) {
          int64_t winner = -1;
          const float best = graft::pool::max_window(window, x.data() + plane * in_plane,
                                                     o / ow_count, o % ow_count, &winner);
          wrong += !same_bits(best, max.y.f()[plane * out_plane + o]);
          wrong += static_cast<float>(winner) != winners[o];
        }
        for (int64_t at = 0; at < in_plane; ++at)
          wrong += !same_bits(graft::pool::max_input_gradient(window, dy.data() + plane * out_plane,
                                                              winners, at / p.w, at % p.w),
                              max.dx.f()[plane * in_plane + at]);
      }
      CHECK(wrong == 0);
    }
    for (bool count_padding : {true, false}) {
      LayerUnderTest avg(builtin_registry().get(GRAFT_KIND_LAYER, "avg_pool2d"),
                         p.options + "\ncount_include_pad = " + (count_padding ? "true" : "false"),
                         {p.c, p.h, p.w}, batch);
      const std::vector<float> x = random_values(avg.x.numel(), 8);
      const std::vector<float> dy = random_values(avg.dy.numel(), 9);
      std::copy(x.begin(), x.end(), avg.x.f());
      std::copy(dy.begin(), dy.end(), avg.dy.f());
      avg.forward(cpu_ctx());
      avg.backward(cpu_ctx());
      int wrong = 0;
      for (int64_t plane = 0; plane < planes; ++plane) {
        for (int64_t o = 0; o < out_plane; ++o)
          wrong += !same_bits(graft::pool::window_mean(window, x.data() + plane * in_plane,
                                                       o / ow_count, o % ow_count, count_padding),
                              avg.y.f()[plane * out_plane + o]);
        for (int64_t at = 0; at < in_plane; ++at)
          wrong += !same_bits(graft::pool::avg_input_gradient(window, dy.data() + plane * out_plane,
                                                              at / p.w, at % p.w, count_padding),
                              avg.dx.f()[plane * in_plane + at]);
      }
      CHECK(wrong == 0);
    }
  }
}
