// The built-in optimizers sgd, adam, adamw and rmsprop, matching torch.optim (1.13) step for step.
// The learning rate and its schedule are the framework's: each step receives this step's rate.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "graft/cpp/device.hpp"
#include "graft/cpp/parallel.hpp"
#include "graft/cpp/plugin.hpp"
#include "optimizers_cuda.hpp"
#include "update_math.hpp"

namespace graft::optimizers {
namespace {

constexpr double kUnbounded = std::numeric_limits<double>::infinity();

// Elements per range when an update is split across the host's threads: below two of these a
// parameter is updated on the calling thread (waking a thread costs more than the loop).
constexpr int64_t kGrain = 32768;

std::string device_name(const DLDevice& device) {
  switch (device.device_type) {
    case kDLCPU: return "cpu";
    case kDLCUDA: return "cuda:" + std::to_string(device.device_id);
    case kDLCUDAHost: return "cuda_host";
    case kDLCUDAManaged: return "cuda_managed";
    default: return "device type " + std::to_string(static_cast<int>(device.device_type));
  }
}

bool is_dense(const DLTensor& t) {
  if (!t.strides) return true;
  int64_t expected = 1;
  for (int axis = t.ndim - 1; axis >= 0; --axis) {
    if (t.shape[axis] != 1 && t.strides[axis] != expected) return false;
    expected *= t.shape[axis];
  }
  return true;
}

// A float32, dense tensor of n elements on the parameter's device, or an error saying which
// tensor is not.
void check_tensor(const char* optimizer, const std::string& role, const DLTensor* t, int64_t n,
                  const DLDevice& device) {
  GRAFT_CHECK(t != nullptr, optimizer << ": the " << role << " tensor is missing (null)");
  if (t->device.device_type != device.device_type || t->device.device_id != device.device_id)
    throw Error(GRAFT_ERR_INVALID_ARGUMENT, std::string(optimizer) + ": the " + role + " is on " +
                                                device_name(t->device) + ", the parameter on " +
                                                device_name(device));
  // Not require_device: the message names the tensor and the device.
  if (!on_cpu(*t) && !(kPluginHasCuda && on_cuda(*t)))
    throw Error(GRAFT_ERR_UNSUPPORTED,
                std::string(optimizer) + ": the " + role + " is on " + device_name(t->device) +
                    ", but this build of the optimizer has no kernels there; use device = "
                    "\"cpu\"");
  if (t->dtype.code != kDLFloat || t->dtype.bits != 32 || t->dtype.lanes != 1)
    throw Error(GRAFT_ERR_UNSUPPORTED, std::string(optimizer) + ": the " + role +
                                           " must be float32; other dtypes are not supported");
  GRAFT_CHECK(is_dense(*t), optimizer << ": the " << role << " must be dense (row-major)");
  GRAFT_CHECK(numel(*t) == n, optimizer << ": the " << role << " has " << numel(*t)
                                        << " elements but the parameter has " << n);
}

// Checks what every optimizer reads from an update; returns the parameter's element count.
int64_t check_update(const char* optimizer, const graft_param_update& u, size_t n_state) {
  GRAFT_CHECK(u.struct_size >= sizeof(graft_param_update),
              optimizer << ": graft_param_update is " << u.struct_size << " bytes, expected "
                        << sizeof(graft_param_update) << " (host older than the plugin)");
  GRAFT_CHECK(u.param != nullptr, optimizer << ": the parameter tensor is missing (null)");
  const int64_t n = numel(*u.param);
  check_tensor(optimizer, "parameter", u.param, n, u.param->device);
  check_tensor(optimizer, "gradient", u.grad, n, u.param->device);
  GRAFT_CHECK(n_state == 0 || u.state != nullptr,
              optimizer << ": " << n_state << " state tensors expected, got none");
  for (size_t i = 0; i < n_state; ++i)
    check_tensor(optimizer, "state tensor " + std::to_string(i), u.state[i], n, u.param->device);
  GRAFT_CHECK(std::isfinite(u.lr) && u.lr >= 0.0f,
              optimizer << ": the learning rate must be finite and >= 0, got " << u.lr);
  GRAFT_CHECK(u.step >= 1, optimizer << ": update.step counts from 1, got " << u.step);
  return n;
}

// The loops over one parameter, one instantiation per combination of flags (update_math.hpp).
// The state a combination does not use may be null and is never touched: the element's value
// lives in a local instead. __restrict (parameter, gradient and state never overlap) and the
// absence of branches let GCC vectorise each loop.

template <bool kDecay, bool kMomentum, bool kNesterov, bool kFirst>
void sgd_loop(const SgdCoefficients c, float* __restrict param, const float* __restrict grad,
              float* __restrict buffer, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    float b = 0.0f;
    if constexpr (kMomentum && !kFirst) b = buffer[i];
    sgd_update<kDecay, kMomentum, kNesterov, kFirst>(c, param[i], grad[i], b);
    if constexpr (kMomentum) buffer[i] = b;
  }
}

template <bool kDecoupled, bool kL2, bool kAmsgrad>
void adam_loop(const AdamCoefficients c, float* __restrict param, const float* __restrict grad,
               float* __restrict exp_avg, float* __restrict exp_avg_sq,
               float* __restrict max_exp_avg_sq, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    float m = 0.0f;
    if constexpr (kAmsgrad) m = max_exp_avg_sq[i];
    adam_update<kDecoupled, kL2, kAmsgrad>(c, param[i], grad[i], exp_avg[i], exp_avg_sq[i], m);
    if constexpr (kAmsgrad) max_exp_avg_sq[i] = m;
  }
}

