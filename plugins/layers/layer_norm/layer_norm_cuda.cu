// layer_norm.cpp's loops on the GPU: one block per row for the statistics and dx (a tree over
// the row's partial sums), a 32 x 8 block per 32 elements for the parameter gradients (8 fixed
// row strides, then a tree), on the same layer_norm_math.hpp functions.
#include "graft/cuda/reduce.cuh"
#include "layer_norm_cuda.hpp"
#include "layer_norm_math.hpp"

namespace graft::layer_norm::cuda {
namespace {

using graft::cuda::block_sum;
using graft::cuda::kThreads;

constexpr int kColumns = 32;    // elements per block of the parameter gradients
constexpr int kRowStrides = 8;  // threads summing each element's rows

// Two passes as on the CPU: the mean, then the sum of squared deviations from it.
__global__ void forward_kernel(const float* x, float* y, int64_t rows, int64_t length, float eps,
                               const float* weight, const float* bias, float* statistics) {
  __shared__ double shared[kThreads];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * length;
    float* yr = y + r * length;
    double total = 0.0;
    for (int64_t k = threadIdx.x; k < length; k += blockDim.x) total += xr[k];
    const double mean = block_sum(total, shared) / double(length);
    double squares = 0.0;
    for (int64_t k = threadIdx.x; k < length; k += blockDim.x)
      squares += (xr[k] - mean) * (xr[k] - mean);
    squares = block_sum(squares, shared);
    const float mean_f = float(mean);
    const float inv_std = inverse_std(float(squares / double(length)), eps);
    if (statistics && threadIdx.x == 0) {
      statistics[2 * r] = mean_f;
      statistics[2 * r + 1] = inv_std;
    }
    for (int64_t k = threadIdx.x; k < length; k += blockDim.x) {
      const float x_hat = normalized(xr[k], mean_f, inv_std);
      yr[k] = weight ? affine(x_hat, weight[k], bias[k]) : x_hat;
    }
  }
}

// dx of each row from mean(g) and mean(g * x_hat), g = dy * weight.
__global__ void input_gradient_kernel(const float* x, const float* dy, float* dx, int64_t rows,
                                      int64_t length, const float* weight,
                                      const float* statistics) {
  __shared__ double shared[kThreads];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * length;
    const float* dyr = dy + r * length;
    const float mean = statistics[2 * r], inv_std = statistics[2 * r + 1];
    double sum_g = 0.0, sum_g_x_hat = 0.0;
    for (int64_t k = threadIdx.x; k < length; k += blockDim.x) {
      const float g = weight ? dyr[k] * weight[k] : dyr[k];
      sum_g += g;
      sum_g_x_hat += double(g) * normalized(xr[k], mean, inv_std);
    }
    const float mean_g = float(block_sum(sum_g, shared) / double(length));
    const float mean_g_x_hat = float(block_sum(sum_g_x_hat, shared) / double(length));
    for (int64_t k = threadIdx.x; k < length; k += blockDim.x) {
      const float g = weight ? dyr[k] * weight[k] : dyr[k];
      dx[r * length + k] =
          input_gradient(g, normalized(xr[k], mean, inv_std), inv_std, mean_g, mean_g_x_hat);
    }
  }
}

// Element k = a column of (rows, length): thread (k, t) sums rows t, t + 8, ..., then the 8
// partial sums meet in a tree. The split depends only on the row count, never on the grid.
__global__ void parameter_gradient_kernel(const float* x, const float* dy, int64_t rows,
                                          int64_t length, const float* statistics,
                                          float* grad_weight, float* grad_bias) {
  __shared__ double weight_sums[kRowStrides][kColumns];
  __shared__ double bias_sums[kRowStrides][kColumns];
  const unsigned column = threadIdx.x, stride = threadIdx.y;
  for (int64_t first = int64_t(blockIdx.x) * kColumns; first < length;
       first += int64_t(gridDim.x) * kColumns) {
    const int64_t k = first + column;
    double sum_dy_x_hat = 0.0, sum_dy = 0.0;
    if (k < length) {
      for (int64_t r = stride; r < rows; r += kRowStrides) {
        const float d = dy[r * length + k];
        sum_dy_x_hat +=
            double(d) * normalized(x[r * length + k], statistics[2 * r], statistics[2 * r + 1]);
        sum_dy += d;
      }
    }
    weight_sums[stride][column] = sum_dy_x_hat;
    bias_sums[stride][column] = sum_dy;
    __syncthreads();
    for (unsigned half = kRowStrides / 2; half > 0; half /= 2) {
      if (stride < half) {
        weight_sums[stride][column] += weight_sums[stride + half][column];
        bias_sums[stride][column] += bias_sums[stride + half][column];
      }
      __syncthreads();
    }
    if (stride == 0 && k < length) {
      grad_weight[k] += float(weight_sums[0][column]);
      grad_bias[k] += float(bias_sums[0][column]);
    }
    __syncthreads();  // before the next columns overwrite the sums
  }
}

unsigned row_blocks(int64_t rows) { return unsigned(rows < 65535 ? rows : 65535); }

}  // namespace

const char* forward(const float* x, float* y, int64_t rows, int64_t length, float eps,
                    const float* weight, const float* bias, float* statistics, void* stream) {
  if (rows * length == 0) return nullptr;
  forward_kernel<<<row_blocks(rows), graft::cuda::reduce_threads(length), 0,
                   static_cast<cudaStream_t>(stream)>>>(x, y, rows, length, eps, weight, bias,
                                                        statistics);
  return graft::cuda::launch_error();
}

const char* backward(const float* x, const float* dy, float* dx, int64_t rows, int64_t length,
                     const float* weight, const float* statistics, float* grad_weight,
                     float* grad_bias, void* stream) {
  if (rows * length == 0) return nullptr;
  const auto cuda_stream = static_cast<cudaStream_t>(stream);
  if (grad_weight) {
    const int64_t blocks = (length + kColumns - 1) / kColumns;
    parameter_gradient_kernel<<<unsigned(blocks < 65535 ? blocks : 65535),
                                dim3(kColumns, kRowStrides), 0, cuda_stream>>>(
        x, dy, rows, length, statistics, grad_weight, grad_bias);
    if (const char* error = graft::cuda::launch_error()) return error;
  }
  if (!dx) return nullptr;
  input_gradient_kernel<<<row_blocks(rows), graft::cuda::reduce_threads(length), 0, cuda_stream>>>(
      x, dy, dx, rows, length, weight, statistics);
  return graft::cuda::launch_error();
}

}  // namespace graft::layer_norm::cuda
