// linear's kernels in a build without CUDA (graft_add_plugin's CUDA_STUBS): each returns
// graft::kNoCudaKernels, and none runs, since graft::require_device refuses CUDA tensors first.
#include "graft/cpp/device.hpp"
#include "linear_cuda.hpp"

namespace graft::linear_cuda {

const char* bias_activation(elementwise::Kind, float*, const float*, float*, int64_t, int64_t,
                            float, void*) {
  return kNoCudaKernels;
}
const char* activation_gradient(elementwise::Kind, const float*, const float*, float*, bool,
                                int64_t, float, void*) {
  return kNoCudaKernels;
}

}  // namespace graft::linear_cuda
