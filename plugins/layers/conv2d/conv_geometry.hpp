// Where each output pixel of a 2-D convolution reads its input along one axis, as GRAFT_HD
// functions so the CPU im2col and the CUDA kernels (conv2d_cuda.cu) share one definition.
#pragma once

#include <stdint.h>

#include "graft/random.h"  // GRAFT_HD

namespace graft::conv {

// One spatial axis (height or width) of a convolution: tap k of output position `out` reads
// input position out * stride - padding + k * dilation, which may fall in the zero padding.
struct Axis {
  int64_t input = 1, kernel = 1, stride = 1, padding = 0, dilation = 1;

  // The padded input size minus the dilated kernel's span is negative when the kernel does
  // not fit; then there are no outputs (C++ division would round -1 / 2 up to 0, hence the test).
  GRAFT_HD int64_t outputs() const {
    const int64_t room = input + 2 * padding - dilation * (kernel - 1) - 1;
    return room < 0 ? 0 : room / stride + 1;
  }
  GRAFT_HD int64_t source(int64_t out, int64_t tap) const {
    return out * stride - padding + tap * dilation;
  }
  // The outputs whose tap `tap` lands inside the input: [first_inside, end_inside).
  GRAFT_HD int64_t first_inside(int64_t tap) const {
    const int64_t need = padding - tap * dilation;  // out * stride >= need
    return need <= 0 ? 0 : (need + stride - 1) / stride;
  }
  GRAFT_HD int64_t end_inside(int64_t tap) const {
    const int64_t last = input - 1 + padding - tap * dilation;  // out * stride <= last
    if (last < 0) return 0;
    const int64_t end = last / stride + 1;
    const int64_t n = outputs();
    return end < n ? end : n;
  }
  // The output whose tap `tap` reads input position `position`, or -1 when none does (the
  // tap falls between strides or past the last output): col2im's gather, one input at a time.
  GRAFT_HD int64_t output_reading(int64_t position, int64_t tap) const {
    const int64_t at = position + padding - tap * dilation;  // out * stride
    if (at < 0 || at % stride != 0) return -1;
    const int64_t out = at / stride;
    return out < outputs() ? out : -1;
  }
};

}  // namespace graft::conv
