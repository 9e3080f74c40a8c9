// Batch normalisation as torch.nn.BatchNorm1d/2d: per channel, over the batch and spatial axes;
// batch statistics in training (running statistics updated), running statistics in evaluation.
#include <cstddef>
#include <cstdint>
#include <string>

#include "batch_norm_cuda.hpp"
#include "batch_norm_math.hpp"
#include "graft/cpp/device.hpp"
#include "graft/cpp/plugin.hpp"

namespace {

// Dimension letters: N batch, C channels (the first per-sample axis), S the product of the
// remaining per-sample axes (H * W for (C, H, W); 1 for (D,), where C = D). M = N * S is the
// count of values each channel's statistics cover.

// sum of p[0..n) in double, with four partial sums so the additions do not wait on each other.
double sum(const float* p, int64_t n) {
  double a = 0.0, b = 0.0, c = 0.0, d = 0.0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a += p[i];
    b += p[i + 1];
    c += p[i + 2];
    d += p[i + 3];
  }
  for (; i < n; ++i) a += p[i];
  return (a + b) + (c + d);
}

// sum of (p[i] - mean)^2 in double: the second pass of a two-pass variance (no cancellation).
double sum_squared_deviation(const float* p, int64_t n, double mean) {
  double a = 0.0, b = 0.0;
  int64_t i = 0;
  for (; i + 2 <= n; i += 2) {
    const double u = p[i] - mean, v = p[i + 1] - mean;
    a += u * u;
    b += v * v;
  }
  for (; i < n; ++i) a += (p[i] - mean) * (p[i] - mean);
  return a + b;
}

class BatchNorm : public graft::Layer {
 public:
  static std::vector<graft::OptionDef> options() {
    return {
        graft::option_float("momentum", 0.1,
                            "running = (1 - momentum) running + momentum * batch statistic")
            .range(0.0, 1.0),
        graft::option_float("eps", 1e-5, "added to the variance before the square root")
            .range(0.0, 1.0),
        graft::option_bool("affine", true, "learn a per-channel scale (weight) and shift (bias)"),
    };
  }

  BatchNorm(const graft::Options& o, const graft::Shape& input, graft::Host host)
      : host_(host),
        shape_(input),
        momentum_(o.get_float("momentum")),
        eps_(static_cast<float>(o.get_float("eps"))),
        affine_(o.get_bool("affine")),
        channels_(input.ndim >= 1 ? input[0] : 0),
        spatial_(channels_ > 0 ? input.numel() / channels_ : 0),
        scratch_(host, DLDevice{kDLCPU, 0},
                 static_cast<size_t>(channels_ > 0 ? channels_ : 1) *
                     (2 * sizeof(double) + 2 * sizeof(float)),
                 "batch_norm") {
    GRAFT_CHECK(input.ndim >= 1 && input.numel() >= 1,
                "batch_norm: the input " << input.str()
                                         << " has no channel axis; batch_norm takes per-sample "
                                            "(C, H, W), (C, L) or (D,) inputs");
    GRAFT_CHECK(eps_ > 0.0f,
                "batch_norm: eps = 0 divides by zero on a constant channel; "
                "use a small positive eps such as 1e-5");
    first_sum_ = scratch_.as<double>();
    second_sum_ = first_sum_ + channels_;
    mean_ = reinterpret_cast<float*>(second_sum_ + channels_);
    inv_std_ = mean_ + channels_;
  }

  graft::Shape output_shape() const override { return shape_; }

  std::vector<graft::Param> parameters() const override {
    const graft::Shape c{channels_};
    std::vector<graft::Param> params;
    if (affine_) {
      params.push_back({"weight", c, GRAFT_INIT_ONES, channels_, channels_, 1.0f, true, false});
      params.push_back({"bias", c, GRAFT_INIT_ZEROS, channels_, channels_, 1.0f, true, false});
    }
    params.push_back({"running_mean", c, GRAFT_INIT_ZEROS, channels_, channels_, 1.0f, true, true});
    params.push_back({"running_var", c, GRAFT_INIT_ONES, channels_, channels_, 1.0f, true, true});
    return params;
  }

