// The CPU loops of conv2d's Winograd path: 4x4 input tiles to and from the transformed
// matrices the gemms multiply, 2x2 output tiles with the fused bias and activation.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "graft/cpp/elementwise.hpp"
#include "winograd.hpp"

namespace graft::conv {

// Dimension letters: B samples, C input channels, O output channels, H x W input, p padding,
// OH x OW = (H + 2p - 2) x (W + 2p - 2) output, TH x TW = ceil(OH / 2) x ceil(OW / 2) tiles,
// T = TH * TW, and 16 transform positions xi. The transformed input V is (16, C, B*T), the
// products M and their gradients (16, O, B*T), row-major, column b * T + th * TW + tw: so
// position xi of a group is a plain matrix for the gemm. Output tile (th, tw) covers outputs
// (2th..2th+1, 2tw..2tw+1) and reads the input from (2th - p, 2tw - p), 4x4, zeros outside.
//
// The loops run across tiles with every access contiguous, so the compiler turns them into
// SIMD code: the zero-padded input plane is kept as its even and odd columns (element j of
// tile tw's row is column tw + j / 2 of the even or odd half), and a plane's tiles meet its
// pixels through a staging array per tile element, (16 or 4, T), indexed by tile.
class WinogradTiles {
 public:
  WinogradTiles() = default;
  WinogradTiles(int64_t channels, int64_t out_channels, int64_t height, int64_t width,
                int64_t padding)
      : channels_(channels),
        out_channels_(out_channels),
        height_(height),
        width_(width),
        padding_(padding),
        tile_rows_((height + 2 * padding - 1) / 2),
        tile_cols_((width + 2 * padding - 1) / 2),
        half_(tile_cols_ + 1),
        scratch_(static_cast<size_t>(2 * (2 * tile_rows_ + 2) * half_ + 16 * tiles() + half_)) {}

  int64_t tiles() const { return tile_rows_ * tile_cols_; }

  // V (16, C, B*T) from x (B, C, H, W).
  void gather_input(const float* x, int64_t batch, float* v) {
    const int64_t ld = batch * tiles(), position_stride = channels_ * ld;
    std::memset(even(), 0, sizeof(float) * 2 * padded_rows() * half_);  // the border stays 0
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t c = 0; c < channels_; ++c) {
        split_plane(x + (b * channels_ + c) * height_ * width_);
        for (int64_t th = 0; th < tile_rows_; ++th) {
          const float* e = even() + 2 * th * half_;
          const float* o = odd() + 2 * th * half_;
          float* out = v + c * ld + b * tiles() + th * tile_cols_;
#pragma GCC ivdep
          for (int64_t tw = 0; tw < tile_cols_; ++tw) {
            // Row i of the tile: columns 0, 2 from the even half, 1, 3 from the odd half.
            // Written out, not as a select between the two halves' pointers: GCC 12 with
            // -fsanitize=undefined miscompiles that select here (the column index register is
            // reused for a pointer; SEGV or a heap-buffer-overflow report in the sanitizer
            // builds), while the arithmetic is the same.
            float d[16], transformed[16];
            for (int i = 0; i < 4; ++i) {
              const float* even_row = e + i * half_ + tw;
              const float* odd_row = o + i * half_ + tw;
              d[4 * i] = even_row[0];
              d[4 * i + 1] = odd_row[0];
              d[4 * i + 2] = even_row[1];
              d[4 * i + 3] = odd_row[1];
            }
            winograd::input_transform(d, transformed);
            for (int xi = 0; xi < 16; ++xi) out[xi * position_stride + tw] = transformed[xi];
          }
        }
      }
  }

