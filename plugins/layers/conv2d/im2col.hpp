// The CPU loops of conv2d's im2col path: im2col copies each receptive field into a column of
// a matrix, col2im adds such columns back into an image, and the gemm's product meets y.
#pragma once

#include <cstdint>
#include <cstring>

#include "conv_geometry.hpp"
#include "graft/cpp/elementwise.hpp"

namespace graft::conv {

// Dimension letters: B samples, C channels, H x W input, k x k kernel, O output channels,
// OH x OW output, P = OH * OW. The matrix col is (C * k * k, B * P), row-major: row
// (c * k + i) * k + j holds tap (i, j) of channel c, column b * P + oh * OW + ow the output
// pixel it feeds; the gemm's product W col is (O, B * P). Rows of one group's channels are
// contiguous, so a group's slice of col (and of W and the product) is a plain matrix.
struct Lowering {
  int64_t channels = 1, height = 1, width = 1, kernel = 1, out_channels = 1;
  Axis rows, cols;  // the height and width axes

  GRAFT_HD int64_t out_height() const { return rows.outputs(); }
  GRAFT_HD int64_t out_width() const { return cols.outputs(); }
  GRAFT_HD int64_t pixels() const { return rows.outputs() * cols.outputs(); }
  GRAFT_HD int64_t patch() const { return channels * kernel * kernel; }

  // The loops below one element at a time, for the CUDA kernels (one thread per element).
  // col[row, column] of im2col(x), x (B, C, H, W): 0 where the tap falls in the padding.
  GRAFT_HD float column_entry(const float* x, int64_t row, int64_t column) const {
    const int64_t j = row % kernel, i = row / kernel % kernel, c = row / (kernel * kernel);
    const int64_t p = pixels(), b = column / p, pixel = column % p;
    const int64_t h = rows.source(pixel / out_width(), i);
    const int64_t w = cols.source(pixel % out_width(), j);
    if (h < 0 || h >= height || w < 0 || w >= width) return 0.0f;
    return x[((b * channels + c) * height + h) * width + w];
  }
  // Element `index` of col2im(dcol) in (B, C, H, W): the entries of dcol (C*k*k, B*P) that
  // im2col took from there, added in col2im's order (taps (i, j) in turn), so both give the
  // same bits.
  GRAFT_HD float input_gradient(const float* dcol, int64_t batch, int64_t index) const {
    const int64_t w = index % width, h = index / width % height;
    const int64_t c = index / (width * height) % channels;
    const int64_t b = index / (width * height * channels);
    const int64_t ow_count = out_width(), p = pixels(), ld = batch * p;
    float sum = 0.0f;
    for (int64_t i = 0; i < kernel; ++i) {
      const int64_t oh = rows.output_reading(h, i);
      if (oh < 0) continue;
      for (int64_t j = 0; j < kernel; ++j) {
        const int64_t ow = cols.output_reading(w, j);
        if (ow >= 0) sum += dcol[((c * kernel + i) * kernel + j) * ld + b * p + oh * ow_count + ow];
      }
    }
    return sum;
  }
  // Where element `index` of a (B, O, P) tensor (y, dy) sits in the gemm's (O, B*P) layout.
  GRAFT_HD int64_t product_index(int64_t batch, int64_t index) const {
    const int64_t p = pixels(), i = index % p, o = index / p % out_channels;
    const int64_t b = index / (p * out_channels);
    return o * batch * p + b * p + i;
  }

  // x (B, C, H, W) -> col (C*k*k, B*P).
  void im2col(const float* x, int64_t batch, float* col) const {
    const int64_t ow_count = out_width(), p = pixels(), ld = batch * p;
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t c = 0; c < channels; ++c) {
        const float* plane = x + (b * channels + c) * height * width;
        for (int64_t i = 0; i < kernel; ++i)
          for (int64_t j = 0; j < kernel; ++j) {
            float* row = col + ((c * kernel + i) * kernel + j) * ld + b * p;
            const int64_t oh_begin = rows.first_inside(i), oh_end = rows.end_inside(i);
            const int64_t ow_begin = cols.first_inside(j), ow_end = cols.end_inside(j);
            if (oh_begin >= oh_end || ow_begin >= ow_end) {
              std::memset(row, 0, sizeof(float) * p);
              continue;
            }
            std::memset(row, 0, sizeof(float) * oh_begin * ow_count);
            for (int64_t oh = oh_begin; oh < oh_end; ++oh) {
              float* out = row + oh * ow_count;
              const float* in = plane + rows.source(oh, i) * width;
              for (int64_t ow = 0; ow < ow_begin; ++ow) out[ow] = 0.0f;
              if (cols.stride == 1) {
                std::memcpy(out + ow_begin, in + cols.source(ow_begin, j),
                            sizeof(float) * (ow_end - ow_begin));
              } else {
                for (int64_t ow = ow_begin; ow < ow_end; ++ow) out[ow] = in[cols.source(ow, j)];
              }
              for (int64_t ow = ow_end; ow < ow_count; ++ow) out[ow] = 0.0f;
            }
            std::memset(row + oh_end * ow_count, 0, sizeof(float) * (p - oh_end * ow_count));
          }
      }
  }

