// The CUDA kernels of conv2d's im2col path: one thread per element of what each writes, on the
// GRAFT_HD functions the CPU path shares (im2col.hpp, conv_geometry.hpp, elementwise.hpp).
#include "conv2d_cuda.hpp"
#include "graft/cuda/launch.cuh"

namespace graft::conv::cuda {
namespace {

using graft::cuda::first_index;
using graft::cuda::grid_stride;
using graft::cuda::kThreads;

__global__ void im2col_kernel(Lowering lowering, const float* x, int64_t batch, float* col) {
  const int64_t ld = batch * lowering.pixels(), count = lowering.patch() * ld;
  for (int64_t e = first_index(); e < count; e += grid_stride())
    col[e] = lowering.column_entry(x, e / ld, e % ld);
}

__global__ void col2im_kernel(Lowering lowering, const float* dcol, int64_t batch, float* dx) {
  const int64_t count = batch * lowering.channels * lowering.height * lowering.width;
  for (int64_t e = first_index(); e < count; e += grid_stride())
    dx[e] = lowering.input_gradient(dcol, batch, e);
}

__global__ void scatter_output_kernel(Lowering lowering, elementwise::Kind kind,
                                      const float* product, int64_t batch, const float* bias,
                                      float* y, float* pre, float slope) {
  const int64_t p = lowering.pixels(), count = batch * lowering.out_channels * p;
  for (int64_t e = first_index(); e < count; e += grid_stride()) {
    const float shift = bias ? bias[e / p % lowering.out_channels] : 0.0f;
    const float z = product[lowering.product_index(batch, e)] + shift;
    if (pre) pre[e] = z;
    y[e] = elementwise::apply(kind, z, slope);
  }
}

__global__ void output_gradient_kernel(Lowering lowering, elementwise::Kind kind, const float* dy,
                                       const float* y, const float* pre, int64_t batch, float* dz,
                                       float slope) {
  const int64_t count = batch * lowering.out_channels * lowering.pixels();
  for (int64_t e = first_index(); e < count; e += grid_stride()) {
    // As on the CPU: relu and leaky_relu read x > 0 from y > 0.
    const float x = pre ? pre[e] : y[e];
    dz[lowering.product_index(batch, e)] =
        kind == elementwise::Kind::none ? dy[e]
                                        : dy[e] * elementwise::derivative(kind, x, y[e], slope);
  }
}

// One block per output channel o. Each thread sums one sample's P values of row o in turn;
// thread 0 then adds the samples' sums to bias_grad[o] in sample order: the CPU's sequence of
// additions exactly, so the GPU gives its bits.
__global__ void bias_gradient_kernel(const float* dz, int64_t batch, int64_t pixels,
                                     float* bias_grad) {
  __shared__ float sums[kThreads];
  const int64_t o = blockIdx.x;
  const float* row = dz + o * batch * pixels;
  float total = threadIdx.x == 0 ? bias_grad[o] : 0.0f;
  for (int64_t first = 0; first < batch; first += blockDim.x) {
    const int64_t b = first + threadIdx.x;
    if (b < batch) {
      float sum = 0.0f;
      for (int64_t i = 0; i < pixels; ++i) sum += row[b * pixels + i];
      sums[threadIdx.x] = sum;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      const int64_t count = batch - first < blockDim.x ? batch - first : blockDim.x;
      for (int64_t t = 0; t < count; ++t) total += sums[t];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) bias_grad[o] = total;
}

cudaStream_t as_stream(void* stream) { return static_cast<cudaStream_t>(stream); }

}  // namespace

const char* im2col(const Lowering& lowering, const float* x, int64_t batch, float* col,
                   void* stream) {
  const int64_t count = lowering.patch() * batch * lowering.pixels();
  if (count == 0) return nullptr;
  im2col_kernel<<<graft::cuda::blocks_for(count), kThreads, 0, as_stream(stream)>>>(lowering, x,
                                                                                    batch, col);
  return graft::cuda::launch_error();
}

const char* col2im(const Lowering& lowering, const float* dcol, int64_t batch, float* dx,
                   void* stream) {
  const int64_t count = batch * lowering.channels * lowering.height * lowering.width;
  if (count == 0) return nullptr;
  col2im_kernel<<<graft::cuda::blocks_for(count), kThreads, 0, as_stream(stream)>>>(lowering, dcol,
                                                                                    batch, dx);
  return graft::cuda::launch_error();
}

const char* scatter_output(const Lowering& lowering, elementwise::Kind kind, const float* product,
                           int64_t batch, const float* bias, float* y, float* pre, float slope,
                           void* stream) {
  const int64_t count = batch * lowering.out_channels * lowering.pixels();
  if (count == 0) return nullptr;
  scatter_output_kernel<<<graft::cuda::blocks_for(count), kThreads, 0, as_stream(stream)>>>(
      lowering, kind, product, batch, bias, y, pre, slope);
  return graft::cuda::launch_error();
}

const char* output_gradient(const Lowering& lowering, elementwise::Kind kind, const float* dy,
                            const float* y, const float* pre, int64_t batch, float* dz, float slope,
                            void* stream) {
  const int64_t count = batch * lowering.out_channels * lowering.pixels();
  if (count == 0) return nullptr;
  output_gradient_kernel<<<graft::cuda::blocks_for(count), kThreads, 0, as_stream(stream)>>>(
      lowering, kind, dy, y, pre, batch, dz, slope);
  return graft::cuda::launch_error();
}

const char* bias_gradient(const Lowering& lowering, const float* dz, int64_t batch,
                          float* bias_grad, void* stream) {
  if (batch == 0 || lowering.out_channels == 0) return nullptr;
  // A thread a sample, in whole warps, at most kThreads (a small batch idles no more warps).
  const int64_t wanted = batch < kThreads ? batch : kThreads;
  const int threads = static_cast<int>((wanted + 31) / 32 * 32);
  bias_gradient_kernel<<<static_cast<unsigned>(lowering.out_channels), threads, 0,
                         as_stream(stream)>>>(dz, batch, lowering.pixels(), bias_grad);
  return graft::cuda::launch_error();
}

}  // namespace graft::conv::cuda
