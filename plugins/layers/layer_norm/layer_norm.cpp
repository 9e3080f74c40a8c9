// Layer normalisation as torch.nn.LayerNorm: each sample's trailing axes (all of them by
// default) are normalised to zero mean and unit variance, then scaled and shifted per element.
#include <cstdint>
#include <string>

#include "graft/cpp/device.hpp"
#include "graft/cpp/plugin.hpp"
#include "layer_norm_cuda.hpp"
#include "layer_norm_math.hpp"

namespace {

// Dimension letters: N batch, R the rows each sample holds (the product of the leading,
// not normalised, axes), L the length of a row (the product of the normalised axes).

class LayerNorm : public graft::Layer {
 public:
  static std::vector<graft::OptionDef> options() {
    return {
        graft::option_int("normalized_dims", 0,
                          "how many trailing per-sample axes to normalise over; 0 = all")
            .range(0, GRAFT_MAX_DIMS),
        graft::option_float("eps", 1e-5, "added to the variance before the square root")
            .range(0.0, 1.0),
        graft::option_bool("elementwise_affine", true,
                           "learn a scale (weight) and shift (bias) per normalised element"),
    };
  }

  LayerNorm(const graft::Options& o, const graft::Shape& input, graft::Host)
      : shape_(input),
        eps_(static_cast<float>(o.get_float("eps"))),
        affine_(o.get_bool("elementwise_affine")) {
    GRAFT_CHECK(input.ndim >= 1 && input.numel() >= 1,
                "layer_norm: the input " << input.str() << " has no axis to normalise over");
    const int64_t dims = o.get_int("normalized_dims");
    GRAFT_CHECK(dims <= input.ndim,
                "layer_norm: normalized_dims = " << dims << " but the input " << input.str()
                                                 << " has " << input.ndim << " axes; use 1.."
                                                 << input.ndim << " or 0 for all");
    GRAFT_CHECK(eps_ > 0.0f,
                "layer_norm: eps = 0 divides by zero on a constant row; "
                "use a small positive eps such as 1e-5");
    const int first = dims == 0 ? 0 : input.ndim - static_cast<int>(dims);
    for (int a = first; a < input.ndim; ++a)
      normalized_shape_.dims[normalized_shape_.ndim++] = input[a];
    row_length_ = normalized_shape_.numel();
    rows_per_sample_ = input.numel() / row_length_;
  }

  graft::Shape output_shape() const override { return shape_; }

  std::vector<graft::Param> parameters() const override {
    if (!affine_) return {};
    return {{"weight", normalized_shape_, GRAFT_INIT_ONES, row_length_, row_length_, 1.0f, true},
            {"bias", normalized_shape_, GRAFT_INIT_ZEROS, row_length_, row_length_, 1.0f, true}};
  }

  // Each row's mean and inverse standard deviation, (N, R, 2), left by forward for backward.
  int64_t workspace_per_sample() const override { return 2 * rows_per_sample_; }

  // x, y: (N, R, L).
  void forward(const graft::Context& ctx, const DLTensor* const* params, const DLTensor& x,
               DLTensor& y, DLTensor* workspace) override {
    graft::require_device(x, "layer_norm");
    const int64_t rows = graft::rows(x) * rows_per_sample_;
    float* statistics = workspace ? graft::f32(checked(workspace, rows)) : nullptr;
    const float* weight = affine_ ? graft::f32(*params[0]) : nullptr;
    const float* bias = affine_ ? graft::f32(*params[1]) : nullptr;
    if (graft::on_cuda(x))
      return graft::check_launch("layer_norm", graft::layer_norm::cuda::forward(
                                                   graft::f32(x), graft::f32(y), rows, row_length_,
                                                   eps_, weight, bias, statistics, ctx.stream));
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = graft::f32(x) + r * row_length_;
      float* yr = graft::f32(y) + r * row_length_;
      double total = 0.0;
      for (int64_t k = 0; k < row_length_; ++k) total += xr[k];
      const double mean = total / static_cast<double>(row_length_);
      double squares = 0.0;
      for (int64_t k = 0; k < row_length_; ++k) squares += (xr[k] - mean) * (xr[k] - mean);
      const float mean_f = static_cast<float>(mean);
      const float inv_std = graft::layer_norm::inverse_std(
          static_cast<float>(squares / static_cast<double>(row_length_)), eps_);
      if (statistics) {
        statistics[2 * r] = mean_f;
        statistics[2 * r + 1] = inv_std;
      }
      for (int64_t k = 0; k < row_length_; ++k) {
        const float x_hat = graft::layer_norm::normalized(xr[k], mean_f, inv_std);
        yr[k] = affine_ ? graft::layer_norm::affine(x_hat, weight[k], bias[k]) : x_hat;
      }
    }
  }

