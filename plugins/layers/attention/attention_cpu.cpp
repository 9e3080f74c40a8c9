// Attention's CPU passes over a batch: the bias and rotary pass over the fused q | k | v rows,
// and the core threaded over (sample, head) pairs, each packing its head's columns into
// contiguous (T, d) matrices so that tiles are dense blocks for gemm.
#include "attention_cpu.hpp"

#include <algorithm>

#include "attention_math.hpp"
#include "attention_tiles.hpp"
#include "graft/cpp/parallel.hpp"

namespace graft::attention {
namespace {

// (rows, d) of the columns [column, column + d) of rows `stride` floats apart, packed.
void pack(const float* from, int64_t stride, int64_t column, int64_t rows, int64_t d,
          float* __restrict to) {
  for (int64_t r = 0; r < rows; ++r) std::copy_n(from + r * stride + column, d, to + r * d);
}
void unpack(const float* from, int64_t rows, int64_t d, float* to, int64_t stride, int64_t column) {
  for (int64_t r = 0; r < rows; ++r) std::copy_n(from + r * d, d, to + r * stride + column);
}

HeadDraw head_draw(const DropoutDraw& drop, int64_t sample, int64_t head) {
  return HeadDraw{&drop, drop.row_offset + sample, drop.first_head + head};
}

// Work of one (sample, head) pair, so that a thread takes a few pairs at a time at most.
int64_t pair_grain(const Geometry& g) { return g.positions >= 64 ? 1 : 4; }

}  // namespace

std::vector<float> rope_table(const Geometry& g, int64_t first, double rope_base) {
  const int64_t half = g.head_width / 2;
  std::vector<float> table(size_t(g.positions * half * 2));
  for (int64_t t = 0; t < g.positions; ++t)
    for (int64_t i = 0; i < half; ++i) {
      float* at = &table[size_t((t * half + i) * 2)];
      rope_angle(first + t, i, g.head_width, rope_base, at, at + 1);
    }
  return table;
}

void bias_and_rope(const graft_exec_ctx& ctx, const Geometry& g, float* qkv, int64_t samples,
                   const float* bias, const float* table, float sign) {
  const int64_t width = 3 * g.part_width(), rows = samples * g.positions;
  const int64_t d = g.head_width, half = d / 2;
  graft::parallel_for(ctx, rows, std::max<int64_t>(1, 8192 / width), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      float* __restrict row = qkv + r * width;
      if (bias)
        for (int64_t c = 0; c < width; ++c) row[c] += bias[c];
      if (!table) continue;
      const float* angles = table + (r % g.positions) * half * 2;
      // q's heads then k's: the first 2P columns; v is not turned.
      for (int64_t h = 0; h < 2 * g.heads; ++h)
        for (int64_t i = 0; i < half; ++i)
          rope_rotate(&row[h * d + i], &row[h * d + i + half], angles[2 * i],
                      sign * angles[2 * i + 1]);
    }
  });
}

void forward_batch(const graft_exec_ctx& ctx, const Geometry& g, int64_t samples, const float* qkv,
                   float* attn, float* lse, const DropoutDraw& drop) {
  const int64_t t = g.positions, d = g.head_width, p = g.part_width(), b = g.block;
  graft::parallel_for(ctx, samples * g.heads, pair_grain(g), [&](int64_t begin, int64_t end) {
    std::vector<float> buffer(size_t(4 * t * d + b * b + 2 * b));
    float *q = buffer.data(), *k = q + t * d, *v = k + t * d, *out = v + t * d;
    for (int64_t pair = begin; pair < end; ++pair) {
      const int64_t n = pair / g.heads, h = pair % g.heads;
      const float* rows = qkv + n * t * 3 * p;
      pack(rows, 3 * p, h * d, t, d, q);
      pack(rows, 3 * p, p + h * d, t, d, k);
      pack(rows, 3 * p, 2 * p + h * d, t, d, v);
      head_forward(ctx, g, q, k, v, t, t, 0, head_draw(drop, n, h), out, lse + pair * t,
                   out + t * d);
      unpack(out, t, d, attn + n * t * p, p, h * d);
    }
  });
}

void backward_batch(const graft_exec_ctx& ctx, const Geometry& g, int64_t samples, const float* qkv,
                    const float* attn, const float* lse, const float* dattn, float* dqkv,
                    const DropoutDraw& drop) {
  const int64_t t = g.positions, d = g.head_width, p = g.part_width(), b = g.block;
  graft::parallel_for(ctx, samples * g.heads, pair_grain(g), [&](int64_t begin, int64_t end) {
    std::vector<float> buffer(size_t(8 * t * d + 3 * b * b + t));
    float *q = buffer.data(), *k = q + t * d, *v = k + t * d, *out = v + t * d;
    float *dout = out + t * d, *dq = dout + t * d, *dk = dq + t * d, *dv = dk + t * d;
    for (int64_t pair = begin; pair < end; ++pair) {
      const int64_t n = pair / g.heads, h = pair % g.heads;
      const float* rows = qkv + n * t * 3 * p;
      pack(rows, 3 * p, h * d, t, d, q);
      pack(rows, 3 * p, p + h * d, t, d, k);
      pack(rows, 3 * p, 2 * p + h * d, t, d, v);
      pack(attn + n * t * p, p, h * d, t, d, out);
      pack(dattn + n * t * p, p, h * d, t, d, dout);
      head_backward(ctx, g, q, k, v, out, dout, lse + pair * t, head_draw(drop, n, h), dq, dk, dv,
                    dv + t * d);
      float* grad_rows = dqkv + n * t * 3 * p;
      unpack(dq, t, d, grad_rows, 3 * p, h * d);
      unpack(dk, t, d, grad_rows, 3 * p, p + h * d);
      unpack(dv, t, d, grad_rows, 3 * p, 2 * p + h * d);
    }
  });
}

void forward_cached(const graft_exec_ctx& ctx, const Geometry& g, int64_t samples, const float* qkv,
                    float* cache, int64_t capacity, int64_t first, float* attn) {
  const int64_t t = g.positions, d = g.head_width, p = g.part_width(), b = g.block;
  graft::parallel_for(ctx, samples * g.heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> buffer(size_t(2 * t * d + b * b + 2 * b + t));
    float *q = buffer.data(), *out = q + t * d, *lse = out + t * d;
    const DropoutDraw none;
    for (int64_t pair = begin; pair < end; ++pair) {
      const int64_t n = pair / g.heads, h = pair % g.heads;
      const float* rows = qkv + n * t * 3 * p;
      float* keys = cache + pair * 2 * capacity * d;
      float* values = keys + capacity * d;
      pack(rows, 3 * p, h * d, t, d, q);
      pack(rows, 3 * p, p + h * d, t, d, keys + first * d);
      pack(rows, 3 * p, 2 * p + h * d, t, d, values + first * d);
      head_forward(ctx, g, q, keys, values, t, first + t, first, HeadDraw{&none, 0, 0}, out, lse,
                   lse + t);
      unpack(out, t, d, attn + n * t * p, p, h * d);
    }
  });
}

}  // namespace graft::attention
