// Block-wide reductions for a plugin's CUDA kernels (include from .cu files only): a tree over
// shared memory in a fixed order, so a sum gives the same bits every run ([run] deterministic).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "graft/cuda/launch.cuh"

namespace graft::cuda {

// Threads for a block that reduces n values: the smallest power of two >= n within [32,
// kThreads], so short rows do not leave most of a block idle.
inline int reduce_threads(int64_t n) {
  int threads = 32;
  while (threads < kThreads && threads < n) threads *= 2;
  return threads;
}

// Combines one value per thread of the block with `op`, pairing threads t and t + half for
// half = blockDim.x / 2, ..., 1; every thread gets the result. blockDim.x must be a power of
// two and at most the size of `shared`, and every thread of the block must call it.
template <class T, class Op>
__device__ T block_reduce(T value, T* shared, Op op) {
  shared[threadIdx.x] = value;
  __syncthreads();
  for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half)
      shared[threadIdx.x] = op(shared[threadIdx.x], shared[threadIdx.x + half]);
    __syncthreads();
  }
  const T result = shared[0];
  __syncthreads();  // so a following call may overwrite shared
  return result;
}

struct Plus {
  template <class T>
  __device__ T operator()(T a, T b) const {
    return a + b;
  }
};
struct Smaller {
  template <class T>
  __device__ T operator()(T a, T b) const {
    return b < a ? b : a;
  }
};

template <class T>
__device__ T block_sum(T value, T* shared) {
  return block_reduce(value, shared, Plus{});
}
template <class T>
__device__ T block_min(T value, T* shared) {
  return block_reduce(value, shared, Smaller{});
}

}  // namespace graft::cuda
