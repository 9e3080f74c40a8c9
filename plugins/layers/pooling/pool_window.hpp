// The windows of 2-D max and average pooling over one (H, W) plane, as GRAFT_HD functions so
// the CPU loops and the CUDA kernels (pooling_cuda.cu) agree on the geometry, the comparisons
// and the order of every sum.
#pragma once

#include <stdint.h>

#include "graft/random.h"  // GRAFT_HD

namespace graft::pool {

// Output (oh, ow) pools the kernel x kernel window whose corner is input
// (oh * stride - padding, ow * stride - padding); taps in the padding are skipped.
struct Window2d {
  int64_t height = 1, width = 1, kernel = 1, stride = 1, padding = 0;

  GRAFT_HD int64_t outputs(int64_t input) const {
    const int64_t room = input + 2 * padding - kernel;
    return room < 0 ? 0 : room / stride + 1;
  }
  GRAFT_HD int64_t out_height() const { return outputs(height); }
  GRAFT_HD int64_t out_width() const { return outputs(width); }
  GRAFT_HD int64_t top(int64_t oh) const { return oh * stride - padding; }
  GRAFT_HD int64_t left(int64_t ow) const { return ow * stride - padding; }
  // Taps [first_tap, end_tap) of a window starting at `corner` that fall inside an axis.
  GRAFT_HD int64_t first_tap(int64_t corner) const { return corner < 0 ? -corner : 0; }
  GRAFT_HD int64_t end_tap(int64_t corner, int64_t size) const {
    return corner + kernel > size ? size - corner : kernel;
  }
  // The outputs along an axis of `size` whose tap `tap` lies inside: [first_output, end_output).
  GRAFT_HD int64_t first_output(int64_t tap) const {
    const int64_t need = padding - tap;  // out * stride >= need
    return need <= 0 ? 0 : (need + stride - 1) / stride;
  }
  GRAFT_HD int64_t end_output(int64_t tap, int64_t size) const {
    const int64_t last = size - 1 + padding - tap;  // out * stride <= last
    if (last < 0) return 0;
    const int64_t end = last / stride + 1, n = outputs(size);
    return end < n ? end : n;
  }
  // The outputs along an axis of `size` whose window covers input position `at`:
  // [first_covering, end_covering). Window o spans [o * stride - padding, + kernel).
  GRAFT_HD int64_t first_covering(int64_t at) const {
    const int64_t past = at + padding - kernel;  // covered when o * stride > past
    return past < 0 ? 0 : past / stride + 1;
  }
  GRAFT_HD int64_t end_covering(int64_t at, int64_t size) const {
    const int64_t end = (at + padding) / stride + 1, n = outputs(size);
    return end < n ? end : n;
  }
};

// Whether a window's running maximum `best` gives way to `value`: larger values and NaN do,
// as in PyTorch (NaN propagates; among equal values the first stays).
GRAFT_HD inline bool max_takes(float value, float best) { return value > best || value != value; }

// What output (oh, ow)'s sum is divided by: kernel * kernel, or only the taps inside the
// input when the padding does not count.
GRAFT_HD inline float window_divisor(const Window2d& w, int64_t oh, int64_t ow,
                                     bool count_padding) {
  if (count_padding) return static_cast<float>(w.kernel * w.kernel);
  const int64_t top = w.top(oh), left = w.left(ow);
  const int64_t rows = w.end_tap(top, w.height) - w.first_tap(top);
  const int64_t cols = w.end_tap(left, w.width) - w.first_tap(left);
  return static_cast<float>(rows * cols);
}

// The largest value of output (oh, ow)'s window in plane (H, W), and its place ih * W + iw
// in *winner: the first tap inside starts as the maximum, then the taps in order, as PyTorch
// scans them.
GRAFT_HD inline float max_window(const Window2d& w, const float* plane, int64_t oh, int64_t ow,
                                 int64_t* winner) {
  const int64_t top = w.top(oh), left = w.left(ow);
  const int64_t i_begin = w.first_tap(top), i_end = w.end_tap(top, w.height);
  const int64_t j_begin = w.first_tap(left), j_end = w.end_tap(left, w.width);
  int64_t at_best = (top + i_begin) * w.width + left + j_begin;
  float best = plane[at_best];
  for (int64_t i = i_begin; i < i_end; ++i)
    for (int64_t j = j_begin; j < j_end; ++j) {
      const int64_t at = (top + i) * w.width + left + j;
      if (max_takes(plane[at], best)) {
        best = plane[at];
        at_best = at;
      }
    }
  *winner = at_best;
  return best;
}

// The mean of output (oh, ow)'s window, summed in the CPU loop's order (rows, then columns).
GRAFT_HD inline float window_mean(const Window2d& w, const float* plane, int64_t oh, int64_t ow,
                                  bool count_padding) {
  const int64_t top = w.top(oh), left = w.left(ow);
  const int64_t j_begin = w.first_tap(left), j_end = w.end_tap(left, w.width);
  float sum = 0.0f;
  for (int64_t i = w.first_tap(top); i < w.end_tap(top, w.height); ++i)
    for (int64_t j = j_begin; j < j_end; ++j) sum += plane[(top + i) * w.width + left + j];
  return sum / window_divisor(w, oh, ow, count_padding);
}

// Backward one input (ih, iw) at a time, for the CUDA kernels: each gathers what the CPU loops
// scatter to it, in the same order, so both give the same bits without atomics. dy and
// winners are one plane's (OH, OW).

// Max pooling: dy of every window whose winner is (ih, iw), in output order.
GRAFT_HD inline float max_input_gradient(const Window2d& w, const float* dy, const float* winners,
                                         int64_t ih, int64_t iw) {
  const int64_t ow_count = w.out_width(), at = ih * w.width + iw;
  const int64_t ow_begin = w.first_covering(iw), ow_end = w.end_covering(iw, w.width);
  float sum = 0.0f;
  for (int64_t oh = w.first_covering(ih); oh < w.end_covering(ih, w.height); ++oh)
    for (int64_t ow = ow_begin; ow < ow_end; ++ow)
      if (static_cast<int64_t>(winners[oh * ow_count + ow]) == at) sum += dy[oh * ow_count + ow];
  return sum;
}

// Average pooling: dy / divisor of every window over (ih, iw). The CPU adds them with output
// rows rising and, within a row, kernel taps rising, so output columns falling.
GRAFT_HD inline float avg_input_gradient(const Window2d& w, const float* dy, int64_t ih, int64_t iw,
                                         bool count_padding) {
  const int64_t ow_count = w.out_width();
  const int64_t ow_begin = w.first_covering(iw), ow_end = w.end_covering(iw, w.width);
  float sum = 0.0f;
  for (int64_t oh = w.first_covering(ih); oh < w.end_covering(ih, w.height); ++oh)
    for (int64_t ow = ow_end - 1; ow >= ow_begin; --ow)
      sum += dy[oh * ow_count + ow] / window_divisor(w, oh, ow, count_padding);
  return sum;
}

}  // namespace graft::pool
