// One (sample, head) of attention on packed, contiguous (rows, d) matrices: the tiled forward
// with an online softmax and the FlashAttention-2 backward, the CPU's inner loops.
#pragma once

#include <cstdint>

#include "attention_cpu.hpp"

namespace graft::attention {

// Where one head's probabilities sit in the whole layer, for the dropout counters.
struct HeadDraw {
  const DropoutDraw* drop = nullptr;  // NULL or p = 0: no dropout
  int64_t global_row = 0, head = 0;   // head: of the whole layer
};

// q (queries, d) at positions query_offset.., k and v (keys, d) at positions 0..;
// out (queries, d) and lse (queries,) receive the output and log-sum-exp of each row.
// scratch: block * block + 2 * block floats.
void head_forward(const graft_exec_ctx& ctx, const Geometry& g, const float* q, const float* k,
                  const float* v, int64_t queries, int64_t keys, int64_t query_offset,
                  const HeadDraw& draw, float* out, float* lse, float* scratch);

// queries = keys = T from position 0. dq, dk, dv (T, d) are overwritten. scratch:
// 3 * block * block + T floats.
void head_backward(const graft_exec_ctx& ctx, const Geometry& g, const float* q, const float* k,
                   const float* v, const float* out, const float* dout, const float* lse,
                   const HeadDraw& draw, float* dq, float* dk, float* dv, float* scratch);

}  // namespace graft::attention