  // y (B, O, OH, OW) = f(A^T m A + bias) from M (16, O, B*T); pre, when given, keeps the
  // pre-activation (B, O, OH, OW).
  template <elementwise::Kind F>
  void scatter_output(const float* m, int64_t batch, const float* bias, float* y, float* pre,
                      float slope) {
    const int64_t t_count = tiles(), ld = batch * t_count, position_stride = out_channels_ * ld;
    const int64_t oh_count = out_height(), ow_count = out_width();
    float* stage = staging();  // (4, T): output (i, j) of every tile
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t o = 0; o < out_channels_; ++o) {
        const float* in = m + o * ld + b * t_count;
        const float shift = bias ? bias[o] : 0.0f;
#pragma GCC ivdep
        for (int64_t t = 0; t < t_count; ++t) {
          float products[16], out[4];
          for (int xi = 0; xi < 16; ++xi) products[xi] = in[xi * position_stride + t];
          winograd::output_transform(products, out);
          for (int e = 0; e < 4; ++e) stage[e * t_count + t] = out[e] + shift;
        }
        const int64_t plane = (b * out_channels_ + o) * oh_count * ow_count;
        for (int64_t oh = 0; oh < oh_count; ++oh) {
          const int64_t at = plane + oh * ow_count;
          const float* left = stage + 2 * (oh % 2) * t_count + (oh / 2) * tile_cols_;
          const float* right = left + t_count;
          for (int64_t q = 0; q < ow_count / 2; ++q) {
            if (pre) {
              pre[at + 2 * q] = left[q];
              pre[at + 2 * q + 1] = right[q];
            }
            y[at + 2 * q] = elementwise::apply(F, left[q], slope);
            y[at + 2 * q + 1] = elementwise::apply(F, right[q], slope);
          }
          if (ow_count % 2) {  // the last tile's right column lies past the edge
            const int64_t q = ow_count / 2;
            if (pre) pre[at + 2 * q] = left[q];
            y[at + 2 * q] = elementwise::apply(F, left[q], slope);
          }
        }
      }
  }

  // dM (16, O, B*T) = A dz A^T with dz = dy * f'(.) (B, O, OH, OW), zero past the output's
  // edge; f' from pre when given (gelu), else from y. bias_grad[o] += the sum of dz.
  template <elementwise::Kind F>
  void gather_output_gradient(const float* dy, const float* y, const float* pre, int64_t batch,
                              float* dm, float* bias_grad, float slope) {
    const int64_t t_count = tiles(), ld = batch * t_count, position_stride = out_channels_ * ld;
    const int64_t oh_count = out_height(), ow_count = out_width();
    float* stage = staging();           // (4, T): dz (i, j) of every tile
    float* sums = stage + 4 * t_count;  // (TW + 1,): running sums for the bias, by column
    auto gradient = [&](int64_t at) {
      if constexpr (F == elementwise::Kind::none) return dy[at];
      return dy[at] * elementwise::derivative(F, pre ? pre[at] : y[at], y[at], slope);
    };
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t o = 0; o < out_channels_; ++o) {
        const int64_t plane = (b * out_channels_ + o) * oh_count * ow_count;
        // Tiles past the bottom or right edge see zeros there.
        if (oh_count % 2 || ow_count % 2) std::memset(stage, 0, sizeof(float) * 4 * t_count);
        std::memset(sums, 0, sizeof(float) * half_);
        for (int64_t oh = 0; oh < oh_count; ++oh) {
          const int64_t at = plane + oh * ow_count;
          float* left = stage + 2 * (oh % 2) * t_count + (oh / 2) * tile_cols_;
          float* right = left + t_count;
          for (int64_t q = 0; q < ow_count / 2; ++q) {
            left[q] = gradient(at + 2 * q);
            right[q] = gradient(at + 2 * q + 1);
            sums[q] += left[q] + right[q];
          }
          if (ow_count % 2) {
            left[ow_count / 2] = gradient(at + ow_count - 1);
            sums[ow_count / 2] += left[ow_count / 2];
          }
        }
        float* out = dm + o * ld + b * t_count;
#pragma GCC ivdep
        for (int64_t t = 0; t < t_count; ++t) {
          float dz[4], transformed[16];
          for (int e = 0; e < 4; ++e) dz[e] = stage[e * t_count + t];
          winograd::output_transform_adjoint(dz, transformed);
          for (int xi = 0; xi < 16; ++xi) out[xi * position_stride + t] = transformed[xi];
        }
        if (bias_grad) {
          float sum = 0.0f;
          for (int64_t q = 0; q < half_; ++q) sum += sums[q];
          bias_grad[o] += sum;
        }
      }
  }

  // dx (B, C, H, W) = the sum over tiles of B dV B^T put back where gather_input read each
  // tile; taps in the padding are dropped. dx is overwritten.
  void scatter_input_gradient(const float* dv, int64_t batch, float* dx) {
    const int64_t t_count = tiles(), ld = batch * t_count, position_stride = channels_ * ld;
    float* stage = staging();  // (16, T): element (i, j) of every tile
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t c = 0; c < channels_; ++c) {
        const float* in = dv + c * ld + b * t_count;
#pragma GCC ivdep
        for (int64_t t = 0; t < t_count; ++t) {
          float transformed[16], d[16];
          for (int xi = 0; xi < 16; ++xi) transformed[xi] = in[xi * position_stride + t];
          winograd::input_transform_adjoint(transformed, d);
          for (int e = 0; e < 16; ++e) stage[e * t_count + t] = d[e];
        }
        std::memset(even(), 0, sizeof(float) * 2 * padded_rows() * half_);
        for (int64_t th = 0; th < tile_rows_; ++th)
          for (int i = 0; i < 4; ++i) {
            // Neighbouring tiles overlap by two columns: add columns 0, 1 of every tile, then
            // columns 2, 3, so that no loop writes a place twice.
            float* e = even() + (2 * th + i) * half_;
            float* o = odd() + (2 * th + i) * half_;
            const float* t = stage + 4 * i * t_count + th * tile_cols_;
            for (int64_t tw = 0; tw < tile_cols_; ++tw) {
              e[tw] += t[tw];
              o[tw] += t[t_count + tw];
            }
            for (int64_t tw = 0; tw < tile_cols_; ++tw) {
              e[tw + 1] += t[2 * t_count + tw];
              o[tw + 1] += t[3 * t_count + tw];
            }
          }
        merge_plane(dx + (b * channels_ + c) * height_ * width_);
      }
  }

  // U (16, count) from `count` 3x3 kernels w (count, 3, 3).
  static void transform_weights(const float* w, int64_t count, float* u) {
    for (int64_t k = 0; k < count; ++k) {
      float transformed[16];
      winograd::weight_transform(w + 9 * k, transformed);
      for (int xi = 0; xi < 16; ++xi) u[xi * count + k] = transformed[xi];
    }
  }

  // dw (count, 3, 3) += G^T du G for dU (16, count).
  static void add_weight_gradient(const float* du, int64_t count, float* dw) {
    for (int64_t k = 0; k < count; ++k) {
      float transformed[16], kernel[9];
      for (int xi = 0; xi < 16; ++xi) transformed[xi] = du[xi * count + k];
      winograd::weight_transform_adjoint(transformed, kernel);
      for (int i = 0; i < 9; ++i) dw[9 * k + i] += kernel[i];
    }
  }

 private:
  int64_t out_height() const { return height_ + 2 * padding_ - 2; }
  int64_t out_width() const { return width_ + 2 * padding_ - 2; }
  // The padded plane holds every tile: rows up to 2 * TH + 1, columns up to 2 * TW + 1.
  int64_t padded_rows() const { return 2 * tile_rows_ + 2; }
  float* even() { return scratch_.data(); }  // (padded rows, TW + 1): columns 0, 2, 4, ...
  float* odd() { return even() + padded_rows() * half_; }     // columns 1, 3, 5, ...
  float* staging() { return odd() + padded_rows() * half_; }  // (16, T) and (TW + 1,)

  // The even and odd columns of one plane (H, W), placed at (p, p) in the padded plane:
  // input column w lands on padded column w + p, so pairs (2q, 2q + 1) of the input go to
  // (even, odd) halves when p is even and to (odd, even) when p is odd. One loop per row
  // with both stores, which the compiler vectorizes as a de-interleave.
  void split_plane(const float* plane) {
    const int64_t pairs = width_ / 2, shift = padding_ / 2;
    for (int64_t r = 0; r < height_; ++r) {
      const float* in = plane + r * width_;
      float* first = (padding_ % 2 ? odd() : even()) + (r + padding_) * half_ + shift;
      float* second = (padding_ % 2 ? even() + 1 : odd()) + (r + padding_) * half_ + shift;
      for (int64_t q = 0; q < pairs; ++q) {
        first[q] = in[2 * q];
        second[q] = in[2 * q + 1];
      }
      if (width_ % 2) first[pairs] = in[width_ - 1];
    }
  }
  // The inverse of split_plane: the (H, W) window at (p, p) of the padded plane.
  void merge_plane(float* plane) {
    const int64_t pairs = width_ / 2, shift = padding_ / 2;
    for (int64_t r = 0; r < height_; ++r) {
      float* out = plane + r * width_;
      const float* first = (padding_ % 2 ? odd() : even()) + (r + padding_) * half_ + shift;
      const float* second = (padding_ % 2 ? even() + 1 : odd()) + (r + padding_) * half_ + shift;
      for (int64_t q = 0; q < pairs; ++q) {
        out[2 * q] = first[q];
        out[2 * q + 1] = second[q];
      }
      if (width_ % 2) out[width_ - 1] = first[pairs];
    }
  }

  int64_t channels_ = 1, out_channels_ = 1, height_ = 1, width_ = 1, padding_ = 0;  // C O H W p
  int64_t tile_rows_ = 0, tile_cols_ = 0;                                           // TH, TW
  int64_t half_ = 1;  // TW + 1 columns in each half of the padded plane
  // Made once here and reused by every call: the split padded plane and the per-row arrays.
  std::vector<float> scratch_;
};

}  // namespace graft::conv
