// Batch normalisation's per-element and per-channel formulas, written once for the CPU loops
// and the CUDA kernels (GRAFT_HD), so CPU tests cover the arithmetic both paths run.
#pragma once

#include <math.h>
#include <stdint.h>

#include "graft/random.h"

namespace graft::batch_norm {

// 1 / sqrt(var + eps): the factor that turns a centred value into a normalised one.
GRAFT_HD inline float inverse_std(float variance, float eps) {
  return 1.0f / sqrtf(variance + eps);
}

// y = (x - mean) * inv_std * weight + bias, written as x * scale + shift with
// scale = weight * inv_std and shift = bias - mean * scale (one multiply-add per element).
GRAFT_HD inline float channel_scale(float weight, float inv_std) { return weight * inv_std; }
GRAFT_HD inline float channel_shift(float bias, float mean, float scale) {
  return bias - mean * scale;
}
GRAFT_HD inline float normalize(float x, float scale, float shift) { return x * scale + shift; }

// The normalised input x_hat = (x - mean) * inv_std, which backward rebuilds from x.
GRAFT_HD inline float normalized(float x, float mean, float inv_std) {
  return (x - mean) * inv_std;
}

// dx in training, through the batch statistics (M values per channel):
// dx = weight * inv_std * (dy - mean(dy) - x_hat * mean(dy * x_hat)).
GRAFT_HD inline float input_gradient(float dy, float x_hat, float scale, float mean_dy,
                                     float mean_dy_x_hat) {
  return scale * (dy - mean_dy - x_hat * mean_dy_x_hat);
}

// PyTorch's running statistics: r = (1 - momentum) r + momentum * batch value, where the
// variance is the unbiased one (count / (count - 1) times the biased variance). In double,
// as PyTorch's CPU kernel computes it, before the float32 store.
GRAFT_HD inline double running_update(double running, double batch_value, double momentum) {
  return (1.0 - momentum) * running + momentum * batch_value;
}
GRAFT_HD inline double unbiased_variance(double biased, int64_t count) {
  return biased * (double)count / (double)(count - 1);
}

}  // namespace graft::batch_norm
