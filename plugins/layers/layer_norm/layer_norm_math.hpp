// Layer normalisation's per-element formulas, written once for the CPU loops and the
// CUDA kernels (GRAFT_HD), so CPU tests cover the arithmetic both paths run.
#pragma once

#include <math.h>

#include "graft/random.h"

namespace graft::layer_norm {

// 1 / sqrt(var + eps) of one row.
GRAFT_HD inline float inverse_std(float variance, float eps) {
  return 1.0f / sqrtf(variance + eps);
}

// x_hat = (x - mean) * inv_std.
GRAFT_HD inline float normalized(float x, float mean, float inv_std) {
  return (x - mean) * inv_std;
}

// y = x_hat * weight + bias (weight 1 and bias 0 without elementwise_affine).
GRAFT_HD inline float affine(float x_hat, float weight, float bias) {
  return x_hat * weight + bias;
}

// dx through the row's statistics, with g = dy * weight over the L elements of the row:
// dx = inv_std * (g - mean(g) - x_hat * mean(g * x_hat)).
GRAFT_HD inline float input_gradient(float g, float x_hat, float inv_std, float mean_g,
                                     float mean_g_x_hat) {
  return inv_std * (g - mean_g - x_hat * mean_g_x_hat);
}

}  // namespace graft::layer_norm
