// attention.cpp's core on the GPU, plainly: a block of R threads per (query tile, head,
// sample), one thread per query row, streams key tiles through shared memory with the CPU's
// online softmax (attention_math.hpp). Backward: one kernel per query row for dQ and one per
// key row for dK and dV, each thread summing its own row, so no atomics and a fixed order.
#include "attention_cuda.hpp"
#include "graft/cuda/launch.cuh"

namespace graft::attention::cuda {
namespace {

using graft::cuda::blocks_for;
using graft::cuda::kThreads;
constexpr int64_t kSharedFloats = 12 * 1024;  // 48 KB, what a block gets without opting in

// Row `row` of head `head` of sample `sample`: data + sample * per_sample + head * per_head +
// row * per_row (the batch's fused q | k | v rows, or the cache's head-major rows).
struct Operand {
  const float* data;
  int64_t per_sample, per_head, per_row;
  __device__ const float* at(int64_t sample, int64_t head, int64_t row) const {
    return data + sample * per_sample + head * per_head + row * per_row;
  }
};

// Rows per block such that `rows_of_d` (rows, d) matrices fit in shared memory.
int64_t tile_rows(int64_t d, int64_t rows_of_d) {
  int64_t r = 32;
  while (r > 1 && r * (rows_of_d * d + 2) > kSharedFloats) r /= 2;
  return r;
}

__device__ bool visible(const Geometry& g, int64_t query_position, int64_t key) {
  return !g.causal || key <= query_position;
}

__device__ float factor(const DropoutDraw& drop, int64_t sample, int64_t head, int64_t positions,
                        int64_t i, int64_t j) {
  if (drop.p <= 0.0f) return 1.0f;
  return dropout_factor(drop.seed, drop.stream,
                        dropout_counter(drop.step, drop.global_batch, drop.row_offset + sample,
                                        drop.whole_heads, drop.first_head + head, positions, i, j),
                        drop.p, drop.keep_scale);
}

// Shared: q rows, K tile, V tile, the accumulators (each R x d), scores (R x R).
__global__ void forward_kernel(Geometry g, Operand q, Operand k, Operand v, int64_t queries,
                               int64_t keys, int64_t query_offset, float* out, float* lse,
                               DropoutDraw drop) {
  extern __shared__ float shared[];
  const int64_t d = g.head_width, r = blockDim.x, p = g.part_width();
  const int64_t n = blockIdx.z, h = blockIdx.y, i0 = int64_t(blockIdx.x) * r;
  float *qs = shared, *ks = qs + r * d, *vs = ks + r * d, *acc = vs + r * d, *s = acc + r * d;
  const int64_t row = threadIdx.x, i = i0 + row, position = query_offset + i;
  const bool mine = i < queries;
  for (int64_t e = 0; e < d; ++e) {
    qs[row * d + e] = mine ? q.at(n, h, i)[e] : 0.0f;
    acc[row * d + e] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  const int64_t last = query_offset + (i0 + r < queries ? i0 + r : queries);  // past the block
  const int64_t key_end = g.causal && last < keys ? last : keys;
  for (int64_t j0 = 0; j0 < key_end; j0 += r) {
    __syncthreads();
    for (int64_t e = threadIdx.x; e < r * d; e += r) {
      const int64_t j = j0 + e / d;
      ks[e] = j < keys ? k.at(n, h, j)[e % d] : 0.0f;
      vs[e] = j < keys ? v.at(n, h, j)[e % d] : 0.0f;
    }
    __syncthreads();
    if (!mine) continue;
    float tile_max = -INFINITY;
    for (int64_t c = 0; c < r && j0 + c < key_end; ++c) {
      float dot = 0.0f;
      for (int64_t e = 0; e < d; ++e) dot += qs[row * d + e] * ks[c * d + e];
      s[row * r + c] = dot * g.scale;
      if (visible(g, position, j0 + c)) tile_max = fmaxf(tile_max, s[row * r + c]);
    }
    if (tile_max == -INFINITY) continue;  // every key of the tile is after this query
    const float correction = online_softmax_step(&m, tile_max);
    l *= correction;
    for (int64_t e = 0; e < d; ++e) acc[row * d + e] *= correction;
    for (int64_t c = 0; c < r && j0 + c < key_end; ++c) {
      if (!visible(g, position, j0 + c)) continue;
      const float prob = exp_nonpositive(s[row * r + c] - m);
      l += prob;
      const float kept = prob * factor(drop, n, h, g.positions, i, j0 + c);
      for (int64_t e = 0; e < d; ++e) acc[row * d + e] += kept * vs[c * d + e];
    }
  }
  if (!mine) return;
  for (int64_t e = 0; e < d; ++e) out[(n * queries + i) * p + h * d + e] = acc[row * d + e] / l;
  if (lse) lse[(n * g.heads + h) * queries + i] = log_sum_exp(m, l);
}

// dQ of one query row per thread. Shared: q, dO, dQ rows and K, V tiles (each R x d).
__global__ void query_gradient_kernel(Geometry g, const float* qkv, const float* attn,
                                      const float* lse, const float* dattn, float* dqkv,
                                      DropoutDraw drop) {
  extern __shared__ float shared[];
  const int64_t d = g.head_width, r = blockDim.x, p = g.part_width(), t = g.positions;
  const int64_t n = blockIdx.z, h = blockIdx.y, i0 = int64_t(blockIdx.x) * r;
  float *qs = shared, *dos = qs + r * d, *dq = dos + r * d, *ks = dq + r * d, *vs = ks + r * d;
  const int64_t row = threadIdx.x, i = i0 + row;
  const bool mine = i < t;
  const float* rows = qkv + n * t * 3 * p;
  float delta = 0.0f;
  for (int64_t e = 0; e < d; ++e) {
    qs[row * d + e] = mine ? rows[i * 3 * p + h * d + e] : 0.0f;
    dos[row * d + e] = mine ? dattn[(n * t + i) * p + h * d + e] : 0.0f;
    dq[row * d + e] = 0.0f;
    if (mine) delta += dos[row * d + e] * attn[(n * t + i) * p + h * d + e];
  }
  const float row_lse = mine ? lse[(n * g.heads + h) * t + i] : 0.0f;
  const int64_t last = i0 + r < t ? i0 + r : t;
  const int64_t key_end = g.causal ? last : t;
  for (int64_t j0 = 0; j0 < key_end; j0 += r) {
    __syncthreads();
    for (int64_t e = threadIdx.x; e < r * d; e += r) {
      const int64_t j = j0 + e / d;
      ks[e] = j < t ? rows[j * 3 * p + p + h * d + e % d] : 0.0f;
      vs[e] = j < t ? rows[j * 3 * p + 2 * p + h * d + e % d] : 0.0f;
    }
    __syncthreads();
    if (!mine) continue;
    for (int64_t c = 0; c < r && j0 + c < key_end; ++c) {
      if (!visible(g, i, j0 + c)) continue;
      float dot = 0.0f, dp = 0.0f;
      for (int64_t e = 0; e < d; ++e) {
        dot += qs[row * d + e] * ks[c * d + e];
        dp += dos[row * d + e] * vs[c * d + e];
      }
      const float prob = exp_nonpositive(dot * g.scale - row_lse);
      const float ds = score_gradient(prob, dp * factor(drop, n, h, t, i, j0 + c), delta);
      for (int64_t e = 0; e < d; ++e) dq[row * d + e] += g.scale * ds * ks[c * d + e];
    }
  }
  if (!mine) return;
  for (int64_t e = 0; e < d; ++e) dqkv[(n * t + i) * 3 * p + h * d + e] = dq[row * d + e];
}

// dK and dV of one key row per thread. Shared: k, v, dK, dV rows and Q, dO tiles (R x d
// each), the tile's L and D.
__global__ void key_gradient_kernel(Geometry g, const float* qkv, const float* attn,
                                    const float* lse, const float* dattn, float* dqkv,
                                    DropoutDraw drop) {
  extern __shared__ float shared[];
  const int64_t d = g.head_width, r = blockDim.x, p = g.part_width(), t = g.positions;
  const int64_t n = blockIdx.z, h = blockIdx.y, j0 = int64_t(blockIdx.x) * r;
  float *ks = shared, *vs = ks + r * d, *dk = vs + r * d, *dv = dk + r * d, *qs = dv + r * d;
  float *dos = qs + r * d, *lses = dos + r * d, *deltas = lses + r;
  const int64_t col = threadIdx.x, j = j0 + col;
  const bool mine = j < t;
  const float* rows = qkv + n * t * 3 * p;
  for (int64_t e = 0; e < d; ++e) {
    ks[col * d + e] = mine ? rows[j * 3 * p + p + h * d + e] : 0.0f;
    vs[col * d + e] = mine ? rows[j * 3 * p + 2 * p + h * d + e] : 0.0f;
    dk[col * d + e] = dv[col * d + e] = 0.0f;
  }
  for (int64_t i0 = g.causal ? j0 : 0; i0 < t; i0 += r) {
    __syncthreads();
    for (int64_t e = threadIdx.x; e < r * d; e += r) {
      const int64_t i = i0 + e / d;
      qs[e] = i < t ? rows[i * 3 * p + h * d + e % d] : 0.0f;
      dos[e] = i < t ? dattn[(n * t + i) * p + h * d + e % d] : 0.0f;
    }
    __syncthreads();
    {  // this thread's query row of the tile: its L and D = rowsum(dO * O)
      const int64_t i = i0 + col;
      float delta = 0.0f;
      for (int64_t e = 0; e < d && i < t; ++e)
        delta += dos[col * d + e] * attn[(n * t + i) * p + h * d + e];
      deltas[col] = delta;
      lses[col] = i < t ? lse[(n * g.heads + h) * t + i] : 0.0f;
    }
    __syncthreads();
    if (!mine) continue;
    for (int64_t c = 0; c < r && i0 + c < t; ++c) {
      const int64_t i = i0 + c;
      if (!visible(g, i, j)) continue;
      float dot = 0.0f, dp = 0.0f;
      for (int64_t e = 0; e < d; ++e) {
        dot += qs[c * d + e] * ks[col * d + e];
        dp += dos[c * d + e] * vs[col * d + e];
      }
      const float prob = exp_nonpositive(dot * g.scale - lses[c]);
      const float f = factor(drop, n, h, t, i, j);
      const float ds = score_gradient(prob, dp * f, deltas[c]);
      for (int64_t e = 0; e < d; ++e) {
        dv[col * d + e] += prob * f * dos[c * d + e];
        dk[col * d + e] += g.scale * ds * qs[c * d + e];
      }
    }
  }
  if (!mine) return;
  for (int64_t e = 0; e < d; ++e) {
    dqkv[(n * t + j) * 3 * p + p + h * d + e] = dk[col * d + e];
    dqkv[(n * t + j) * 3 * p + 2 * p + h * d + e] = dv[col * d + e];
  }
}

__global__ void add_bias_kernel(float* y, const float* bias, int64_t rows, int64_t width) {
  for (int64_t e = graft::cuda::first_index(); e < rows * width; e += graft::cuda::grid_stride())
    y[e] += bias[e % width];
}

// One thread per (row, pair) of q's and k's heads.
__global__ void rope_kernel(Geometry g, float* qkv, int64_t rows, double base, int64_t first,
                            float sign) {
  const int64_t d = g.head_width, half = d / 2, pairs = 2 * g.heads * half;
  for (int64_t e = graft::cuda::first_index(); e < rows * pairs; e += graft::cuda::grid_stride()) {
    const int64_t row = e / pairs, head = (e % pairs) / half, i = e % half;
    float cos_v, sin_v;
    rope_angle(first + row % g.positions, i, d, base, &cos_v, &sin_v);
    float* x = qkv + row * 3 * g.part_width() + head * d;
    rope_rotate(&x[i], &x[i + half], cos_v, sign * sin_v);
  }
}

// The new positions' k and v, rows first.. of the cache (N, H, 2, capacity, d).
__global__ void append_kernel(Geometry g, const float* qkv, int64_t samples, float* cache,
                              int64_t capacity, int64_t first) {
  const int64_t d = g.head_width, p = g.part_width(), t = g.positions;
  const int64_t count = samples * g.heads * 2 * t * d;
  for (int64_t e = graft::cuda::first_index(); e < count; e += graft::cuda::grid_stride()) {
    const int64_t x = e % d, row = (e / d) % t, which = (e / (d * t)) % 2;
    const int64_t pair = e / (2 * t * d), n = pair / g.heads, h = pair % g.heads;
    cache[((pair * 2 + which) * capacity + first + row) * d + x] =
        qkv[(n * t + row) * 3 * p + (1 + which) * p + h * d + x];
  }
}

const char* too_wide() {
  return "a head wider than the CUDA kernels' shared memory holds (use more heads)";
}

}  // namespace

const char* bias_and_rope(const Geometry& g, float* qkv, int64_t samples, const float* bias,
                          bool rope, double rope_base, int64_t first, float sign, void* stream) {
  const int64_t rows = samples * g.positions;
  auto s = static_cast<cudaStream_t>(stream);
  if (bias && rows > 0)
    add_bias_kernel<<<blocks_for(rows * 3 * g.part_width()), kThreads, 0, s>>>(qkv, bias, rows,
                                                                               3 * g.part_width());
  if (rope && rows > 0)
    rope_kernel<<<blocks_for(rows * g.heads * g.head_width), kThreads, 0, s>>>(
        g, qkv, rows, rope_base, first, sign);
  return graft::cuda::launch_error();
}

const char* add_bias(float* y, const float* bias, int64_t rows, int64_t width, void* stream) {
  if (rows * width == 0) return nullptr;
  add_bias_kernel<<<blocks_for(rows * width), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      y, bias, rows, width);
  return graft::cuda::launch_error();
}

const char* forward(const Geometry& g, int64_t samples, const float* qkv, float* attn, float* lse,
                    const DropoutDraw& drop, void* stream) {
  const int64_t t = g.positions, d = g.head_width, p = g.part_width(), r = tile_rows(d, 5);
  if (r * (4 * d + r) > kSharedFloats) return too_wide();
  const Operand q{qkv, t * 3 * p, d, 3 * p}, k{qkv + p, t * 3 * p, d, 3 * p},
      v{qkv + 2 * p, t * 3 * p, d, 3 * p};
  const dim3 grid(unsigned((t + r - 1) / r), unsigned(g.heads), unsigned(samples));
  forward_kernel<<<grid, unsigned(r), size_t(r * (4 * d + r)) * sizeof(float),
                   static_cast<cudaStream_t>(stream)>>>(g, q, k, v, t, t, 0, attn, lse, drop);
  return graft::cuda::launch_error();
}

const char* backward(const Geometry& g, int64_t samples, const float* qkv, const float* attn,
                     const float* lse, const float* dattn, float* dqkv, const DropoutDraw& drop,
                     void* stream) {
  const int64_t t = g.positions, d = g.head_width, r = tile_rows(d, 6);
  if (r * (6 * d + 2) > kSharedFloats) return too_wide();
  auto s = static_cast<cudaStream_t>(stream);
  const dim3 grid(unsigned((t + r - 1) / r), unsigned(g.heads), unsigned(samples));
  query_gradient_kernel<<<grid, unsigned(r), size_t(r * 5 * d) * sizeof(float), s>>>(
      g, qkv, attn, lse, dattn, dqkv, drop);
  key_gradient_kernel<<<grid, unsigned(r), size_t(r * (6 * d + 2)) * sizeof(float), s>>>(
      g, qkv, attn, lse, dattn, dqkv, drop);
  return graft::cuda::launch_error();
}

const char* forward_cached(const Geometry& g, int64_t samples, const float* qkv, float* cache,
                           int64_t capacity, int64_t first, float* attn, void* stream) {
  const int64_t t = g.positions, d = g.head_width, p = g.part_width(), r = tile_rows(d, 5);
  if (r * (4 * d + r) > kSharedFloats) return too_wide();
  auto s = static_cast<cudaStream_t>(stream);
  append_kernel<<<blocks_for(samples * g.heads * 2 * t * d), kThreads, 0, s>>>(
      g, qkv, samples, cache, capacity, first);
  const Operand q{qkv, t * 3 * p, d, 3 * p},
      k{cache, g.heads * 2 * capacity * d, 2 * capacity * d, d},
      v{cache + capacity * d, g.heads * 2 * capacity * d, 2 * capacity * d, d};
  const dim3 grid(unsigned((t + r - 1) / r), unsigned(g.heads), unsigned(samples));
  forward_kernel<<<grid, unsigned(r), size_t(r * (4 * d + r)) * sizeof(float), s>>>(
      g, q, k, v, t, first + t, first, attn, nullptr, DropoutDraw{});
  return graft::cuda::launch_error();
}

}  // namespace graft::attention::cuda
