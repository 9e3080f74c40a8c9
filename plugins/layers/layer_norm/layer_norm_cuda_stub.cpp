// layer_norm's kernels in a build without CUDA (graft_add_plugin's CUDA_STUBS): each returns
// graft::kNoCudaKernels, and none runs, since graft::require_device refuses CUDA tensors first.
#include "graft/cpp/device.hpp"
#include "layer_norm_cuda.hpp"

namespace graft::layer_norm::cuda {

const char* forward(const float*, float*, int64_t, int64_t, float, const float*, const float*,
                    float*, void*) {
  return kNoCudaKernels;
}
const char* backward(const float*, const float*, float*, int64_t, int64_t, const float*,
                     const float*, float*, float*, void*) {
  return kNoCudaKernels;
}

}  // namespace graft::layer_norm::cuda
