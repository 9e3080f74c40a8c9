// conv2d's kernels in a build without CUDA (graft_add_plugin's CUDA_STUBS): each returns
// graft::kNoCudaKernels, and none runs, since graft::require_device refuses CUDA tensors first.
#include "conv2d_cuda.hpp"
#include "graft/cpp/device.hpp"

namespace graft::conv::cuda {

const char* im2col(const Lowering&, const float*, int64_t, float*, void*) { return kNoCudaKernels; }
const char* col2im(const Lowering&, const float*, int64_t, float*, void*) { return kNoCudaKernels; }
const char* scatter_output(const Lowering&, elementwise::Kind, const float*, int64_t, const float*,
                           float*, float*, float, void*) {
  return kNoCudaKernels;
}
const char* output_gradient(const Lowering&, elementwise::Kind, const float*, const float*,
                            const float*, int64_t, float*, float, void*) {
  return kNoCudaKernels;
}
const char* bias_gradient(const Lowering&, const float*, int64_t, float*, void*) {
  return kNoCudaKernels;
}

}  // namespace graft::conv::cuda
