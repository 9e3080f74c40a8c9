// Helpers for a plugin's CUDA kernels (include from .cu files only): the grid of a grid-stride
// loop and the text of a failed launch, which the plugin's .cpp turns into a graft_status.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace graft::cuda {

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n items: enough to cover them, at most 65535.
inline int blocks_for(int64_t n, int threads = kThreads) {
  const int64_t b = (n + threads - 1) / threads;
  return int(b < 1 ? 1 : b > 65535 ? 65535 : b);
}

// NULL when the last launch on this thread went well, else CUDA's description of the error.
inline const char* launch_error() {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

// The first index this thread handles and the stride of a grid-stride loop:
//   for (int64_t i = first_index(); i < n; i += grid_stride()) ...
__device__ inline int64_t first_index() { return blockIdx.x * int64_t(blockDim.x) + threadIdx.x; }
__device__ inline int64_t grid_stride() { return int64_t(gridDim.x) * blockDim.x; }

}  // namespace graft::cuda
