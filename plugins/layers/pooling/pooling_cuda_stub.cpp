// max_pool2d's and avg_pool2d's kernels in a build without CUDA (graft_add_plugin's CUDA_STUBS):
// each returns graft::kNoCudaKernels, and none runs, since graft::require_device refuses CUDA
// tensors first.
#include "graft/cpp/device.hpp"
#include "pooling_cuda.hpp"

namespace graft::pool::cuda {

const char* max_forward(const Window2d&, const float*, int64_t, float*, float*, void*) {
  return kNoCudaKernels;
}
const char* max_backward(const Window2d&, const float*, const float*, int64_t, float*, void*) {
  return kNoCudaKernels;
}
const char* avg_forward(const Window2d&, const float*, int64_t, bool, float*, void*) {
  return kNoCudaKernels;
}
const char* avg_backward(const Window2d&, const float*, int64_t, bool, float*, void*) {
  return kNoCudaKernels;
}

}  // namespace graft::pool::cuda
