#include "graft/cuda/launch.cuh"
#include "loss_rows.hpp"
#include "losses_cuda.hpp"

namespace graft::losses::cuda {
namespace {

__global__ void rows_kernel(const float* z, const int32_t* labels, int64_t n, int64_t c,
                            float smoothing, float* row_loss, int32_t* row_correct,
                            int32_t* row_bad) {
  for (int64_t i = graft::cuda::first_index(); i < n; i += graft::cuda::grid_stride()) {
    const int32_t label = labels[i];
    const bool bad = label < 0 || label >= c;
    row_bad[i] = bad ? 1 : 0;
    row_loss[i] = bad ? 0.0f : cross_entropy_row(z + i * c, c, label, smoothing);
    row_correct[i] = !bad && argmax(z + i * c, c) == label ? 1 : 0;
  }
}

__global__ void gradient_kernel(const float* z, const int32_t* labels, int64_t n, int64_t c,
                                float smoothing, float scale, float* dz) {
  for (int64_t i = graft::cuda::first_index(); i < n; i += graft::cuda::grid_stride()) {
    const int32_t label = labels[i];
    if (label < 0 || label >= c) {
      for (int64_t j = 0; j < c; ++j) dz[i * c + j] = 0.0f;
      continue;
    }
    cross_entropy_row_gradient(z + i * c, c, label, smoothing, scale, dz + i * c);
  }
}

}  // namespace

const char* cross_entropy_rows(const float* z, const int32_t* labels, int64_t n, int64_t c,
                               float smoothing, float* row_loss, int32_t* row_correct,
                               int32_t* row_bad, void* stream) {
  if (n == 0) return nullptr;
  rows_kernel<<<graft::cuda::blocks_for(n), graft::cuda::kThreads, 0,
                static_cast<cudaStream_t>(stream)>>>(z, labels, n, c, smoothing, row_loss,
                                                     row_correct, row_bad);
  return graft::cuda::launch_error();
}

const char* cross_entropy_gradient(const float* z, const int32_t* labels, int64_t n, int64_t c,
                                   float smoothing, float scale, float* dz, void* stream) {
  if (n == 0) return nullptr;
  gradient_kernel<<<graft::cuda::blocks_for(n), graft::cuda::kThreads, 0,
                    static_cast<cudaStream_t>(stream)>>>(z, labels, n, c, smoothing, scale, dz);
  return graft::cuda::launch_error();
}

}  // namespace graft::losses::cuda
