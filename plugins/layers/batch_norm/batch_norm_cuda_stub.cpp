// batch_norm's kernels in a build without CUDA (graft_add_plugin's CUDA_STUBS): each returns
// graft::kNoCudaKernels, and none runs, since graft::require_device refuses CUDA tensors first.
#include "batch_norm_cuda.hpp"
#include "graft/cpp/device.hpp"

namespace graft::batch_norm::cuda {

const char* batch_statistics(const float*, Dims, float, Statistics, float*, float*, double, void*) {
  return kNoCudaKernels;
}
const char* running_statistics(const float*, const float*, int64_t, float, Statistics, void*) {
  return kNoCudaKernels;
}
const char* normalize(const float*, float*, Dims, const float*, const float*, Statistics, void*) {
  return kNoCudaKernels;
}
const char* backward(const float*, const float*, float*, Dims, bool, const float*, Statistics,
                     float*, float*, void*) {
  return kNoCudaKernels;
}

}  // namespace graft::batch_norm::cuda
