// Attention's per-element formulas, written once for the CPU loops and the CUDA kernels
// (GRAFT_HD): rotary embeddings, the online softmax's running max and sum, and the dropout mask.
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../dropout/dropout_mask.hpp"
#include "graft/random.h"

namespace graft::attention {

// "ATTN": the random stream of attention's dropout, mixed with the layer's position in the model.
constexpr uint64_t kStreamTag = 0x4154544eull;

GRAFT_HD inline uint64_t dropout_stream(int32_t layer_index) {
  return kStreamTag ^ static_cast<uint64_t>(static_cast<int64_t>(layer_index));
}

// Counter of probability (i, j) of head `head` (of the whole layer's heads, so a part of a
// sharded layer draws its slice of the whole layer's masks) of row `global_row`: a function of
// global indices only, so any split of the batch or of the heads draws the same mask.
GRAFT_HD inline uint64_t dropout_counter(int64_t step, int64_t global_batch, int64_t global_row,
                                         int64_t heads, int64_t head, int64_t positions, int64_t i,
                                         int64_t j) {
  const uint64_t row = static_cast<uint64_t>(step) * static_cast<uint64_t>(global_batch) +
                       static_cast<uint64_t>(global_row);
  const uint64_t plane = row * static_cast<uint64_t>(heads) + static_cast<uint64_t>(head);
  return (plane * static_cast<uint64_t>(positions) + static_cast<uint64_t>(i)) *
             static_cast<uint64_t>(positions) +
         static_cast<uint64_t>(j);
}

// The factor of one probability: 0 when dropped, 1/(1-p) when kept (dropout_mask.hpp's rule).
GRAFT_HD inline float dropout_factor(uint64_t seed, uint64_t stream, uint64_t counter, float p,
                                     float keep_scale) {
  return graft::dropout::multiplier(graft_random_uniform(seed, stream, counter), p, keep_scale);
}

// Rotary embeddings, rotate-half convention (GPT-NeoX, HF LLaMA): element i < d/2 of a head
// pairs with i + d/2 and turns by position * base^(-2i/d). In double, so the CPU and the GPU
// agree and large positions keep their precision.
GRAFT_HD inline void rope_angle(int64_t position, int64_t i, int64_t head_width, double base,
                                float* cos_out, float* sin_out) {
  const double angle = static_cast<double>(position) *
                       pow(base, -2.0 * static_cast<double>(i) / static_cast<double>(head_width));
  *cos_out = static_cast<float>(cos(angle));
  *sin_out = static_cast<float>(sin(angle));
}

// (a, b) = (x_i, x_{i+d/2}) turned by the angle; sin negated turns it back (backward: the
// rotation is orthogonal, so its gradient is the inverse rotation).
GRAFT_HD inline void rope_rotate(float* a, float* b, float cos_v, float sin_v) {
  const float x1 = *a, x2 = *b;
  *a = x1 * cos_v - x2 * sin_v;
  *b = x2 * cos_v + x1 * sin_v;
}

// e^x for x <= 0 (any float below ~88): Cephes' polynomial on x = n ln2 + r, |r| <= ln2/2,
// relative error ~2e-7. Branch-free, so GCC vectorises a loop of it without -ffast-math.
GRAFT_HD inline float exp_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x;
  const float t = x * 1.44269504088896341f;
  const float n = (t + 12582912.0f) - 12582912.0f;  // round to nearest: 1.5 * 2^23
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) * 8388608;  // 2^n
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return y * scale;
}

// Dimension letters: N samples, T positions, C the layer's width (x and y), H this part's
// heads, d = C / (whole heads) a head's width, P = H * d this part's width of q, k and v.
struct Geometry {
  int64_t heads = 1;       // H
  int64_t head_width = 1;  // d
  int64_t positions = 1;   // T (per sample, per forward call)
  int64_t block = 64;      // query and key rows per tile
  bool causal = true;
  float scale = 1.0f;                                                 // 1 / sqrt(d)
  GRAFT_HD int64_t part_width() const { return heads * head_width; }  // P
};

// Dropout on the probabilities; p = 0 draws nothing. Indices are the whole layer's (heads
// counted from first_head of whole_heads), so masks do not depend on the split.
struct DropoutDraw {
  float p = 0.0f, keep_scale = 1.0f;
  uint64_t seed = 0, stream = 0;
  int64_t step = 0, global_batch = 0, row_offset = 0;
  int64_t whole_heads = 1, first_head = 0;
};

// The online softmax (FlashAttention): a row's running max m and sum l of e^(s - m). A tile
// with row maximum tile_max moves m to the larger; what the row held so far is multiplied by
// the returned factor e^(m_old - m_new) (0 before the first tile, when m_old = -inf).
GRAFT_HD inline float online_softmax_step(float* running_max, float tile_max) {
  const float old_max = *running_max;
  const float new_max = old_max > tile_max ? old_max : tile_max;
  *running_max = new_max;
  return old_max == -INFINITY ? 0.0f : exp_nonpositive(old_max - new_max);
}

// L = m + log(l): backward's probabilities are e^(s - L), without m and l apart.
GRAFT_HD inline float log_sum_exp(float running_max, float running_sum) {
  return running_max + logf(running_sum);
}

// dS = P * (dP - D), D = rowsum(dO * O) (FlashAttention-2's softmax backward).
GRAFT_HD inline float score_gradient(float p, float dp, float delta) { return p * (dp - delta); }

}  // namespace graft::attention
