// Per-row loss math shared by the CPU loops and CUDA kernels (GRAFT_HD): cross entropy from
// logits through a stable log-sum-exp, and the element-wise losses (mse, mae, binary cross
// entropy in its stable logit form).
#pragma once

#include <math.h>
#include <stdint.h>

#include "graft/cpp/elementwise.hpp"

namespace graft::losses {

// log sum_j exp(z_j) over c logits, with the maximum taken out so exp never overflows.
GRAFT_HD inline float log_sum_exp(const float* z, int64_t c) {
  float largest = z[0];
  for (int64_t j = 1; j < c; ++j) largest = z[j] > largest ? z[j] : largest;
  float total = 0.0f;
  for (int64_t j = 0; j < c; ++j) total += expf(z[j] - largest);
  return largest + logf(total);
}

// The first index of the largest logit: the predicted class.
GRAFT_HD inline int64_t argmax(const float* z, int64_t c) {
  int64_t best = 0;
  for (int64_t j = 1; j < c; ++j)
    if (z[j] > z[best]) best = j;
  return best;
}

// -sum_j q_j log softmax(z)_j with q = (1 - s) onehot(label) + s / c (s: label smoothing).
GRAFT_HD inline float cross_entropy_row(const float* z, int64_t c, int32_t label, float smoothing) {
  const float lse = log_sum_exp(z, c);
  float mean_logit = 0.0f;
  if (smoothing > 0.0f) {
    for (int64_t j = 0; j < c; ++j) mean_logit += z[j];
    mean_logit /= static_cast<float>(c);
  }
  return lse - (1.0f - smoothing) * z[label] - smoothing * mean_logit;
}

// dz = scale * (softmax(z) - q): the gradient of cross_entropy_row times scale.
GRAFT_HD inline void cross_entropy_row_gradient(const float* z, int64_t c, int32_t label,
                                                float smoothing, float scale, float* dz) {
  const float lse = log_sum_exp(z, c);
  const float spread = smoothing / static_cast<float>(c);
  for (int64_t j = 0; j < c; ++j) {
    const float target = spread + (j == label ? 1.0f - smoothing : 0.0f);
    dz[j] = scale * (expf(z[j] - lse) - target);
  }
}

// -(t log sigmoid(z) + (1 - t) log(1 - sigmoid(z))) = max(z, 0) - z t + log(1 + exp(-|z|)).
GRAFT_HD inline float bce_with_logits(float z, float t) {
  return (z > 0.0f ? z : 0.0f) - z * t + log1pf(expf(-fabsf(z)));
}

GRAFT_HD inline float bce_with_logits_gradient(float z, float t) {
  return graft::elementwise::sigmoid(z) - t;
}

// The losses that compare each prediction element with a float target; a row's loss is the
// mean over its elements.
enum class ElementLoss : int32_t { mse, mae, bce_with_logits };

// One element's loss, in double as the sums over the row are.
GRAFT_HD inline double element_loss(ElementLoss kind, float p, float t) {
  switch (kind) {
    case ElementLoss::mse: {
      const double difference = static_cast<double>(p) - t;
      return difference * difference;
    }
    case ElementLoss::mae: return fabs(static_cast<double>(p) - t);
    case ElementLoss::bce_with_logits: break;
  }
  return bce_with_logits(p, t);
}

// bce_with_logits's accuracy: an element is right when (logit > 0) == (target > 0.5).
GRAFT_HD inline bool element_hit(float z, float t) { return (z > 0.0f) == (t > 0.5f); }

// The gradient of a row's loss (a mean over `elements`) times scale is
// factor * element_gradient, with mse's 2 folded into its factor.
inline float gradient_factor(ElementLoss kind, float scale, int64_t elements) {
  return (kind == ElementLoss::mse ? 2.0f * scale : scale) / static_cast<float>(elements);
}

// mae's gradient at p == t is 0.
GRAFT_HD inline float element_gradient(ElementLoss kind, float p, float t, float factor) {
  switch (kind) {
    case ElementLoss::mse: return factor * (p - t);
    case ElementLoss::mae: return p > t ? factor : (p < t ? -factor : 0.0f);
    case ElementLoss::bce_with_logits: break;
  }
  return factor * bce_with_logits_gradient(p, t);
}

}  // namespace graft::losses
