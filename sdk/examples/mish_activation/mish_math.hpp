// Mish's element-wise math, written once in GRAFT_HD functions (__host__ __device__ under
// nvcc) so that a CUDA kernel would run the very code the CPU path and its checks run.
#pragma once

#include <cmath>

#include <graft/random.h>  // GRAFT_HD

namespace mish {

// log(1 + e^x) without overflow: for large x it is x itself to float precision.
GRAFT_HD inline float softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

GRAFT_HD inline float sigmoid(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  const float e = expf(x);
  return e / (1.0f + e);
}

// mish(x) = x tanh(softplus(x))  (Misra 2019)
GRAFT_HD inline float value(float x) { return x * tanhf(softplus(x)); }

// d mish / dx = tanh(sp) + x (1 - tanh(sp)^2) sigmoid(x), since d softplus / dx = sigmoid(x).
GRAFT_HD inline float derivative(float x) {
  const float t = tanhf(softplus(x));
  return t + x * (1.0f - t * t) * sigmoid(x);
}

}  // namespace mish
