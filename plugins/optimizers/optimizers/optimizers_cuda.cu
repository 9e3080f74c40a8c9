// The loops of optimizers.cpp, one thread per element: each thread runs the same update function
// the CPU loop does, so the GPU's parameters follow the CPU's to float rounding.
#include "graft/cuda/launch.cuh"
#include "optimizers_cuda.hpp"

namespace graft::optimizers::cuda {
namespace {

template <bool kDecay, bool kMomentum, bool kNesterov, bool kFirst>
__global__ void sgd_kernel(SgdCoefficients c, float* param, const float* grad, float* buffer,
                           int64_t n) {
  for (int64_t i = graft::cuda::first_index(); i < n; i += graft::cuda::grid_stride()) {
    float b = 0.0f;
    if constexpr (kMomentum && !kFirst) b = buffer[i];
    sgd_update<kDecay, kMomentum, kNesterov, kFirst>(c, param[i], grad[i], b);
    if constexpr (kMomentum) buffer[i] = b;
  }
}

template <bool kDecoupled, bool kL2, bool kAmsgrad>
__global__ void adam_kernel(AdamCoefficients c, float* param, const float* grad, float* exp_avg,
                            float* exp_avg_sq, float* max_exp_avg_sq, int64_t n) {
  for (int64_t i = graft::cuda::first_index(); i < n; i += graft::cuda::grid_stride()) {
    float m = 0.0f;
    if constexpr (kAmsgrad) m = max_exp_avg_sq[i];
    adam_update<kDecoupled, kL2, kAmsgrad>(c, param[i], grad[i], exp_avg[i], exp_avg_sq[i], m);
    if constexpr (kAmsgrad) max_exp_avg_sq[i] = m;
  }
}

template <bool kDecay, bool kCentered, bool kMomentum>
__global__ void rmsprop_kernel(RmspropCoefficients c, float* param, const float* grad,
                               float* square_avg, float* buffer, float* grad_avg, int64_t n) {
  for (int64_t i = graft::cuda::first_index(); i < n; i += graft::cuda::grid_stride())
    rmsprop_element<kDecay, kCentered, kMomentum>(c, param, grad, square_avg, buffer, grad_avg, i);
}

}  // namespace

const char* sgd(const SgdCoefficients& c, float* param, const float* grad, float* buffer, int64_t n,
                void* stream) {
  if (n == 0) return nullptr;
  auto s = static_cast<cudaStream_t>(stream);
  with_sgd_flags(c, [&](auto... flags) {
    sgd_kernel<decltype(flags)::value...>
        <<<graft::cuda::blocks_for(n), graft::cuda::kThreads, 0, s>>>(c, param, grad, buffer, n);
  });
  return graft::cuda::launch_error();
}

const char* adam(const AdamCoefficients& c, float* param, const float* grad, float* exp_avg,
                 float* exp_avg_sq, float* max_exp_avg_sq, int64_t n, void* stream) {
  if (n == 0) return nullptr;
  auto s = static_cast<cudaStream_t>(stream);
  with_adam_flags(c, [&](auto... flags) {
    adam_kernel<decltype(flags)::value...>
        <<<graft::cuda::blocks_for(n), graft::cuda::kThreads, 0, s>>>(
            c, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, n);
  });
  return graft::cuda::launch_error();
}

const char* rmsprop(const RmspropCoefficients& c, float* param, const float* grad,
                    float* square_avg, float* buffer, float* grad_avg, int64_t n, void* stream) {
  if (n == 0) return nullptr;
  auto s = static_cast<cudaStream_t>(stream);
  with_rmsprop_flags(c, [&](auto... flags) {
    rmsprop_kernel<decltype(flags)::value...>
        <<<graft::cuda::blocks_for(n), graft::cuda::kThreads, 0, s>>>(c, param, grad, square_avg,
                                                                      buffer, grad_avg, n);
  });
  return graft::cuda::launch_error();
}

}  // namespace graft::optimizers::cuda
