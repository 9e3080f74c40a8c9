// Times cublasSgemm on the products of one MLP training step, called as graft's CUDA device
// calls it for plugins/layers/linear (row-major operands swapped into column-major cuBLAS).
#include "sgemm_rate_cuda.hpp"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include "graft/random.h"

namespace graft::bench {

namespace {
using Clock = std::chrono::steady_clock;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("cuBLAS sgemm rate: ") + what + ": " +
                             cudaGetErrorString(e));
}

void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cuBLAS sgemm rate: ") + what + ": " +
                             cublasGetStatusString(s));
}

// A float matrix in GPU memory with small normal values. sgemm's speed does not depend on the
// values, so a short random pattern is tiled rather than drawing every element (at batch 4096
// that would be ~70M draws).
class DeviceMatrix {
 public:
  DeviceMatrix(int64_t rows, int64_t cols, uint64_t stream) {
    constexpr size_t kPattern = 4099;  // prime, so rows do not repeat it in step
    const size_t n = size_t(rows * cols);
    std::vector<float> pattern(kPattern), host(std::max<size_t>(n, 1));
    for (size_t i = 0; i < kPattern; ++i) pattern[i] = 0.05f * graft_random_normal(7, stream, i);
    for (size_t i = 0; i < n; ++i) host[i] = pattern[i % kPattern];
    check(cudaMalloc(&data_, host.size() * sizeof(float)), "cudaMalloc");
    check(cudaMemcpy(data_, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice),
          "cudaMemcpy");
  }
  ~DeviceMatrix() { cudaFree(data_); }
  DeviceMatrix(const DeviceMatrix&) = delete;
  DeviceMatrix& operator=(const DeviceMatrix&) = delete;
  float* data() const { return data_; }

 private:
  float* data_ = nullptr;
};

using Matrix = std::unique_ptr<DeviceMatrix>;

// The products of one step, their operands, and the events that time them.
class CublasSteps {
 public:
  CublasSteps(const std::vector<int64_t>& widths, int64_t batch, CublasMath math) {
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    check(cublasCreate(&blas_), "cublasCreate");
    check(cublasSetStream(blas_, stream_), "cublasSetStream");
    check(cublasSetMathMode(
              blas_, math == CublasMath::pedantic ? CUBLAS_PEDANTIC_MATH : CUBLAS_DEFAULT_MATH),
          "cublasSetMathMode");
    const size_t layers = widths.size() - 1;
    const int64_t B = batch;
    for (size_t l = 0; l <= layers; ++l) {
      activations_.push_back(std::make_unique<DeviceMatrix>(B, widths[l], 10 + l));  // (B, D_l)
      gradients_.push_back(std::make_unique<DeviceMatrix>(B, widths[l], 20 + l));    // (B, D_l)
    }
    for (size_t l = 0; l < layers; ++l) {
      weights_.push_back(std::make_unique<DeviceMatrix>(widths[l], widths[l + 1], 30 + l));
      weight_grads_.push_back(std::make_unique<DeviceMatrix>(widths[l], widths[l + 1], 40 + l));
    }
    // Listed as sgemm_rate.cpp lists them (per layer: forward, weight, input gradient); run in
    // a step's order (every forward, then backward from the last layer).
    std::vector<size_t> forward(layers), weight(layers), input(layers, SIZE_MAX);
    for (size_t l = 0; l < layers; ++l) {
      const int64_t D = widths[l], H = widths[l + 1];
      const float* x = activations_[l]->data();
      float* y = activations_[l + 1]->data();
      const float* W = weights_[l]->data();
      float* dW = weight_grads_[l]->data();
      const float* dz = gradients_[l + 1]->data();
      float* dx = gradients_[l]->data();
      const std::string layer = "layer " + std::to_string(l);
      forward[l] = add({layer + " forward (B,D)x(D,H)", B, H, D},
                       [=, this] { return sgemm(false, false, B, H, D, x, D, W, H, 0.0f, y); });
      weight[l] = add({layer + " weight gradient (D,B)x(B,H)", D, H, B},
                      [=, this] { return sgemm(true, false, D, H, B, x, D, dz, H, 1.0f, dW); });
      if (l > 0)
        input[l] = add({layer + " input gradient (B,H)x(H,D)", B, D, H},
                       [=, this] { return sgemm(false, true, B, D, H, dz, H, W, H, 0.0f, dx); });
    }
    for (size_t l = 0; l < layers; ++l) order_.push_back(forward[l]);
    for (size_t l = layers; l-- > 0;) {
      order_.push_back(weight[l]);
      if (input[l] != SIZE_MAX) order_.push_back(input[l]);
    }
    events_.assign(order_.size() + 1, nullptr);
    for (cudaEvent_t& e : events_) check(cudaEventCreate(&e), "cudaEventCreate");
    spent_.assign(products_.size(), 0.0);
  }

