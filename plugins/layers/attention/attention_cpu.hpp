// Attention's CPU core: FlashAttention's tiled forward (online softmax) and FlashAttention-2's
// backward over one (sample, head) at a time, threaded over the pairs, plus the bias and
// rotary pass over the fused q | k | v rows. Never forms a T x T matrix.
#pragma once

#include <cstdint>
#include <vector>

#include "attention_math.hpp"
#include "graft/graft.h"

namespace graft::attention {

// The rotary angles' (cos, sin) of positions [first, first + T): (T, d/2, 2).
std::vector<float> rope_table(const Geometry& g, int64_t first, double rope_base);

// qkv (N*T, 3P) += bias (3P,) (when not NULL), then q and k turned by the angles of `table`
// (rope_table; NULL: no rope) at row mod T; sign -1 turns gradients back (backward).
void bias_and_rope(const graft_exec_ctx& ctx, const Geometry& g, float* qkv, int64_t samples,
                   const float* bias, const float* table, float sign);

// attn (N*T, P) and lse (N, H, T) from qkv (N*T, 3P), each sample attending over itself.
void forward_batch(const graft_exec_ctx& ctx, const Geometry& g, int64_t samples, const float* qkv,
                   float* attn, float* lse, const DropoutDraw& drop);

// dqkv (N*T, 3P, before un-roping) from dattn (N*T, P), recomputing the probabilities from
// qkv and lse; attn is forward's output.
void backward_batch(const graft_exec_ctx& ctx, const Geometry& g, int64_t samples, const float* qkv,
                    const float* attn, const float* lse, const float* dattn, float* dqkv,
                    const DropoutDraw& drop);

// Generation: the T new positions [first, first + T) of each sample's rows of qkv append their
// k and v to cache (N, H, 2, capacity, d), and their queries attend over cached positions up
// to their own (causal); attn (N*T, P).
void forward_cached(const graft_exec_ctx& ctx, const Geometry& g, int64_t samples, const float* qkv,
                    float* cache, int64_t capacity, int64_t first, float* attn);

}  // namespace graft::attention
