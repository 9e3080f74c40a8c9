// The per-tile loops of attention on the CPU: products through the host's gemm (OpenBLAS)
// where a tile is large enough to repay a call, plain loops on the small ones; the softmax and
// its gradient in contiguous loops GCC vectorises (exp_nonpositive has no branch).
#include "attention_tiles.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "attention_math.hpp"
#include "graft/cpp/core.hpp"

namespace graft::attention {
namespace {

// Below this m * n * k a gemm call costs more than it computes.
constexpr int64_t kGemmWork = 4096;

// c (m, n) = alpha * op(a) op(b) + beta * c; a is (m, k) or (k, m) when ta, b is (k, n) or
// (n, k) when tb; all dense, row-major.
void tile_gemm(const graft_exec_ctx& ctx, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
               float alpha, const float* a, const float* b, float beta, float* c) {
  if (m == 0 || n == 0) return;
  if (m * n * k >= kGemmWork) {
    const DLDevice cpu{kDLCPU, 0};
    const View av(const_cast<float*>(a), cpu, {ta ? k : m, ta ? m : k});
    const View bv(const_cast<float*>(b), cpu, {tb ? n : k, tb ? k : n});
    View cv(c, cpu, {m, n});
    return graft::gemm(ctx, ta, tb, alpha, *av, *bv, beta, *cv);
  }
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      float sum = 0.0f;
      for (int64_t p = 0; p < k; ++p)
        sum += (ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
      c[i * n + j] = alpha * sum + (beta == 0.0f ? 0.0f : beta * c[i * n + j]);
    }
}

// Keys of the tile starting at key j0 (of `cols`) that query position `position` may see.
int64_t visible(const Geometry& g, int64_t position, int64_t j0, int64_t cols) {
  if (!g.causal) return cols;
  return std::clamp<int64_t>(position - j0 + 1, 0, cols);
}

// factors (rows, cols): each probability's dropout factor for queries i0.. and keys j0...
void dropout_factors(const HeadDraw& draw, int64_t positions, int64_t i0, int64_t rows, int64_t j0,
                     int64_t cols, float* __restrict factors) {
  const DropoutDraw& d = *draw.drop;
  for (int64_t r = 0; r < rows; ++r) {
    const uint64_t first = dropout_counter(d.step, d.global_batch, draw.global_row, d.whole_heads,
                                           draw.head, positions, i0 + r, j0);
    graft_philox_block block{};
    for (int64_t c = 0; c < cols; ++c) {
      // One Philox block yields four consecutive uniforms; compute each block once.
      const uint64_t counter = first + static_cast<uint64_t>(c);
      if (c == 0 || (counter & 3u) == 0) block = graft_philox(d.seed, d.stream, counter >> 2);
      factors[r * cols + c] =
          graft::dropout::multiplier(graft_u32_to_unit(block.v[counter & 3u]), d.p, d.keep_scale);
    }
  }
}

bool dropping(const HeadDraw& draw) { return draw.drop && draw.drop->p > 0.0f; }

}  // namespace

void head_forward(const graft_exec_ctx& ctx, const Geometry& g, const float* q, const float* k,
                  const float* v, int64_t queries, int64_t keys, int64_t query_offset,
                  const HeadDraw& draw, float* out, float* lse, float* scratch) {
  const int64_t d = g.head_width, b = g.block;
  float* __restrict p = scratch;            // (rows, cols): scores, then probabilities
  float* __restrict row_max = p + b * b;    // m per row
  float* __restrict row_sum = row_max + b;  // l per row
  std::vector<float> factors(dropping(draw) ? size_t(b * b) : 0);
  for (int64_t i0 = 0; i0 < queries; i0 += b) {
    const int64_t rows = std::min(b, queries - i0);
    // Causal: keys after the block's last query are masked for every row; skip their tiles.
    const int64_t key_end = g.causal ? std::min(keys, query_offset + i0 + rows) : keys;
    float* __restrict acc = out + i0 * d;
    std::fill(acc, acc + rows * d, 0.0f);
    std::fill(row_max, row_max + rows, -INFINITY);
    std::fill(row_sum, row_sum + rows, 0.0f);
    for (int64_t j0 = 0; j0 < key_end; j0 += b) {
      const int64_t cols = std::min(b, key_end - j0);
      tile_gemm(ctx, false, true, rows, cols, d, g.scale, q + i0 * d, k + j0 * d, 0.0f, p);
      if (dropping(draw))
        dropout_factors(draw, g.positions, query_offset + i0, rows, j0, cols, factors.data());
      for (int64_t r = 0; r < rows; ++r) {
        float* __restrict s = p + r * cols;
        const int64_t seen = visible(g, query_offset + i0 + r, j0, cols);
        float tile_max = -INFINITY;
        for (int64_t c = 0; c < seen; ++c) tile_max = std::max(tile_max, s[c]);
        float correction = 1.0f;
        if (seen > 0) correction = online_softmax_step(&row_max[r], tile_max);
        const float m = row_max[r];
        // Two loops: a float sum in the same loop would keep GCC from vectorising the exp.
        for (int64_t c = 0; c < seen; ++c) s[c] = exp_nonpositive(s[c] - m);
        float sum = 0.0f;
        for (int64_t c = 0; c < seen; ++c) sum += s[c];
        for (int64_t c = seen; c < cols; ++c) s[c] = 0.0f;
        row_sum[r] = row_sum[r] * correction + sum;
        if (correction != 1.0f)
          for (int64_t e = 0; e < d; ++e) acc[r * d + e] *= correction;
        if (dropping(draw))
          for (int64_t c = 0; c < cols; ++c) s[c] *= factors[size_t(r * cols + c)];
      }
      tile_gemm(ctx, false, false, rows, d, cols, 1.0f, p, v + j0 * d, 1.0f, acc);
    }
    for (int64_t r = 0; r < rows; ++r) {
      const float inverse = 1.0f / row_sum[r];
      for (int64_t e = 0; e < d; ++e) acc[r * d + e] *= inverse;
      lse[i0 + r] = log_sum_exp(row_max[r], row_sum[r]);
    }
  }
}

void head_backward(const graft_exec_ctx& ctx, const Geometry& g, const float* q, const float* k,
                   const float* v, const float* out, const float* dout, const float* lse,
                   const HeadDraw& draw, float* dq, float* dk, float* dv, float* scratch) {
  const int64_t d = g.head_width, b = g.block, t = g.positions;
  float* __restrict p = scratch;     // (rows, cols) probabilities, then dS
  float* __restrict dp = p + b * b;  // (rows, cols) P * factors, then dP
  float* __restrict factors = dp + b * b;
  float* __restrict delta = factors + b * b;  // (T,) rowsum(dO * O)
  for (int64_t i = 0; i < t; ++i) {
    float sum = 0.0f;
    for (int64_t e = 0; e < d; ++e) sum += dout[i * d + e] * out[i * d + e];
    delta[i] = sum;
  }
  std::fill(dq, dq + t * d, 0.0f);
  std::fill(dk, dk + t * d, 0.0f);
  std::fill(dv, dv + t * d, 0.0f);
  const bool drop = dropping(draw);
  for (int64_t j0 = 0; j0 < t; j0 += b) {
    const int64_t cols = std::min(b, t - j0);
    // Causal: query blocks before this key block see none of it (blocks align at b).
    for (int64_t i0 = g.causal ? j0 : 0; i0 < t; i0 += b) {
      const int64_t rows = std::min(b, t - i0);
      tile_gemm(ctx, false, true, rows, cols, d, g.scale, q + i0 * d, k + j0 * d, 0.0f, p);
      if (drop) dropout_factors(draw, t, i0, rows, j0, cols, factors);
      for (int64_t r = 0; r < rows; ++r) {
        float* __restrict s = p + r * cols;
        const int64_t seen = visible(g, i0 + r, j0, cols);
        const float row_lse = lse[i0 + r];
        for (int64_t c = 0; c < seen; ++c) s[c] = exp_nonpositive(s[c] - row_lse);
        for (int64_t c = seen; c < cols; ++c) s[c] = 0.0f;
        float* __restrict kept = dp + r * cols;
        if (drop)
          for (int64_t c = 0; c < cols; ++c) kept[c] = s[c] * factors[r * cols + c];
      }
      // dV += (P * factors)^T dO.
      tile_gemm(ctx, true, false, cols, d, rows, 1.0f, drop ? dp : p, dout + i0 * d, 1.0f,
                dv + j0 * d);
      // dP = dO V^T (times the factors: the gradient of the undropped probabilities).
      tile_gemm(ctx, false, true, rows, cols, d, 1.0f, dout + i0 * d, v + j0 * d, 0.0f, dp);
      for (int64_t r = 0; r < rows; ++r) {
        float* __restrict s = p + r * cols;
        const float* __restrict grad = dp + r * cols;
        const float row_delta = delta[i0 + r];
        if (drop) {
          const float* __restrict f = factors + r * cols;
          for (int64_t c = 0; c < cols; ++c) s[c] = score_gradient(s[c], grad[c] * f[c], row_delta);
        } else {
          for (int64_t c = 0; c < cols; ++c) s[c] = score_gradient(s[c], grad[c], row_delta);
        }
      }
      tile_gemm(ctx, false, false, rows, d, cols, g.scale, p, k + j0 * d, 1.0f, dq + i0 * d);
      tile_gemm(ctx, true, false, cols, d, rows, g.scale, p, q + i0 * d, 1.0f, dk + j0 * d);
    }
  }
}

}  // namespace graft::attention