  // dweight += sum over rows of dy * x_hat, dbias += sum of dy, dx through the row statistics.
  void backward(const graft::Context& ctx, const DLTensor* const* params, const DLTensor& x,
                const DLTensor&, const DLTensor& dy, DLTensor* dx, DLTensor* const* grads,
                DLTensor* workspace) override {
    graft::require_device(x, "layer_norm");
    const int64_t rows = graft::rows(x) * rows_per_sample_;
    GRAFT_CHECK(workspace, "layer_norm: backward needs the workspace that forward filled");
    const float* statistics = graft::f32(checked(workspace, rows));
    const float* weight = affine_ ? graft::f32(*params[0]) : nullptr;
    float* grad_weight = affine_ ? graft::f32(*grads[0]) : nullptr;
    float* grad_bias = affine_ ? graft::f32(*grads[1]) : nullptr;
    if (graft::on_cuda(x))
      return graft::check_launch(
          "layer_norm", graft::layer_norm::cuda::backward(
                            graft::f32(x), graft::f32(dy), dx ? graft::f32(*dx) : nullptr, rows,
                            row_length_, weight, statistics, grad_weight, grad_bias, ctx.stream));
    const double length = static_cast<double>(row_length_);
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = graft::f32(x) + r * row_length_;
      const float* dyr = graft::f32(dy) + r * row_length_;
      const float mean = statistics[2 * r], inv_std = statistics[2 * r + 1];
      double sum_g = 0.0, sum_g_x_hat = 0.0;
      for (int64_t k = 0; k < row_length_; ++k) {
        const float x_hat = graft::layer_norm::normalized(xr[k], mean, inv_std);
        const float g = affine_ ? dyr[k] * weight[k] : dyr[k];
        sum_g += g;
        sum_g_x_hat += static_cast<double>(g) * x_hat;
        if (affine_) {
          grad_weight[k] += dyr[k] * x_hat;
          grad_bias[k] += dyr[k];
        }
      }
      if (!dx) continue;
      float* dxr = graft::f32(*dx) + r * row_length_;
      const float mean_g = static_cast<float>(sum_g / length);
      const float mean_g_x_hat = static_cast<float>(sum_g_x_hat / length);
      for (int64_t k = 0; k < row_length_; ++k) {
        const float x_hat = graft::layer_norm::normalized(xr[k], mean, inv_std);
        const float g = affine_ ? dyr[k] * weight[k] : dyr[k];
        dxr[k] = graft::layer_norm::input_gradient(g, x_hat, inv_std, mean_g, mean_g_x_hat);
      }
    }
  }

 private:
  static DLTensor& checked(DLTensor* workspace, int64_t rows) {
    GRAFT_CHECK(graft::numel(*workspace) >= 2 * rows,
                "layer_norm: the host passed a workspace smaller than (" << rows << ", 2) floats");
    return *workspace;
  }

  graft::Shape shape_;
  float eps_;
  bool affine_;
  graft::Shape normalized_shape_;
  int64_t row_length_ = 1;       // L
  int64_t rows_per_sample_ = 1;  // R
};

}  // namespace

GRAFT_PLUGIN_LIBRARY("layer_norm", "0.1.0",
                     graft::layer<LayerNorm>("layer_norm",
                                             "normalises each sample's trailing axes "
                                             "(torch LayerNorm)",
                                             graft::kCudaEntry))
