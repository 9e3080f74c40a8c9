// attention's kernels in a build without CUDA (graft_add_plugin's CUDA_STUBS): each returns
// graft::kNoCudaKernels, and none runs, since graft::require_device refuses CUDA tensors first.
#include "attention_cuda.hpp"
#include "graft/cpp/device.hpp"

namespace graft::attention::cuda {

const char* bias_and_rope(const Geometry&, float*, int64_t, const float*, bool, double, int64_t,
                          float, void*) {
  return kNoCudaKernels;
}
const char* add_bias(float*, const float*, int64_t, int64_t, void*) { return kNoCudaKernels; }
const char* forward(const Geometry&, int64_t, const float*, float*, float*, const DropoutDraw&,
                    void*) {
  return kNoCudaKernels;
}
const char* backward(const Geometry&, int64_t, const float*, const float*, const float*,
                     const float*, float*, const DropoutDraw&, void*) {
  return kNoCudaKernels;
}
const char* forward_cached(const Geometry&, int64_t, const float*, float*, int64_t, int64_t, float*,
                           void*) {
  return kNoCudaKernels;
}

}  // namespace graft::attention::cuda