  // x, y: (N, C, S...).
  void forward(const graft::Context& ctx, const DLTensor* const* params, const DLTensor& x,
               DLTensor& y, DLTensor*) override {
    graft::require_device(x, "batch_norm");
    const int64_t n = graft::rows(x);
    if (graft::on_cuda(x)) return forward_gpu(ctx, params, x, y, n);
    float* running_mean = graft::f32(*params[running_index()]);
    float* running_var = graft::f32(*params[running_index() + 1]);
    if (ctx.training) {
      batch_statistics(x, n);
      const int64_t count = n * spatial_;
      for (int64_t c = 0; c < channels_; ++c) {
        const double variance = second_sum_[c] / static_cast<double>(count);
        running_mean[c] = static_cast<float>(
            graft::batch_norm::running_update(running_mean[c], first_sum_[c] / count, momentum_));
        running_var[c] = static_cast<float>(graft::batch_norm::running_update(
            running_var[c], graft::batch_norm::unbiased_variance(variance, count), momentum_));
      }
    } else {
      running_statistics(running_mean, running_var);
    }
    const float* xs = graft::f32(x);
    float* ys = graft::f32(y);
    for (int64_t c = 0; c < channels_; ++c) {
      const float scale = graft::batch_norm::channel_scale(weight(params, c), inv_std_[c]);
      const float shift = graft::batch_norm::channel_shift(bias(params, c), mean_[c], scale);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t base = (i * channels_ + c) * spatial_;
        for (int64_t s = 0; s < spatial_; ++s)
          ys[base + s] = graft::batch_norm::normalize(xs[base + s], scale, shift);
      }
    }
  }

  // Training: through the batch statistics, which are recomputed from x (bit-identical to
  // forward's) rather than kept, so micro-batches in flight never share per-channel state.
  // Evaluation: the running statistics are constants and dx = dy * weight * inv_std.
  void backward(const graft::Context& ctx, const DLTensor* const* params, const DLTensor& x,
                const DLTensor&, const DLTensor& dy, DLTensor* dx, DLTensor* const* grads,
                DLTensor*) override {
    graft::require_device(x, "batch_norm");
    const int64_t n = graft::rows(x);
    if (graft::on_cuda(x)) return backward_gpu(ctx, params, x, dy, dx, grads, n);
    if (ctx.training)
      batch_statistics(x, n);
    else
      running_statistics(graft::f32(*params[running_index()]),
                         graft::f32(*params[running_index() + 1]));
    const float* xs = graft::f32(x);
    const float* dys = graft::f32(dy);
    // first_sum_ = sum(dy), second_sum_ = sum(dy * x_hat) per channel.
    for (int64_t c = 0; c < channels_; ++c) {
      double sum_dy = 0.0, sum_dy_x_hat = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        const int64_t base = (i * channels_ + c) * spatial_;
        for (int64_t s = 0; s < spatial_; ++s) {
          const float x_hat = graft::batch_norm::normalized(xs[base + s], mean_[c], inv_std_[c]);
          sum_dy += dys[base + s];
          sum_dy_x_hat += static_cast<double>(dys[base + s]) * x_hat;
        }
      }
      first_sum_[c] = sum_dy;
      second_sum_[c] = sum_dy_x_hat;
    }
    if (affine_) {
      float* grad_weight = graft::f32(*grads[0]);
      float* grad_bias = graft::f32(*grads[1]);
      for (int64_t c = 0; c < channels_; ++c) {
        grad_weight[c] += static_cast<float>(second_sum_[c]);
        grad_bias[c] += static_cast<float>(first_sum_[c]);
      }
    }
    if (!dx) return;
    const double count = static_cast<double>(n * spatial_);
    float* dxs = graft::f32(*dx);
    for (int64_t c = 0; c < channels_; ++c) {
      const float scale = graft::batch_norm::channel_scale(weight(params, c), inv_std_[c]);
      const float mean_dy = ctx.training ? static_cast<float>(first_sum_[c] / count) : 0.0f;
      const float mean_dy_x_hat = ctx.training ? static_cast<float>(second_sum_[c] / count) : 0.0f;
      for (int64_t i = 0; i < n; ++i) {
        const int64_t base = (i * channels_ + c) * spatial_;
        for (int64_t s = 0; s < spatial_; ++s) {
          const float x_hat = graft::batch_norm::normalized(xs[base + s], mean_[c], inv_std_[c]);
          dxs[base + s] = graft::batch_norm::input_gradient(dys[base + s], x_hat, scale, mean_dy,
                                                            mean_dy_x_hat);
        }
      }
    }
  }

 private:
  size_t running_index() const { return affine_ ? 2 : 0; }
  float weight(const DLTensor* const* params, int64_t c) const {
    return affine_ ? graft::f32(*params[0])[c] : 1.0f;
  }
  float bias(const DLTensor* const* params, int64_t c) const {
    return affine_ ? graft::f32(*params[1])[c] : 0.0f;
  }

  // mean_, inv_std_ from the batch (biased variance, as the normalisation uses); leaves the
  // channel sums in first_sum_ (sum x) and second_sum_ (sum (x - mean)^2). x: (N, C, S).
  void batch_statistics(const DLTensor& x, int64_t n) {
    const int64_t count = n * spatial_;
    check_count(n);
    const float* xs = graft::f32(x);
    for (int64_t c = 0; c < channels_; ++c) {
      double total = 0.0;
      for (int64_t i = 0; i < n; ++i) total += sum(xs + (i * channels_ + c) * spatial_, spatial_);
      const double mean = total / static_cast<double>(count);
      double squares = 0.0;
      for (int64_t i = 0; i < n; ++i)
        squares += sum_squared_deviation(xs + (i * channels_ + c) * spatial_, spatial_, mean);
      first_sum_[c] = total;
      second_sum_[c] = squares;
      mean_[c] = static_cast<float>(mean);
      inv_std_[c] = graft::batch_norm::inverse_std(
          static_cast<float>(squares / static_cast<double>(count)), eps_);
    }
  }

  void check_count(int64_t n) const {
    GRAFT_CHECK(n * spatial_ > 1,
                "batch_norm: training needs more than one value per channel, "
                "but the batch has "
                    << n << " sample(s) of " << shape_.str() << "; use a batch of at least 2");
  }

  void running_statistics(const float* running_mean, const float* running_var) {
    for (int64_t c = 0; c < channels_; ++c) {
      mean_[c] = running_mean[c];
      inv_std_[c] = graft::batch_norm::inverse_std(running_var[c], eps_);
    }
  }

  graft::batch_norm::cuda::Dims dims(int64_t n) const { return {n, channels_, spatial_}; }
  const float* param_or_null(const DLTensor* const* params, size_t k) const {
    return affine_ ? graft::f32(*params[k]) : nullptr;
  }

  // mean and inv_std in the device scratch (made on x's GPU at the first call there), as
  // batch_statistics or running_statistics leave them on the CPU; update_running in forward.
  graft::batch_norm::cuda::Statistics statistics_gpu(const graft::Context& ctx,
                                                     const DLTensor* const* params,
                                                     const DLTensor& x, int64_t n,
                                                     bool update_running) {
    if (!gpu_scratch_ || gpu_scratch_.device().device_id != x.device.device_id) {
      gpu_scratch_.reset();
      gpu_scratch_ = graft::DeviceMemory(
          host_, x.device, static_cast<size_t>(channels_) * 4 * sizeof(float), "batch_norm");
    }
    float* p = gpu_scratch_.as<float>();
    const graft::batch_norm::cuda::Statistics s{p, p + channels_, p + 2 * channels_,
                                                p + 3 * channels_};
    float* running_mean = graft::f32(*params[running_index()]);
    float* running_var = graft::f32(*params[running_index() + 1]);
    if (ctx.training) {
      check_count(n);
      graft::check_launch(
          "batch_norm",
          graft::batch_norm::cuda::batch_statistics(
              graft::f32(x), dims(n), eps_, s, update_running ? running_mean : nullptr,
              update_running ? running_var : nullptr, momentum_, ctx.stream));
    } else {
      graft::check_launch("batch_norm",
                          graft::batch_norm::cuda::running_statistics(
                              running_mean, running_var, channels_, eps_, s, ctx.stream));
    }
    return s;
  }

  void forward_gpu(const graft::Context& ctx, const DLTensor* const* params, const DLTensor& x,
                   DLTensor& y, int64_t n) {
    const auto s = statistics_gpu(ctx, params, x, n, true);
    graft::check_launch(
        "batch_norm", graft::batch_norm::cuda::normalize(graft::f32(x), graft::f32(y), dims(n),
                                                         param_or_null(params, 0),
                                                         param_or_null(params, 1), s, ctx.stream));
  }

  void backward_gpu(const graft::Context& ctx, const DLTensor* const* params, const DLTensor& x,
                    const DLTensor& dy, DLTensor* dx, DLTensor* const* grads, int64_t n) {
    const auto s = statistics_gpu(ctx, params, x, n, false);
    graft::check_launch("batch_norm",
                        graft::batch_norm::cuda::backward(
                            graft::f32(x), graft::f32(dy), dx ? graft::f32(*dx) : nullptr, dims(n),
                            ctx.training != 0, param_or_null(params, 0), s,
                            affine_ ? graft::f32(*grads[0]) : nullptr,
                            affine_ ? graft::f32(*grads[1]) : nullptr, ctx.stream));
  }

  graft::Host host_;
  graft::Shape shape_;
  double momentum_;
  float eps_;
  bool affine_;
  int64_t channels_;  // C
  int64_t spatial_;   // S
  // Per-channel scratch (C each), made once here so forward and backward never allocate;
  // it holds nothing between calls.
  graft::DeviceMemory scratch_;
  double* first_sum_ = nullptr;
  double* second_sum_ = nullptr;
  float* mean_ = nullptr;
  float* inv_std_ = nullptr;
  // batch_norm::cuda::Statistics, 4 x C floats, on x's GPU from the first call there.
  graft::DeviceMemory gpu_scratch_;
};

}  // namespace

GRAFT_PLUGIN_LIBRARY("batch_norm", "0.1.0",
                     graft::layer<BatchNorm>("batch_norm",
                                             "per-channel batch normalisation with running "
                                             "statistics (torch BatchNorm1d/2d)",
                                             GRAFT_ENTRY_BATCH_STATISTICS | graft::kCudaEntry))
