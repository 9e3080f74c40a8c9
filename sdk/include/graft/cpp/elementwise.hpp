// Element-wise activation math, written once for the CPU loops and the CUDA kernels
// (GRAFT_HD is __host__ __device__ under nvcc), so CPU tests cover what GPUs run.
#pragma once

#include <cmath>
#include <cstring>

#include "graft/random.h"

namespace graft::elementwise {

enum class Kind { none, relu, leaky_relu, sigmoid, tanh, gelu };

GRAFT_HD inline float sigmoid(float x) {
  // Split by sign so exp never overflows.
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  float e = expf(x);
  return e / (1.0f + e);
}

// GELU as PyTorch's default: x * Phi(x) with the exact normal CDF.
GRAFT_HD inline float gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

GRAFT_HD inline float gelu_grad(float x) {
  float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
  float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
  return cdf + x * pdf;
}

// f(x); `slope` is leaky_relu's negative slope and ignored by the others.
GRAFT_HD inline float apply(Kind k, float x, float slope) {
  switch (k) {
    case Kind::relu: return x > 0.0f ? x : 0.0f;
    case Kind::leaky_relu: return x > 0.0f ? x : slope * x;
    case Kind::sigmoid: return sigmoid(x);
    case Kind::tanh: return tanhf(x);
    case Kind::gelu: return gelu(x);
    case Kind::none: break;
  }
  return x;
}

// f'(x) given x and y = f(x): relu, sigmoid and tanh need only y; gelu needs x.
GRAFT_HD inline float derivative(Kind k, float x, float y, float slope) {
  switch (k) {
    case Kind::relu: return x > 0.0f ? 1.0f : 0.0f;
    case Kind::leaky_relu: return x > 0.0f ? 1.0f : slope;
    case Kind::sigmoid: return y * (1.0f - y);
    case Kind::tanh: return 1.0f - y * y;
    case Kind::gelu: return gelu_grad(x);
    case Kind::none: break;
  }
  return 1.0f;
}

// True when derivative() can be computed from y alone (x need not be kept for backward).
GRAFT_HD inline bool derivative_from_output(Kind k) {
  return k == Kind::none || k == Kind::sigmoid || k == Kind::tanh || k == Kind::relu ||
         k == Kind::leaky_relu;
}

inline const char* const kNames = "none|relu|leaky_relu|sigmoid|tanh|gelu";

// Parses a name of kNames; returns false for anything else.
inline bool parse(const char* name, Kind* out) {
  static const struct {
    const char* name;
    Kind kind;
  } table[] = {{"none", Kind::none},       {"relu", Kind::relu}, {"leaky_relu", Kind::leaky_relu},
               {"sigmoid", Kind::sigmoid}, {"tanh", Kind::tanh}, {"gelu", Kind::gelu}};
  for (const auto& e : table)
    if (std::strcmp(e.name, name) == 0) {
      *out = e.kind;
      return true;
    }
  return false;
}

}  // namespace graft::elementwise