template <bool kDecay, bool kCentered, bool kMomentum>
void rmsprop_loop(const RmspropCoefficients c, float* __restrict param,
                  const float* __restrict grad, float* __restrict square_avg,
                  float* __restrict buffer, float* __restrict grad_avg, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    rmsprop_element<kDecay, kCentered, kMomentum>(c, param, grad, square_avg, buffer, grad_avg, i);
}

// torch.optim.SGD: momentum, dampening, Nesterov and L2 weight decay.
class Sgd : public Optimizer {
 public:
  static std::vector<OptionDef> options() {
    return {
        option_float("momentum", 0.0, "momentum factor in [0, 1); 0 keeps no momentum buffer")
            .range(0.0, 1.0),
        option_float("dampening", 0.0, "share of each gradient left out of the momentum buffer")
            .range(0.0, 1.0),
        option_bool("nesterov", false, "Nesterov momentum (needs momentum > 0 and dampening 0)"),
        option_float("weight_decay", 0.0, "L2 penalty: weight_decay * param added to the gradient")
            .range(0.0, kUnbounded)};
  }

  Sgd(const Options& o, Host)
      : momentum_(o.get_float("momentum")),
        dampening_(o.get_float("dampening")),
        weight_decay_(o.get_float("weight_decay")),
        nesterov_(o.get_bool("nesterov")) {
    GRAFT_CHECK(momentum_ < 1.0, "momentum must be in [0, 1), got "
                                     << momentum_ << ": at 1 or more old gradients never fade");
    GRAFT_CHECK(!nesterov_ || momentum_ > 0.0,
                "nesterov = true needs momentum > 0 (momentum is 0); set momentum (e.g. 0.9) "
                "or nesterov = false");
    GRAFT_CHECK(!nesterov_ || dampening_ == 0.0,
                "nesterov = true needs dampening = 0, got dampening = " << dampening_);
  }

  std::vector<std::string> state_names() const override {
    if (momentum_ > 0.0) return {"momentum_buffer"};
    return {};
  }

  void step(const Context& ctx, const graft_param_update& u) override {
    const bool has_buffer = momentum_ > 0.0;
    const int64_t n = check_update("sgd", u, has_buffer ? 1 : 0);
    const SgdCoefficients c{u.lr,
                            static_cast<float>(momentum_),
                            static_cast<float>(1.0 - dampening_),
                            u.weight_decay ? static_cast<float>(weight_decay_) : 0.0f,
                            nesterov_,
                            u.step == 1};
    float* param = f32(*u.param);                             // (n)
    const float* grad = f32(*u.grad);                         // (n)
    float* buffer = has_buffer ? f32(*u.state[0]) : nullptr;  // (n) or none
    if (on_cuda(*u.param))
      return check_launch("sgd", cuda::sgd(c, param, grad, buffer, n, ctx.stream));
    parallel_for(ctx, n, kGrain, [&](int64_t b, int64_t e) {
      with_sgd_flags(c, [&](auto... flags) {
        sgd_loop<decltype(flags)::value...>(c, param + b, grad + b, buffer ? buffer + b : nullptr,
                                            e - b);
      });
    });
  }

 private:
  double momentum_, dampening_, weight_decay_;
  bool nesterov_;
};

