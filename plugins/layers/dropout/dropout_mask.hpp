// The dropout mask as a pure function of global indices, shared by the CPU loop and a CUDA
// kernel (GRAFT_HD), so a mask never depends on how a batch is split over ranks or devices.
#pragma once

#include <stdint.h>

#include "graft/random.h"

namespace graft::dropout {

// "DROP": the random stream of dropout, mixed with the layer's position in the model.
constexpr uint64_t kStreamTag = 0x44524f50ull;

GRAFT_HD inline uint64_t stream(int32_t layer_index) {
  return kStreamTag ^ static_cast<uint64_t>(static_cast<int64_t>(layer_index));
}

// Counter of feature j of row `global_row` (the row's index within the step's global batch).
GRAFT_HD inline uint64_t index(int64_t step, int64_t global_batch, int64_t global_row,
                               int64_t features, int64_t j) {
  return (static_cast<uint64_t>(step) * static_cast<uint64_t>(global_batch) +
          static_cast<uint64_t>(global_row)) *
             static_cast<uint64_t>(features) +
         static_cast<uint64_t>(j);
}

// The factor of an element: 0 when dropped (uniform < p), 1/(1-p) when kept.
GRAFT_HD inline float multiplier(float uniform, float p, float keep_scale) {
  return uniform < p ? 0.0f : keep_scale;
}

}  // namespace graft::dropout
