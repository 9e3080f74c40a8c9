// Per-element update rules of the built-in optimizers (sgd, adam, adamw, rmsprop), written once
// for the CPU loops in optimizers.cpp and the CUDA kernels to come (GRAFT_HD is __host__ __device__).
#pragma once

#include <math.h>

#include "graft/random.h"

namespace graft::optimizers {

// Everything one SGD step needs besides the element's own values; made once per parameter.
// Follows torch.optim.SGD (PyTorch 1.13): weight decay is L2 added to the gradient, and the
// first step copies the gradient into the buffer instead of damping it.
struct SgdCoefficients {
  float lr;
  float momentum;      // 0: plain SGD, no buffer
  float one_minus_dampening;  // computed in double, as torch does for its scalar
  float weight_decay;  // 0 when the parameter is excluded from decay
  bool nesterov;
  bool first_step;     // buffer = gradient instead of momentum * buffer + (1 - dampening) * grad
};

// momentum_buffer is null exactly when c.momentum == 0.
GRAFT_HD inline void sgd_update(const SgdCoefficients& c, float& param, float grad,
                                float* momentum_buffer) {
  float direction = grad;
  if (c.weight_decay != 0.0f) direction += c.weight_decay * param;
  if (c.momentum != 0.0f) {
    float buffer = c.first_step ? direction
                                : c.momentum * *momentum_buffer + c.one_minus_dampening * direction;
    *momentum_buffer = buffer;
    direction = c.nesterov ? direction + c.momentum * buffer : buffer;
  }
  param -= c.lr * direction;
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

// max_exp_avg_sq is null unless c.amsgrad. The order of operations is torch's
// (_single_tensor_adam, 1.13), so float results match it closely: the running maximum is over
// the uncorrected second moment, and eps is added after the bias correction.
GRAFT_HD inline void adam_update(const AdamCoefficients& c, float& param, float grad,
                                 float& exp_avg, float& exp_avg_sq, float* max_exp_avg_sq) {
  if (c.decoupled_decay != 1.0f) param *= c.decoupled_decay;
  if (c.l2_weight_decay != 0.0f) grad += c.l2_weight_decay * param;
  exp_avg = c.beta1 * exp_avg + c.one_minus_beta1 * grad;
  exp_avg_sq = c.beta2 * exp_avg_sq + c.one_minus_beta2 * grad * grad;
  float second_moment = exp_avg_sq;
  if (c.amsgrad) {
    if (*max_exp_avg_sq < exp_avg_sq) *max_exp_avg_sq = exp_avg_sq;
    second_moment = *max_exp_avg_sq;
  }
  float denominator = sqrtf(second_moment) / c.bias_correction2_sqrt + c.eps;
  param -= c.step_size * (exp_avg / denominator);
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

// momentum_buffer is null exactly when c.momentum == 0; grad_avg null unless c.centered.
GRAFT_HD inline void rmsprop_update(const RmspropCoefficients& c, float& param, float grad,
                                    float& square_avg, float* momentum_buffer, float* grad_avg) {
  if (c.weight_decay != 0.0f) grad += c.weight_decay * param;
  square_avg = c.alpha * square_avg + c.one_minus_alpha * grad * grad;
  float avg;
  if (c.centered) {
    *grad_avg = c.alpha * *grad_avg + c.one_minus_alpha * grad;
    avg = sqrtf(square_avg - *grad_avg * *grad_avg);
  } else {
    avg = sqrtf(square_avg);
  }
  avg += c.eps;
  if (c.momentum > 0.0f) {
    *momentum_buffer = c.momentum * *momentum_buffer + grad / avg;
    param += -c.lr * *momentum_buffer;
  } else {
    param += -c.lr * (grad / avg);
  }
}

}  // namespace graft::optimizers