  // dx (B, C, H, W) = the sum of every column of dcol (C*k*k, B*P) put back where im2col took
  // it from; taps in the padding are dropped. dx is overwritten.
  void col2im(const float* dcol, int64_t batch, float* dx) const {
    const int64_t ow_count = out_width(), p = pixels(), ld = batch * p;
    std::memset(dx, 0, sizeof(float) * batch * channels * height * width);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t c = 0; c < channels; ++c) {
        float* plane = dx + (b * channels + c) * height * width;
        for (int64_t i = 0; i < kernel; ++i)
          for (int64_t j = 0; j < kernel; ++j) {
            const float* row = dcol + ((c * kernel + i) * kernel + j) * ld + b * p;
            const int64_t oh_begin = rows.first_inside(i), oh_end = rows.end_inside(i);
            const int64_t ow_begin = cols.first_inside(j), ow_end = cols.end_inside(j);
            for (int64_t oh = oh_begin; oh < oh_end; ++oh) {
              const float* in = row + oh * ow_count;
              float* out = plane + rows.source(oh, i) * width;
              if (cols.stride == 1) {
                float* target = out + cols.source(ow_begin, j);
                const float* source = in + ow_begin;
                for (int64_t t = 0; t < ow_end - ow_begin; ++t) target[t] += source[t];
              } else {
                for (int64_t ow = ow_begin; ow < ow_end; ++ow) out[cols.source(ow, j)] += in[ow];
              }
            }
          }
      }
  }

  // y[b, o, :] = f(product[o, b * P : (b + 1) * P] + bias[o]): the product (O, B*P) back to
  // the (B, O, P) layout, bias and activation in the same pass; pre (B, O, P), when given,
  // keeps the pre-activation. product may alias y when B = 1 (the layouts then agree).
  template <elementwise::Kind F>
  void scatter_output(const float* product, int64_t batch, const float* bias, float* y, float* pre,
                      float slope) const {
    const int64_t p = pixels();
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t o = 0; o < out_channels; ++o) {
        const float* in = product + o * batch * p + b * p;
        const int64_t at = (b * out_channels + o) * p;
        const float shift = bias ? bias[o] : 0.0f;
        if (pre)
          for (int64_t i = 0; i < p; ++i) pre[at + i] = in[i] + shift;
        for (int64_t i = 0; i < p; ++i) y[at + i] = elementwise::apply(F, in[i] + shift, slope);
      }
  }

  // dz[o, b * P + i] = dy[b, o, i] * f'(.), the (O, B*P) layout the gemms read; f' from pre
  // when given (gelu), else from y. bias_grad[o] += the sum of row o.
  template <elementwise::Kind F>
  void gather_output_gradient(const float* dy, const float* y, const float* pre, int64_t batch,
                              float* dz, float* bias_grad, float slope) const {
    const int64_t p = pixels();
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t o = 0; o < out_channels; ++o) {
        const int64_t at = (b * out_channels + o) * p;
        const float* from = pre ? pre + at : y + at;  // relu: y > 0 exactly when x > 0
        float* out = dz + o * batch * p + b * p;
        float sum = 0.0f;
        for (int64_t i = 0; i < p; ++i) {
          out[i] = F == elementwise::Kind::none
                       ? dy[at + i]
                       : dy[at + i] * elementwise::derivative(F, from[i], y[at + i], slope);
          sum += out[i];
        }
        if (bias_grad) bias_grad[o] += sum;
      }
  }
};

}  // namespace graft::conv
