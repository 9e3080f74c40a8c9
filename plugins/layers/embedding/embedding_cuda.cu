// embedding.cpp's loops on the GPU. The weight gradient is a gather: a block holds a few table
// rows by up to 256 elements; its threads load the batch's ids a tile at a time into shared
// memory, and each thread adds dy of the positions naming its row in position order (the
// CPU's order, so the same bits), never racing another thread for an element.
#include "embedding_cuda.hpp"
#include "embedding_math.hpp"
#include "graft/cuda/reduce.cuh"

namespace graft::embedding::cuda {
namespace {

using graft::cuda::kThreads;

__global__ void forward_kernel(const float* ids, int64_t count, const float* table, int64_t rows,
                               int64_t dim, float* y) {
  for (int64_t e = graft::cuda::first_index(); e < count * dim; e += graft::cuda::grid_stride()) {
    const int64_t row = row_of(ids[e / dim], rows);
    y[e] = row >= 0 ? table[row * dim + e % dim] : 0.0f;
  }
}

// One block: each thread's first bad position (its positions ascend), then the smallest.
__global__ void first_bad_kernel(const float* ids, int64_t count, int64_t rows,
                                 int64_t* first_bad) {
  __shared__ int64_t shared[kThreads];
  int64_t first = count;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x)
    if (row_of(ids[i], rows) < 0) {
      first = i;
      break;
    }
  first = graft::cuda::block_min(first, shared);
  if (threadIdx.x == 0) *first_bad = first;
}

// Block (elements, table rows) = (blockDim.x, blockDim.y) with blockDim.x * blockDim.y =
// kThreads: the tile of kThreads ids serves blockDim.y rows at once.
__global__ void weight_gradient_kernel(const float* ids, int64_t count, const float* dy,
                                       int64_t rows, int64_t dim, float* grad) {
  __shared__ int32_t tile[kThreads];  // table rows of the tile's ids (-1: bad)
  const int thread = threadIdx.y * blockDim.x + threadIdx.x;
  for (int64_t first_row = int64_t(blockIdx.x) * blockDim.y; first_row < rows;
       first_row += int64_t(gridDim.x) * blockDim.y) {
    const int64_t row = first_row + threadIdx.y;
    for (int64_t first_e = int64_t(blockIdx.y) * blockDim.x; first_e < dim;
         first_e += int64_t(gridDim.y) * blockDim.x) {
      const int64_t e = first_e + threadIdx.x;
      const bool mine = row < rows && e < dim;
      float g = mine ? grad[row * dim + e] : 0.0f;
      for (int64_t base = 0; base < count; base += kThreads) {
        __syncthreads();  // the previous tile is read
        tile[thread] = base + thread < count ? int32_t(row_of(ids[base + thread], rows)) : -1;
        __syncthreads();
        const int64_t end = count - base < kThreads ? count - base : kThreads;
        if (mine)
          for (int64_t t = 0; t < end; ++t)
            if (tile[t] == row) g += dy[(base + t) * dim + e];
      }
      if (mine) grad[row * dim + e] = g;
    }
  }
}

}  // namespace

const char* forward(const float* ids, int64_t count, const float* table, int64_t rows, int64_t dim,
                    float* y, int64_t* first_bad, void* stream) {
  const auto cuda_stream = static_cast<cudaStream_t>(stream);
  if (count * dim > 0) {
    forward_kernel<<<graft::cuda::blocks_for(count * dim), kThreads, 0, cuda_stream>>>(
        ids, count, table, rows, dim, y);
    if (const char* error = graft::cuda::launch_error()) return error;
  }
  first_bad_kernel<<<1, kThreads, 0, cuda_stream>>>(ids, count, rows, first_bad);
  return graft::cuda::launch_error();
}

const char* weight_gradient(const float* ids, int64_t count, const float* dy, int64_t rows,
                            int64_t dim, float* grad, void* stream) {
  if (count * dim == 0) return nullptr;
  // Short vectors leave threads for more table rows per tile.
  const int elements = graft::cuda::reduce_threads(dim);
  const int table_rows = kThreads / elements;
  const int64_t row_blocks = (rows + table_rows - 1) / table_rows;
  const int64_t element_blocks = (dim + elements - 1) / elements;
  const dim3 grid(unsigned(row_blocks < 65535 ? row_blocks : 65535),
                  unsigned(element_blocks < 65535 ? element_blocks : 65535));
  weight_gradient_kernel<<<grid, dim3(unsigned(elements), unsigned(table_rows)), 0,
                           static_cast<cudaStream_t>(stream)>>>(ids, count, dy, rows, dim, grad);
  return graft::cuda::launch_error();
}

}  // namespace graft::embedding::cuda
