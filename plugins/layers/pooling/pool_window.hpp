// The windows of 2-D max and average pooling over one (H, W) plane, as GRAFT_HD functions so
// the CPU loops here and a CUDA kernel later agree on the geometry and the comparisons.
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
};

// Whether a window's running maximum `best` gives way to `value`: larger values and NaN do,
// as in PyTorch (NaN propagates; among equal values the first stays).
GRAFT_HD inline bool max_takes(float value, float best) {
  return value > best || value != value;
}

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

}  // namespace graft::pool
