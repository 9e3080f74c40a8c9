// dropout's kernels in a build without CUDA (graft_add_plugin's CUDA_STUBS): each returns
// graft::kNoCudaKernels, and none runs, since graft::require_device refuses CUDA tensors first.
#include "dropout_cuda.hpp"
#include "graft/cpp/device.hpp"

namespace graft::dropout::cuda {

const char* forward(const float*, float*, float*, int64_t, int64_t, int64_t, int64_t, int64_t,
                    int64_t, int64_t, uint64_t, uint64_t, float, float, void*) {
  return kNoCudaKernels;
}
const char* backward(const float*, const float*, float*, int64_t, void*) { return kNoCudaKernels; }

}  // namespace graft::dropout::cuda
