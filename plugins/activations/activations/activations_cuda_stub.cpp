// The activations' kernels in a build without CUDA (graft_add_plugin's CUDA_STUBS): each returns
// graft::kNoCudaKernels, and none runs, since graft::require_device refuses CUDA tensors first.
#include "activations_cuda.hpp"
#include "graft/cpp/device.hpp"

namespace graft::activations_cuda {

const char* forward(elementwise::Kind, const float*, float*, int64_t, float, void*) {
  return kNoCudaKernels;
}
const char* backward(elementwise::Kind, const float*, const float*, const float*, float*, int64_t,
                     float, void*) {
  return kNoCudaKernels;
}
const char* softmax_forward(const float*, float*, int64_t, int64_t, void*) {
  return kNoCudaKernels;
}
const char* softmax_backward(const float*, const float*, float*, int64_t, int64_t, void*) {
  return kNoCudaKernels;
}

}  // namespace graft::activations_cuda