  ~CublasSteps() {
    if (stream_) cudaStreamSynchronize(stream_);
    for (cudaEvent_t e : events_)
      if (e) cudaEventDestroy(e);
    if (blas_) cublasDestroy(blas_);
    if (stream_) cudaStreamDestroy(stream_);
  }
  CublasSteps(const CublasSteps&) = delete;
  CublasSteps& operator=(const CublasSteps&) = delete;

  // One step's products back to back on the stream, an event between each; `timed` adds each
  // product's time. The host waits for the step only at its end.
  void run_step(bool timed) {
    check(cudaEventRecord(events_[0], stream_), "cudaEventRecord");
    for (size_t i = 0; i < order_.size(); ++i) {
      check(calls_[order_[i]](), "cublasSgemm");
      check(cudaEventRecord(events_[i + 1], stream_), "cudaEventRecord");
    }
    check(cudaEventSynchronize(events_.back()), "cudaEventSynchronize");
    if (!timed) return;
    for (size_t i = 0; i < order_.size(); ++i) {
      float ms = 0.0f;
      check(cudaEventElapsedTime(&ms, events_[i], events_[i + 1]), "cudaEventElapsedTime");
      spent_[order_[i]] += double(ms) * 1e-3;
    }
    ++steps_;
  }

  SgemmRate rate() const { return rate_of(products_, spent_, steps_); }

 private:
  size_t add(ProductTiming product, std::function<cublasStatus_t()> call) {
    products_.push_back(std::move(product));
    calls_.push_back(std::move(call));
    return products_.size() - 1;
  }

  // Row-major C (m, n) = op(A) op(B) + beta C, as the CUDA device's gemm computes it: the
  // column-major C^T = op(B)^T op(A)^T, so the operands trade places.
  cublasStatus_t sgemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k,
                       const float* a, int64_t a_cols, const float* b, int64_t b_cols, float beta,
                       float* c) const {
    const float alpha = 1.0f;
    return cublasSgemm(blas_, transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                       transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N, int(n), int(m), int(k), &alpha, b,
                       int(b_cols), a, int(a_cols), &beta, c, int(n));
  }

  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  std::vector<Matrix> activations_, gradients_, weights_, weight_grads_;
  std::vector<ProductTiming> products_;
  std::vector<std::function<cublasStatus_t()>> calls_;  // one per product
  std::vector<size_t> order_;                           // products in a step's order
  std::vector<cudaEvent_t> events_;                     // around each call of a step
  std::vector<double> spent_;                           // seconds per product, summed
  int64_t steps_ = 0;
};
}  // namespace

const char* cublas_math_name(CublasMath math) {
  return math == CublasMath::pedantic ? "CUBLAS_PEDANTIC_MATH" : "CUBLAS_DEFAULT_MATH";
}

SgemmRate measure_cublas_sgemm(const std::vector<int64_t>& widths, int64_t batch, double seconds,
                               CublasMath math, int device) {
  check(cudaSetDevice(device), "cudaSetDevice");
  CublasSteps steps(widths, batch, math);
  steps.run_step(false);
  steps.run_step(false);
  const auto start = Clock::now();
  int64_t n = 0;
  do {
    steps.run_step(true);
    ++n;
  } while (n < 3 || std::chrono::duration<double>(Clock::now() - start).count() < seconds);
  return steps.rate();
}

}  // namespace graft::bench
