// The losses' kernels in a build without CUDA (graft_add_plugin's CUDA_STUBS): each returns
// graft::kNoCudaKernels, and none runs, since graft::require_device refuses CUDA tensors first.
#include "graft/cpp/device.hpp"
#include "losses_cuda.hpp"

namespace graft::losses::cuda {

const char* cross_entropy_rows(const float*, const int32_t*, int64_t, int64_t, float, float*,
                               int32_t*, int32_t*, void*) {
  return kNoCudaKernels;
}
const char* cross_entropy_gradient(const float*, const int32_t*, int64_t, int64_t, float, float,
                                   float*, void*) {
  return kNoCudaKernels;
}
const char* element_rows(ElementLoss, const float*, const float*, int64_t, int64_t, double*,
                         double*, void*) {
  return kNoCudaKernels;
}
const char* element_gradient(ElementLoss, const float*, const float*, int64_t, float, float*,
                             void*) {
  return kNoCudaKernels;
}

}  // namespace graft::losses::cuda
