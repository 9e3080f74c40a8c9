// 2-D max and average pooling over (C, H, W) samples, each channel on its own. Max pooling
// keeps the winner of every window in the workspace so backward routes dy straight to it.
// On a GPU, pooling_cuda.cu's kernels run the same window functions (pool_window.hpp).
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "graft/cpp/device.hpp"
#include "graft/cpp/plugin.hpp"
#include "pool_window.hpp"
#include "pooling_cuda.hpp"

namespace {

// Dimension letters: N batch, C channels, H x W input, OH x OW output.

// The options and shape checks both poolings share; `name` is the plugin's, for messages.
class Pool2d : public graft::Layer {
 public:
  static std::vector<graft::OptionDef> common_options() {
    return {
        graft::option_int("kernel_size", 2, "the window is kernel_size x kernel_size")
            .range(1, 4096),
        graft::option_int("stride", 0, "step between windows; 0 means kernel_size").range(0, 4096),
        graft::option_int("padding", 0, "padding on every side, at most kernel_size / 2")
            .range(0, 2048),
    };
  }

  Pool2d(const char* name, const graft::Options& o, const graft::Shape& input) {
    GRAFT_CHECK(input.ndim == 3, name << ": the input per sample is " << input.str() << "; " << name
                                      << " needs (C, H, W), e.g. after a conv2d");
    window_.kernel = o.get_int("kernel_size");
    window_.stride = o.get_int("stride") == 0 ? window_.kernel : o.get_int("stride");
    window_.padding = o.get_int("padding");
    channels_ = input[0];
    window_.height = input[1];
    window_.width = input[2];
    GRAFT_CHECK(2 * window_.padding <= window_.kernel,
                name << ": padding = " << window_.padding << " is more than half of kernel_size = "
                     << window_.kernel << ", so a window could hold only padding; lower padding");
    GRAFT_CHECK(window_.out_height() >= 1 && window_.out_width() >= 1,
                name << ": the input " << input.str() << " is smaller than the " << window_.kernel
                     << " x " << window_.kernel << " window (padding " << window_.padding
                     << "); lower kernel_size or raise padding");
  }

  graft::Shape output_shape() const override {
    return graft::Shape{channels_, window_.out_height(), window_.out_width()};
  }

 protected:
  int64_t in_plane() const { return window_.height * window_.width; }
  int64_t out_plane() const { return window_.out_height() * window_.out_width(); }

  graft::pool::Window2d window_;
  int64_t channels_ = 1;  // C
};

class MaxPool2d : public Pool2d {
 public:
  static std::vector<graft::OptionDef> options() { return common_options(); }

  MaxPool2d(const graft::Options& o, const graft::Shape& input, graft::Host)
      : Pool2d("max_pool2d", o, input) {
    GRAFT_CHECK(in_plane() < (int64_t{1} << 24),
                "max_pool2d: planes of "
                    << window_.height << " x " << window_.width
                    << " pixels are too large: each window's winner is kept as its place in "
                    << "the plane in a float, exact below 2^24 pixels");
  }

  // The winner of every output as its place ih * W + iw in the input plane, (C, OH, OW) per
  // sample; a float holds it exactly since planes stay under 2^24 pixels.
  int64_t workspace_per_sample() const override { return channels_ * out_plane(); }

  // x: (N, C, H, W), y: (N, C, OH, OW).
  void forward(const graft::Context& ctx, const DLTensor* const*, const DLTensor& x, DLTensor& y,
               DLTensor* workspace) override {
    const int64_t planes = graft::rows(x) * channels_;
    GRAFT_CHECK(workspace && graft::numel(*workspace) >= planes * out_plane(),
                "max_pool2d: the host passed no workspace for " << planes * out_plane()
                                                                << " window winners");
    graft::require_device(x, "max_pool2d");
    if (graft::on_cuda(x))
      return graft::check_launch("max_pool2d", graft::pool::cuda::max_forward(
                                                   window_, graft::f32(x), planes, graft::f32(y),
                                                   graft::f32(*workspace), ctx.stream));
    const bool halves = window_.kernel == 2 && window_.stride == 2 && window_.padding == 0;
    for (int64_t plane = 0; plane < planes; ++plane) {
      const float* in = graft::f32(x) + plane * in_plane();
      float* out = graft::f32(y) + plane * out_plane();
      float* winners = graft::f32(*workspace) + plane * out_plane();
      if (halves)
        max_plane_2x2(in, out, winners);
      else
        max_plane(in, out, winners);
    }
  }

