// Times cblas_sgemm on the products of one MLP training step, with the same transposes,
// leading dimensions and beta as plugins/layers/linear (through the host's gemm primitive).
#include "sgemm_rate.hpp"

#include <cblas.h>

#include <algorithm>
#include <chrono>

#include "graft/random.h"

namespace graft::bench {

namespace {
using Clock = std::chrono::steady_clock;

std::vector<float> random_matrix(int64_t rows, int64_t cols, uint64_t stream) {
  std::vector<float> m(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < m.size(); ++i) m[i] = 0.05f * graft_random_normal(7, stream, i);
  return m;
}

// Row-major C (m, n) = alpha op(A) op(B) + beta C, as cpu_primitives.cpp calls it.
void sgemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, const float* a,
           int64_t a_cols, const float* b, int64_t b_cols, float beta, float* c) {
  cblas_sgemm(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans,
              transpose_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(m),
              static_cast<blasint>(n), static_cast<blasint>(k), 1.0f, a,
              static_cast<blasint>(a_cols), b, static_cast<blasint>(b_cols), beta, c,
              static_cast<blasint>(n));
}
}  // namespace

SgemmSteps::SgemmSteps(const std::vector<int64_t>& widths, int64_t batch)
    : widths_(widths), batch_(batch) {
  const size_t layers = widths.size() - 1;
  const int64_t B = batch;
  for (size_t l = 0; l <= layers; ++l) {
    activations_.push_back(random_matrix(B, widths[l], 10 + l));
    gradients_.push_back(random_matrix(B, widths[l], 20 + l));
  }
  for (size_t l = 0; l < layers; ++l) {
    weights_.push_back(random_matrix(widths[l], widths[l + 1], 30 + l));  // (D, H)
    weight_grads_.push_back(random_matrix(widths[l], widths[l + 1], 40 + l));
  }
  forward_at_.resize(layers);
  weight_at_.resize(layers);
  input_at_.assign(layers, SIZE_MAX);
  for (size_t l = 0; l < layers; ++l) {
    const int64_t D = widths[l], H = widths[l + 1];
    const std::string layer = "layer " + std::to_string(l);
    forward_at_[l] = products_.size();
    products_.push_back({layer + " forward (B,D)x(D,H)", B, H, D});
    weight_at_[l] = products_.size();
    products_.push_back({layer + " weight gradient (D,B)x(B,H)", D, H, B});
    if (l > 0) {
      input_at_[l] = products_.size();
      products_.push_back({layer + " input gradient (B,H)x(H,D)", B, D, H});
    }
  }
  spent_.assign(products_.size(), 0.0);
}

void SgemmSteps::run_step() {
  const size_t layers = widths_.size() - 1;
  const int64_t B = batch_;
  auto timed = [&](size_t product, auto&& call) {
    const auto start = Clock::now();
    call();
    spent_[product] += std::chrono::duration<double>(Clock::now() - start).count();
  };
  for (size_t l = 0; l < layers; ++l) {
    const int64_t D = widths_[l], H = widths_[l + 1];
    timed(forward_at_[l], [&] {
      sgemm(false, false, B, H, D, activations_[l].data(), D, weights_[l].data(), H, 0.0f,
            activations_[l + 1].data());
    });
  }
  for (size_t l = layers; l-- > 0;) {
    const int64_t D = widths_[l], H = widths_[l + 1];
    timed(weight_at_[l], [&] {
      sgemm(true, false, D, H, B, activations_[l].data(), D, gradients_[l + 1].data(), H, 1.0f,
            weight_grads_[l].data());
    });
    if (l > 0)
      timed(input_at_[l], [&] {
        sgemm(false, true, B, D, H, gradients_[l + 1].data(), H, weights_[l].data(), H, 0.0f,
              gradients_[l].data());
      });
  }
  ++steps_;
}

void SgemmSteps::reset() {
  std::fill(spent_.begin(), spent_.end(), 0.0);
  steps_ = 0;
}

SgemmRate SgemmSteps::rate() const { return rate_of(products_, spent_, steps_); }

SgemmRate measure_sgemm(const std::vector<int64_t>& widths, int64_t batch, double seconds) {
  SgemmSteps steps(widths, batch);
  steps.run_step();
  steps.reset();
  const auto start = Clock::now();
  int64_t n = 0;
  do {
    steps.run_step();
    ++n;
  } while (n < 3 || std::chrono::duration<double>(Clock::now() - start).count() < seconds);
  return steps.rate();
}

}  // namespace graft::bench
