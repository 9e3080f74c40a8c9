// Attention computed the plain way in double precision, for the tests to compare against:
// the whole T x T softmax per head, rotary embeddings from their definition.
#pragma once

#include <cmath>
#include <vector>

#include "test_support.hpp"

namespace graft::test::attention_reference {

// y (N, T, C) of an attention layer with biases: params qkv_weight (C, 3C), qkv_bias (3C),
// output_weight (C, C), output_bias (C).
inline std::vector<double> reference(const Tensor& x, const std::vector<Tensor>& params, int64_t n,
                                     int64_t t, int64_t c, int64_t heads, bool causal, bool rope,
                                     double base) {
  const int64_t d = c / heads, half = d / 2;
  const float *w = params[0].f(), *b = params[1].f(), *wo = params[2].f(), *bo = params[3].f();
  std::vector<double> y(size_t(n * t * c));
  for (int64_t s = 0; s < n; ++s) {
    std::vector<double> qkv(size_t(t * 3 * c));
    for (int64_t i = 0; i < t; ++i)
      for (int64_t j = 0; j < 3 * c; ++j) {
        double sum = b[j];
        for (int64_t e = 0; e < c; ++e)
          sum += double(x.f()[(s * t + i) * c + e]) * w[e * 3 * c + j];
        qkv[size_t(i * 3 * c + j)] = sum;
      }
    if (rope)
      for (int64_t i = 0; i < t; ++i)
        for (int64_t h = 0; h < 2 * heads; ++h)  // q's heads, then k's
          for (int64_t e = 0; e < half; ++e) {
            const double angle = double(i) * std::pow(base, -2.0 * double(e) / double(d));
            double& a = qkv[size_t(i * 3 * c + h * d + e)];
            double& bb = qkv[size_t(i * 3 * c + h * d + e + half)];
            const double x1 = a, x2 = bb;
            a = x1 * std::cos(angle) - x2 * std::sin(angle);
            bb = x2 * std::cos(angle) + x1 * std::sin(angle);
          }
    std::vector<double> heads_out(size_t(t * c), 0.0);
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < t; ++i) {
        std::vector<double> p(size_t(t), 0.0);
        double top = -1e300;
        const int64_t seen = causal ? i + 1 : t;
        for (int64_t j = 0; j < seen; ++j) {
          double s_ij = 0.0;
          for (int64_t e = 0; e < d; ++e)
            s_ij += qkv[size_t(i * 3 * c + h * d + e)] * qkv[size_t(j * 3 * c + c + h * d + e)];
          p[size_t(j)] = s_ij / std::sqrt(double(d));
          top = std::max(top, p[size_t(j)]);
        }
        double total = 0.0;
        for (int64_t j = 0; j < seen; ++j) total += p[size_t(j)] = std::exp(p[size_t(j)] - top);
        for (int64_t j = 0; j < seen; ++j)
          for (int64_t e = 0; e < d; ++e)
            heads_out[size_t(i * c + h * d + e)] +=
                p[size_t(j)] / total * qkv[size_t(j * 3 * c + 2 * c + h * d + e)];
      }
    for (int64_t i = 0; i < t; ++i)
      for (int64_t j = 0; j < c; ++j) {
        double sum = bo[j];
        for (int64_t e = 0; e < c; ++e) sum += heads_out[size_t(i * c + e)] * wo[e * c + j];
        y[size_t((s * t + i) * c + j)] = sum;
      }
  }
  return y;
}

}  // namespace graft::test::attention_reference
