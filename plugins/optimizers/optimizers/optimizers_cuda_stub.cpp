// The optimizers' kernels in a build without CUDA (graft_add_plugin's CUDA_STUBS): each returns
// graft::kNoCudaKernels, and none runs, since graft::require_device refuses CUDA tensors first.
#include "graft/cpp/device.hpp"
#include "optimizers_cuda.hpp"

namespace graft::optimizers::cuda {

const char* sgd(const SgdCoefficients&, float*, const float*, float*, int64_t, void*) {
  return kNoCudaKernels;
}
const char* adam(const AdamCoefficients&, float*, const float*, float*, float*, float*, int64_t,
                 void*) {
  return kNoCudaKernels;
}
const char* rmsprop(const RmspropCoefficients&, float*, const float*, float*, float*, float*,
                    int64_t, void*) {
  return kNoCudaKernels;
}

}  // namespace graft::optimizers::cuda