// torch.optim.Adam (L2 weight decay added to the gradient) and, with decoupled = true,
// torch.optim.AdamW (the parameter shrinks by lr * weight_decay before the update).
class AdamBase : public Optimizer {
 public:
  static std::vector<OptionDef> common_options() {
    return {
        option_float("beta1", 0.9, "decay of the running mean of gradients, in [0, 1)")
            .range(0.0, 1.0),
        option_float("beta2", 0.999, "decay of the running mean of squared gradients, in [0, 1)")
            .range(0.0, 1.0),
        option_float("eps", 1e-8, "added to the denominator's square root; > 0")
            .range(0.0, kUnbounded),
        option_bool("amsgrad", false, "divide by the largest second moment seen (AMSGrad)")};
  }

  AdamBase(const Options& o, bool decoupled)
      : beta1_(o.get_float("beta1")),
        beta2_(o.get_float("beta2")),
        eps_(o.get_float("eps")),
        weight_decay_(o.get_float("weight_decay")),
        amsgrad_(o.get_bool("amsgrad")),
        decoupled_(decoupled) {
    GRAFT_CHECK(beta1_ < 1.0, "beta1 must be in [0, 1), got "
                                  << beta1_ << ": at 1 the bias correction divides by zero");
    GRAFT_CHECK(beta2_ < 1.0, "beta2 must be in [0, 1), got "
                                  << beta2_ << ": at 1 the bias correction divides by zero");
    GRAFT_CHECK(eps_ > 0.0, "eps must be > 0, got "
                                << eps_
                                << ": a zero gradient would give 0 / 0; the usual value is 1e-8");
  }

  std::vector<std::string> state_names() const override {
    if (amsgrad_) return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
    return {"exp_avg", "exp_avg_sq"};
  }

  void step(const Context& ctx, const graft_param_update& u) override {
    const char* name = decoupled_ ? "adamw" : "adam";
    const int64_t n = check_update(name, u, amsgrad_ ? 3 : 2);
    // Scalars in double, as torch computes them in Python before the float32 kernel.
    const double t = static_cast<double>(u.step);
    const double decay = u.weight_decay ? weight_decay_ : 0.0;
    const AdamCoefficients c{
        static_cast<float>(beta1_),
        static_cast<float>(beta2_),
        static_cast<float>(eps_),
        static_cast<float>(1.0 - beta1_),
        static_cast<float>(1.0 - beta2_),
        static_cast<float>(u.lr / (1.0 - std::pow(beta1_, t))),
        static_cast<float>(std::sqrt(1.0 - std::pow(beta2_, t))),
        decoupled_ ? 0.0f : static_cast<float>(decay),
        decoupled_ ? static_cast<float>(1.0 - static_cast<double>(u.lr) * decay) : 1.0f,
        amsgrad_};
    float* param = f32(*u.param);                                   // (n)
    const float* grad = f32(*u.grad);                               // (n)
    float* exp_avg = f32(*u.state[0]);                              // (n)
    float* exp_avg_sq = f32(*u.state[1]);                           // (n)
    float* max_exp_avg_sq = amsgrad_ ? f32(*u.state[2]) : nullptr;  // (n) or none
    if (on_cuda(*u.param))
      return check_launch(
          name, cuda::adam(c, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n, ctx.stream));
    parallel_for(ctx, n, kGrain, [&](int64_t b, int64_t e) {
      with_adam_flags(c, [&](auto... flags) {
        adam_loop<decltype(flags)::value...>(c, param + b, grad + b, exp_avg + b, exp_avg_sq + b,
                                             max_exp_avg_sq ? max_exp_avg_sq + b : nullptr, e - b);
      });
    });
  }

 private:
  double beta1_, beta2_, eps_, weight_decay_;
  bool amsgrad_, decoupled_;
};

class Adam : public AdamBase {
 public:
  static std::vector<OptionDef> options() {
    std::vector<OptionDef> all = common_options();
    all.push_back(
        option_float("weight_decay", 0.0, "L2 penalty: weight_decay * param added to the gradient")
            .range(0.0, kUnbounded));
    return all;
  }
  Adam(const Options& o, Host) : AdamBase(o, false) {}
};

class AdamW : public AdamBase {
 public:
  static std::vector<OptionDef> options() {
    std::vector<OptionDef> all = common_options();
    all.push_back(option_float("weight_decay", 0.01,
                               "decoupled decay: param *= 1 - lr * weight_decay each step")
                      .range(0.0, kUnbounded));
    return all;
  }
  AdamW(const Options& o, Host) : AdamBase(o, true) {}
};