  // dx[winner of each window] += dy; 0 elsewhere.
  void backward(const graft::Context& ctx, const DLTensor* const*, const DLTensor& x,
                const DLTensor&, const DLTensor& dy, DLTensor* dx, DLTensor* const*,
                DLTensor* workspace) override {
    if (!dx) return;
    const int64_t planes = graft::rows(x) * channels_;
    graft::require_device(x, "max_pool2d");
    if (graft::on_cuda(x))
      return graft::check_launch("max_pool2d", graft::pool::cuda::max_backward(
                                                   window_, graft::f32(dy), graft::f32(*workspace),
                                                   planes, graft::f32(*dx), ctx.stream));
    std::memset(graft::f32(*dx), 0, sizeof(float) * planes * in_plane());
    for (int64_t plane = 0; plane < planes; ++plane) {
      const float* grad = graft::f32(dy) + plane * out_plane();
      const float* winners = graft::f32(*workspace) + plane * out_plane();
      float* out = graft::f32(*dx) + plane * in_plane();
      for (int64_t o = 0; o < out_plane(); ++o) out[static_cast<int64_t>(winners[o])] += grad[o];
    }
  }

 private:
  // One plane, any window: out (OH, OW) and winners (OH, OW) from in (H, W).
  void max_plane(const float* in, float* out, float* winners) const {
    const int64_t ow_count = window_.out_width();
    for (int64_t oh = 0; oh < window_.out_height(); ++oh)
      for (int64_t ow = 0; ow < ow_count; ++ow) {
        int64_t winner = 0;
        out[oh * ow_count + ow] = graft::pool::max_window(window_, in, oh, ow, &winner);
        winners[oh * ow_count + ow] = static_cast<float>(winner);
      }
  }

  // The same for the default 2x2 windows at stride 2 without padding, written so that the
  // compiler vectorizes it across a row of windows (several times faster).
  void max_plane_2x2(const float* in, float* out, float* winners) const {
    const auto width = static_cast<int32_t>(window_.width);
    const auto ow_count = static_cast<int32_t>(window_.out_width());
    for (int32_t oh = 0; oh < static_cast<int32_t>(window_.out_height()); ++oh) {
      const float* upper = in + 2 * oh * width;
      const float* lower = upper + width;
      float* best = out + oh * ow_count;
      float* winner = winners + oh * ow_count;
      for (int32_t ow = 0; ow < ow_count; ++ow) {
        const auto corner = static_cast<float>(2 * oh * width + 2 * ow);
        float m = upper[2 * ow], at = corner;
        const float b = upper[2 * ow + 1], c = lower[2 * ow], d = lower[2 * ow + 1];
        bool takes = graft::pool::max_takes(b, m);
        m = takes ? b : m;
        at = takes ? corner + 1.0f : at;
        takes = graft::pool::max_takes(c, m);
        m = takes ? c : m;
        at = takes ? corner + static_cast<float>(width) : at;
        takes = graft::pool::max_takes(d, m);
        m = takes ? d : m;
        at = takes ? corner + static_cast<float>(width + 1) : at;
        best[ow] = m;
        winner[ow] = at;
      }
    }
  }
};

class AvgPool2d : public Pool2d {
 public:
  static std::vector<graft::OptionDef> options() {
    auto o = common_options();
    o.push_back(graft::option_bool("count_include_pad", true,
                                   "divide by kernel_size^2 even where the window overlaps "
                                   "the padding (PyTorch's default); false: by the taps inside"));
    return o;
  }

  AvgPool2d(const graft::Options& o, const graft::Shape& input, graft::Host)
      : Pool2d("avg_pool2d", o, input),
        count_padding_(o.get_bool("count_include_pad")),
        share_(static_cast<size_t>(window_.out_width())) {}

