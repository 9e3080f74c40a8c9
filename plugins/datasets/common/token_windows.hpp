// What the text and tokens readers share: a split of a token stream by position, the windows
// of `context` tokens a sample is, and the checks of the tensors read() fills.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "graft/cpp/core.hpp"

namespace graft_datasets {

// A split's tokens [first, first + tokens) of the stream, cut into windows of `context` inputs
// and `context` next-token targets, one starting every `stride` tokens.
struct Windows {
  int64_t first = 0, tokens = 0, context = 0, stride = 0;

  int64_t samples() const { return (tokens - 1 - context) / stride + 1; }
  // The stream position of sample `sample`'s first input token.
  int64_t start(int64_t sample) const { return first + sample * stride; }
};

// The tokens of the training split: all but the last `test_fraction` of `total` (rounded, so
// that 0.29 of 100 tokens is 29, not the 28 of floor(28.999...)).
inline int64_t train_tokens(int64_t total, double test_fraction) {
  return total - std::llround(static_cast<double>(total) * test_fraction);
}

// A fraction as a message shows it: 0.1, not 0.100000.
inline std::string show_fraction(double value) {
  std::string text = std::to_string(value);
  while (text.size() > 1 && text.back() == '0' && text[text.size() - 2] != '.') text.pop_back();
  return text;
}

// The windows of a split of `tokens` tokens at `first`; `what` says what the split is, for the
// message when the split is too short for one window.
inline Windows make_windows(const std::string& reader, int64_t first, int64_t tokens,
                            int64_t context, int64_t stride, const std::string& what) {
  GRAFT_CHECK(tokens >= context + 1,
              reader << ": `context` = " << context << " needs " << context + 1
                     << " tokens (inputs and the next-token target), but " << what << " holds "
                     << tokens << "; lower `context`, or give the split more text");
  return Windows{first, tokens, context, stride > 0 ? stride : context};
}

// x: (n, context) float32 and y: (n, context) int32 on the CPU.
inline void check_batch(const std::string& reader, const DLTensor& x, const DLTensor& y, int64_t n,
                        int64_t context) {
  GRAFT_CHECK(
      graft::on_cpu(x) && x.dtype.code == kDLFloat && x.dtype.bits == 32 &&
          graft::numel(x) == n * context,
      reader << ": read() needs x as float32 on the CPU with " << n * context << " elements");
  GRAFT_CHECK(graft::on_cpu(y) && y.dtype.code == kDLInt && y.dtype.bits == 32 &&
                  graft::numel(y) == n * context,
              reader << ": read() needs y as int32 on the CPU with " << n * context << " elements");
}

}  // namespace graft_datasets
