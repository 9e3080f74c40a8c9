// embedding's kernels in a build without CUDA (graft_add_plugin's CUDA_STUBS): each returns
// graft::kNoCudaKernels, and none runs, since graft::require_device refuses CUDA tensors first.
#include "embedding_cuda.hpp"
#include "graft/cpp/device.hpp"

namespace graft::embedding::cuda {

const char* forward(const float*, int64_t, const float*, int64_t, int64_t, float*, int64_t*,
                    void*) {
  return kNoCudaKernels;
}
const char* weight_gradient(const float*, int64_t, const float*, int64_t, int64_t, float*, void*) {
  return kNoCudaKernels;
}

}  // namespace graft::embedding::cuda
