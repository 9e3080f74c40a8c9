#include <cuda_runtime.h>

#include <algorithm>

#include "loss_rows.hpp"
#include "losses_cuda.hpp"

namespace graft::losses::cuda {
namespace {

constexpr int kThreads = 128;
int blocks(int64_t n) { return int(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535)); }
const char* launched() {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

__global__ void rows_kernel(const float* z, const int32_t* labels, int64_t n, int64_t c,
                            float smoothing, float* row_loss, int32_t* row_correct,
                            int32_t* row_bad) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int32_t label = labels[i];
    const bool bad = label < 0 || label >= c;
    row_bad[i] = bad ? 1 : 0;
    row_loss[i] = bad ? 0.0f : cross_entropy_row(z + i * c, c, label, smoothing);
    row_correct[i] = !bad && argmax(z + i * c, c) == label ? 1 : 0;
  }
}

__global__ void gradient_kernel(const float* z, const int32_t* labels, int64_t n, int64_t c,
                                float smoothing, float scale, float* dz) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
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
  rows_kernel<<<blocks(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      z, labels, n, c, smoothing, row_loss, row_correct, row_bad);
  return launched();
}

const char* cross_entropy_gradient(const float* z, const int32_t* labels, int64_t n, int64_t c,
                                   float smoothing, float scale, float* dz, void* stream) {
  if (n == 0) return nullptr;
  gradient_kernel<<<blocks(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      z, labels, n, c, smoothing, scale, dz);
  return launched();
}

}  // namespace graft::losses::cuda