// torch.optim.RMSprop: a running mean of squared gradients scales each step; optionally
// centered (divided by the running variance instead) and with momentum.
class Rmsprop : public Optimizer {
 public:
  static std::vector<OptionDef> options() {
    return {
        option_float("alpha", 0.99, "decay of the running mean of squared gradients, in [0, 1]")
            .range(0.0, 1.0),
        option_float("eps", 1e-8, "added to the denominator's square root; > 0")
            .range(0.0, kUnbounded),
        option_float("weight_decay", 0.0, "L2 penalty: weight_decay * param added to the gradient")
            .range(0.0, kUnbounded),
        option_float("momentum", 0.0, "momentum factor in [0, 1); 0 keeps no momentum buffer")
            .range(0.0, 1.0),
        option_bool("centered", false,
                    "divide by the running variance of gradients (keeps a grad_avg state)")};
  }

  Rmsprop(const Options& o, Host)
      : alpha_(o.get_float("alpha")),
        eps_(o.get_float("eps")),
        weight_decay_(o.get_float("weight_decay")),
        momentum_(o.get_float("momentum")),
        centered_(o.get_bool("centered")) {
    GRAFT_CHECK(eps_ > 0.0, "eps must be > 0, got "
                                << eps_
                                << ": a zero gradient would give 0 / 0; the usual value is 1e-8");
    GRAFT_CHECK(momentum_ < 1.0, "momentum must be in [0, 1), got "
                                     << momentum_ << ": at 1 or more old steps never fade");
  }

  // torch's state order: square_avg, momentum_buffer (momentum > 0), grad_avg (centered).
  std::vector<std::string> state_names() const override {
    std::vector<std::string> names = {"square_avg"};
    if (momentum_ > 0.0) names.push_back("momentum_buffer");
    if (centered_) names.push_back("grad_avg");
    return names;
  }

  void step(const Context& ctx, const graft_param_update& u) override {
    const bool has_buffer = momentum_ > 0.0;
    const int64_t n = check_update("rmsprop", u, 1 + (has_buffer ? 1 : 0) + (centered_ ? 1 : 0));
    const RmspropCoefficients c{u.lr,
                                static_cast<float>(alpha_),
                                static_cast<float>(1.0 - alpha_),
                                static_cast<float>(eps_),
                                u.weight_decay ? static_cast<float>(weight_decay_) : 0.0f,
                                static_cast<float>(momentum_),
                                centered_};
    float* param = f32(*u.param);                                               // (n)
    const float* grad = f32(*u.grad);                                           // (n)
    float* square_avg = f32(*u.state[0]);                                       // (n)
    float* buffer = has_buffer ? f32(*u.state[1]) : nullptr;                    // (n) or none
    float* grad_avg = centered_ ? f32(*u.state[has_buffer ? 2 : 1]) : nullptr;  // (n) or none
    if (on_cuda(*u.param))
      return check_launch(
          "rmsprop", cuda::rmsprop(c, param, grad, square_avg, buffer, grad_avg, n, ctx.stream));
    parallel_for(ctx, n, kGrain, [&](int64_t b, int64_t e) {
      with_rmsprop_flags(c, [&](auto... flags) {
        rmsprop_loop<decltype(flags)::value...>(c, param + b, grad + b, square_avg + b,
                                                buffer ? buffer + b : nullptr,
                                                grad_avg ? grad_avg + b : nullptr, e - b);
      });
    });
  }

 private:
  double alpha_, eps_, weight_decay_, momentum_;
  bool centered_;
};

}  // namespace
}  // namespace graft::optimizers

// Each update reads an element's own parameter, gradient and state only, so ZeRO may hand any
// 1-D slice of a parameter to step() (GRAFT_ENTRY_ELEMENTWISE on an optimizer).
constexpr uint32_t kEntryFlags = graft::kCudaEntry | GRAFT_ENTRY_ELEMENTWISE;

GRAFT_PLUGIN_LIBRARY(
    "optimizers", "0.1.0",
    graft::optimizer<graft::optimizers::Sgd>(
        "sgd", "stochastic gradient descent with momentum (torch.optim.SGD)", kEntryFlags),
    graft::optimizer<graft::optimizers::Adam>("adam",
                                              "Adam with L2 weight decay (torch.optim.Adam)",
                                              kEntryFlags),
    graft::optimizer<graft::optimizers::AdamW>(
        "adamw", "Adam with decoupled weight decay (torch.optim.AdamW)", kEntryFlags),
    graft::optimizer<graft::optimizers::Rmsprop>("rmsprop",
                                                 "RMSprop, optionally centered and with momentum "
                                                 "(torch.optim.RMSprop)",
                                                 kEntryFlags))