  // x: (N, C, H, W), y: (N, C, OH, OW).
  void forward(const graft::Context& ctx, const DLTensor* const*, const DLTensor& x, DLTensor& y,
               DLTensor*) override {
    const int64_t planes = graft::rows(x) * channels_;
    graft::require_device(x, "avg_pool2d");
    if (graft::on_cuda(x))
      return graft::check_launch(
          "avg_pool2d", graft::pool::cuda::avg_forward(window_, graft::f32(x), planes,
                                                       count_padding_, graft::f32(y), ctx.stream));
    const int64_t oh_count = window_.out_height(), ow_count = window_.out_width();
    const int64_t stride = window_.stride, padding = window_.padding;
    for (int64_t plane = 0; plane < planes; ++plane) {
      const float* in = graft::f32(x) + plane * in_plane();
      for (int64_t oh = 0; oh < oh_count; ++oh) {
        float* sum = graft::f32(y) + plane * out_plane() + oh * ow_count;
        std::memset(sum, 0, sizeof(float) * ow_count);
        const int64_t top = window_.top(oh);
        for (int64_t i = window_.first_tap(top); i < window_.end_tap(top, window_.height); ++i) {
          const float* row = in + (top + i) * window_.width;
          for (int64_t j = 0; j < window_.kernel; ++j) {
            const int64_t end = window_.end_output(j, window_.width);
            for (int64_t ow = window_.first_output(j); ow < end; ++ow)
              sum[ow] += row[ow * stride - padding + j];
          }
        }
        for (int64_t ow = 0; ow < ow_count; ++ow)
          sum[ow] /= graft::pool::window_divisor(window_, oh, ow, count_padding_);
      }
    }
  }

  // Every tap inside the window of output o gets dy[o] / divisor(o).
  void backward(const graft::Context& ctx, const DLTensor* const*, const DLTensor& x,
                const DLTensor&, const DLTensor& dy, DLTensor* dx, DLTensor* const*,
                DLTensor*) override {
    if (!dx) return;
    const int64_t planes = graft::rows(x) * channels_;
    graft::require_device(x, "avg_pool2d");
    if (graft::on_cuda(x))
      return graft::check_launch("avg_pool2d", graft::pool::cuda::avg_backward(
                                                   window_, graft::f32(dy), planes, count_padding_,
                                                   graft::f32(*dx), ctx.stream));
    const int64_t oh_count = window_.out_height(), ow_count = window_.out_width();
    const int64_t stride = window_.stride, padding = window_.padding;
    std::memset(graft::f32(*dx), 0, sizeof(float) * planes * in_plane());
    for (int64_t plane = 0; plane < planes; ++plane) {
      float* out = graft::f32(*dx) + plane * in_plane();
      for (int64_t oh = 0; oh < oh_count; ++oh) {
        const float* grad = graft::f32(dy) + plane * out_plane() + oh * ow_count;
        for (int64_t ow = 0; ow < ow_count; ++ow)
          share_[ow] = grad[ow] / graft::pool::window_divisor(window_, oh, ow, count_padding_);
        const int64_t top = window_.top(oh);
        for (int64_t i = window_.first_tap(top); i < window_.end_tap(top, window_.height); ++i) {
          float* row = out + (top + i) * window_.width;
          for (int64_t j = 0; j < window_.kernel; ++j) {
            const int64_t end = window_.end_output(j, window_.width);
            for (int64_t ow = window_.first_output(j); ow < end; ++ow)
              row[ow * stride - padding + j] += share_[ow];
          }
        }
      }
    }
  }

 private:
  bool count_padding_;
  std::vector<float> share_;  // (OW,): dy / divisor of one output row, made once here
};

}  // namespace

GRAFT_PLUGIN_LIBRARY("pooling", "0.1.0",
                     graft::layer<MaxPool2d>("max_pool2d",
                                             "largest value of each window, per channel",
                                             graft::kCudaEntry),
                     graft::layer<AvgPool2d>("avg_pool2d", "mean of each window, per channel",
                                             graft::kCudaEntry))
