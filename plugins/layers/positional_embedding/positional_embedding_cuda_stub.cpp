// positional_embedding's kernels in a build without CUDA (graft_add_plugin's CUDA_STUBS): each
// returns graft::kNoCudaKernels, and none runs, since graft::require_device refuses CUDA
// tensors first.
#include "graft/cpp/device.hpp"
#include "positional_embedding_cuda.hpp"

namespace graft::positional::cuda {

const char* forward(const float*, const float*, int64_t, int64_t, int64_t, int64_t, float*, void*) {
  return kNoCudaKernels;
}
const char* weight_gradient(const float*, int64_t, int64_t, int64_t, int64_t, float*, void*) {
  return kNoCudaKernels;
}

}  // namespace graft::positional::cuda
