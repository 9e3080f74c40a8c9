// cross_entropy one thread per row, the element-wise losses one block per row (forward) or one
// thread per element (gradient), on loss_rows.hpp's math.
#include "graft/cuda/reduce.cuh"
#include "loss_rows.hpp"
#include "losses_cuda.hpp"

namespace graft::losses::cuda {
namespace {

using graft::cuda::kThreads;

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

// One block per row: each thread sums a fixed stride of the row, then a tree.
__global__ void element_rows_kernel(ElementLoss kind, const float* p, const float* t, int64_t n,
                                    int64_t e, double* row_loss, double* row_hits) {
  __shared__ double shared[kThreads];
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    double total = 0.0, hits = 0.0;
    for (int64_t k = threadIdx.x; k < e; k += blockDim.x) {
      total += element_loss(kind, p[i * e + k], t[i * e + k]);
      if (row_hits) hits += element_hit(p[i * e + k], t[i * e + k]) ? 1.0 : 0.0;
    }
    total = graft::cuda::block_sum(total, shared);
    if (row_hits) hits = graft::cuda::block_sum(hits, shared);
    if (threadIdx.x != 0) continue;
    row_loss[i] = total;
    if (row_hits) row_hits[i] = hits;
  }
}

__global__ void element_gradient_kernel(ElementLoss kind, const float* p, const float* t,
                                        int64_t count, float factor, float* d) {
  for (int64_t i = graft::cuda::first_index(); i < count; i += graft::cuda::grid_stride())
    d[i] = losses::element_gradient(kind, p[i], t[i], factor);
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

const char* element_rows(ElementLoss kind, const float* p, const float* t, int64_t n, int64_t e,
                         double* row_loss, double* row_hits, void* stream) {
  if (n == 0) return nullptr;
  element_rows_kernel<<<unsigned(n < 65535 ? n : 65535), graft::cuda::reduce_threads(e), 0,
                        static_cast<cudaStream_t>(stream)>>>(kind, p, t, n, e, row_loss, row_hits);
  return graft::cuda::launch_error();
}

const char* element_gradient(ElementLoss kind, const float* p, const float* t, int64_t count,
                             float factor, float* d, void* stream) {
  if (count == 0) return nullptr;
  element_gradient_kernel<<<graft::cuda::blocks_for(count), kThreads, 0,
                            static_cast<cudaStream_t>(stream)>>>(kind, p, t, count, factor, d);
  return graft::cuda::launch_error();
}

}  // namespace graft::losses::cuda
