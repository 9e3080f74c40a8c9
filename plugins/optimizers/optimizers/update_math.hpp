// Per-element update rules of the built-in optimizers (sgd, adam, adamw, rmsprop), written once
// for the CPU loops in optimizers.cpp and the CUDA kernels to come (GRAFT_HD is __host__
// __device__).
//
// Each option that changes the formula is a template flag, not a run-time test: the loop over a
// parameter then has no per-element branch and no pointer that may be null, so the compiler
// vectorises it. with_flags() turns the run-time options into those flags once per parameter.
// The order of operations is the same in every combination (and no two are fused), so the
// vectorised loops give the bits the scalar formulas give.
#pragma once

#include <math.h>

#include <type_traits>

#include "graft/random.h"

namespace graft::optimizers {

// Calls f(std::bool_constant<a>, std::bool_constant<b>, ...) for run-time flags a, b, ...: one
// instantiation of f's body per combination.
template <class F>
inline void with_flags(F&& f) {
  f();
}
template <class F, class... Rest>
inline void with_flags(F&& f, bool first, Rest... rest) {
  if (first)
    with_flags([&](auto... flags) { f(std::true_type{}, flags...); }, rest...);
  else
    with_flags([&](auto... flags) { f(std::false_type{}, flags...); }, rest...);
}

// Everything one SGD step needs besides the element's own values; made once per parameter.
// Follows torch.optim.SGD (PyTorch 1.13): weight decay is L2 added to the gradient, and the
// first step copies the gradient into the buffer instead of damping it.
struct SgdCoefficients {
  float lr;
  float momentum;             // 0: plain SGD, no buffer
  float one_minus_dampening;  // computed in double, as torch does for its scalar
  float weight_decay;         // 0 when the parameter is excluded from decay
  bool nesterov;
  bool first_step;  // buffer = gradient instead of momentum * buffer + (1 - dampening) * grad
};

// The flags of one SGD loop: kDecay (weight_decay != 0), kMomentum (momentum != 0; the buffer
// is read and written only then), kNesterov and kFirst (only with momentum).
template <bool kDecay, bool kMomentum, bool kNesterov, bool kFirst>
GRAFT_HD inline void sgd_update(const SgdCoefficients& c, float& param, float grad,
                                float& momentum_buffer) {
  float direction = grad;
  if constexpr (kDecay) direction += c.weight_decay * param;
  if constexpr (kMomentum) {
    float buffer;
    if constexpr (kFirst)
      buffer = direction;
    else
      buffer = c.momentum * momentum_buffer + c.one_minus_dampening * direction;
    momentum_buffer = buffer;
    if constexpr (kNesterov)
      direction = direction + c.momentum * buffer;
    else
      direction = buffer;
  }
  param -= c.lr * direction;
}

// f(decay, momentum, nesterov, first) with the flags c asks for.
template <class F>
inline void with_sgd_flags(const SgdCoefficients& c, F&& f) {
  const bool momentum = c.momentum != 0.0f;
  with_flags(f, c.weight_decay != 0.0f, momentum, momentum && c.nesterov, momentum && c.first_step);
}

// One Adam or AdamW step for one parameter, with the bias corrections already folded in:
//   step_size = lr / (1 - beta1^t),  bias_correction2_sqrt = sqrt(1 - beta2^t).
// Adam adds l2_weight_decay * param to the gradient; AdamW multiplies the parameter by
// decoupled_decay = 1 - lr * weight_decay before the update (1 for Adam).
struct AdamCoefficients {
  float beta1, beta2, eps;
  float one_minus_beta1, one_minus_beta2;  // computed in double, as torch does for its scalars
  float step_size;
  float bias_correction2_sqrt;
  float l2_weight_decay;
  float decoupled_decay;
  bool amsgrad;
};

// Flags: kDecoupled (decoupled_decay != 1), kL2 (l2_weight_decay != 0), kAmsgrad (the running
// maximum is read and written only then). The order of operations is torch's
// (_single_tensor_adam, 1.13), so float results match it closely: the running maximum is over
// the uncorrected second moment, and eps is added after the bias correction.
template <bool kDecoupled, bool kL2, bool kAmsgrad>
GRAFT_HD inline void adam_update(const AdamCoefficients& c, float& param, float grad,
                                 float& exp_avg, float& exp_avg_sq, float& max_exp_avg_sq) {
  if constexpr (kDecoupled) param *= c.decoupled_decay;
  if constexpr (kL2) grad += c.l2_weight_decay * param;
  exp_avg = c.beta1 * exp_avg + c.one_minus_beta1 * grad;
  exp_avg_sq = c.beta2 * exp_avg_sq + c.one_minus_beta2 * grad * grad;
  float second_moment = exp_avg_sq;
  if constexpr (kAmsgrad) {
    // A select rather than a branch, so the loop stays branch-free.
    max_exp_avg_sq = max_exp_avg_sq < exp_avg_sq ? exp_avg_sq : max_exp_avg_sq;
    second_moment = max_exp_avg_sq;
  }
  float denominator = sqrtf(second_moment) / c.bias_correction2_sqrt + c.eps;
  param -= c.step_size * (exp_avg / denominator);
}

template <class F>
inline void with_adam_flags(const AdamCoefficients& c, F&& f) {
  with_flags(f, c.decoupled_decay != 1.0f, c.l2_weight_decay != 0.0f, c.amsgrad);
}

// One RMSprop step, in the order of operations of torch (_single_tensor_rmsprop, 1.13):
//   g += weight_decay * param;  square_avg = alpha * square_avg + (1 - alpha) * g^2
//   centered: grad_avg = alpha * grad_avg + (1 - alpha) * g; avg = sqrt(square_avg - grad_avg^2)
//   else avg = sqrt(square_avg);  avg += eps
//   momentum: buffer = momentum * buffer + g / avg; param -= lr * buffer
//   else param -= lr * g / avg
// Unlike SGD's, torch's RMSprop momentum buffer starts at zero, as every graft state does.
struct RmspropCoefficients {
  float lr;
  float alpha;
  float one_minus_alpha;  // computed in double, as torch does for its scalar
  float eps;
  float weight_decay;  // 0 when the parameter is excluded from decay
  float momentum;      // 0: no buffer
  bool centered;
};

// Flags: kDecay (weight_decay != 0), kCentered (grad_avg read and written only then),
// kMomentum (momentum > 0; the buffer likewise).
template <bool kDecay, bool kCentered, bool kMomentum>
GRAFT_HD inline void rmsprop_update(const RmspropCoefficients& c, float& param, float grad,
                                    float& square_avg, float& momentum_buffer, float& grad_avg) {
  if constexpr (kDecay) grad += c.weight_decay * param;
  square_avg = c.alpha * square_avg + c.one_minus_alpha * grad * grad;
  float avg;
  if constexpr (kCentered) {
    grad_avg = c.alpha * grad_avg + c.one_minus_alpha * grad;
    avg = sqrtf(square_avg - grad_avg * grad_avg);
  } else {
    avg = sqrtf(square_avg);
  }
  avg += c.eps;
  if constexpr (kMomentum) {
    momentum_buffer = c.momentum * momentum_buffer + grad / avg;
    param += -c.lr * momentum_buffer;
  } else {
    param += -c.lr * (grad / avg);
  }
}

// Element i of the arrays: the buffers a flag leaves out are neither read nor written (they
// may be null), which the per-element update's references cannot express alone.
template <bool kDecay, bool kCentered, bool kMomentum>
GRAFT_HD inline void rmsprop_element(const RmspropCoefficients& c, float* param, const float* grad,
                                     float* square_avg, float* buffer, float* grad_avg, int64_t i) {
  float b = 0.0f, a = 0.0f;
  if constexpr (kMomentum) b = buffer[i];
  if constexpr (kCentered) a = grad_avg[i];
  rmsprop_update<kDecay, kCentered, kMomentum>(c, param[i], grad[i], square_avg[i], b, a);
  if constexpr (kMomentum) buffer[i] = b;
  if constexpr (kCentered) grad_avg[i] = a;
}

template <class F>
inline void with_rmsprop_flags(const RmspropCoefficients& c, F&& f) {
  with_flags(f, c.weight_decay != 0.0f, c.centered, c.momentum > 0.0f);
}

}  // namespace graft::optimizers
