// The fully connected layer y = f(x W + b): x flattened to (N, D), W (D, H), b (H,); or, with
// flatten = false, applied at each position of a sequence (N, T..., D) -> (N, T..., H), as
// torch.nn.Linear on a (B, T, C) tensor: the positions are more rows of the same gemm.
// One gemm per matrix product; the bias add and the activation f share one loop (fused).
// Tensor parallelism (Megatron): shard(COLUMN) keeps W's columns (outputs) of one part,
// shard(ROW) keeps W's rows (inputs) of one part and yields partial sums.
// transpose_weight stores W as (H, D), torch.nn.Linear's layout, so that a GPT's output
// projection can be tied to its token embedding's (V, C) table (the config's `tie`).
#include <cmath>
#include <string>
#include <type_traits>

#include "graft/cpp/device.hpp"
#include "graft/cpp/elementwise.hpp"
#include "graft/cpp/plugin.hpp"
#include "linear_cuda.hpp"

namespace {

using graft::elementwise::Kind;

// Calls f(std::integral_constant<Kind, k>) so each activation gets its own inner loops,
// with the switch in elementwise::apply folded away at compile time.
template <class F>
void with_kind(Kind kind, F&& f) {
  switch (kind) {
    case Kind::none: return f(std::integral_constant<Kind, Kind::none>{});
    case Kind::relu: return f(std::integral_constant<Kind, Kind::relu>{});
    case Kind::leaky_relu: return f(std::integral_constant<Kind, Kind::leaky_relu>{});
    case Kind::sigmoid: return f(std::integral_constant<Kind, Kind::sigmoid>{});
    case Kind::tanh: return f(std::integral_constant<Kind, Kind::tanh>{});
    case Kind::gelu: return f(std::integral_constant<Kind, Kind::gelu>{});
  }
}

// y = f(y + b) in place over (N, H); pre (N, H) receives y + b when backward needs it.
template <Kind K, bool kHasBias>
void bias_activation(float* y, const float* bias, float* pre, int64_t n, int64_t h, float slope) {
  for (int64_t i = 0; i < n; ++i) {
    float* row = y + i * h;
    if (pre) {
      float* pre_row = pre + i * h;
      for (int64_t j = 0; j < h; ++j) {
        const float z = kHasBias ? row[j] + bias[j] : row[j];
        pre_row[j] = z;
        row[j] = graft::elementwise::apply(K, z, slope);
      }
    } else {
      for (int64_t j = 0; j < h; ++j) {
        const float z = kHasBias ? row[j] + bias[j] : row[j];
        row[j] = graft::elementwise::apply(K, z, slope);
      }
    }
  }
}

// g *= f'(y) in place: dz over dy's own memory (GRAFT_WORKSPACE_SCRATCH_OVER_DY). A loop of
// its own, so that the compiler need not guard a vector loop against dz overlapping dy.
template <Kind K>
void scale_by_derivative(float* __restrict g, const float* __restrict y, int64_t count,
                         float slope) {
  for (int64_t i = 0; i < count; ++i)
    g[i] = g[i] * graft::elementwise::derivative(K, y[i], y[i], slope);
}

// dz = dy * f'(.) over `count` elements. dz holds the pre-activation on entry when the
// derivative needs it (gelu) and is overwritten in place; otherwise f' comes from y, and dz
// may be dy itself.
template <Kind K>
void activation_gradient(const float* dy, const float* y, float* dz, bool dz_holds_pre,
                         int64_t count, float slope) {
  if (dz_holds_pre) {
    for (int64_t i = 0; i < count; ++i)
      dz[i] = dy[i] * graft::elementwise::derivative(K, dz[i], y[i], slope);
  } else if (dz == dy) {
    scale_by_derivative<K>(dz, y, count, slope);
  } else {
    // For relu and leaky_relu (slope >= 0), y > 0 exactly when x > 0, so y stands in for x.
    for (int64_t i = 0; i < count; ++i)
      dz[i] = dy[i] * graft::elementwise::derivative(K, y[i], y[i], slope);
  }
}

class Linear : public graft::Layer {
 public:
  static std::vector<graft::OptionDef> options() {
    return {
        graft::required(graft::option_int("units", 1, "output features H")).range(1, 1 << 30),
        graft::option_bool("bias", true, "add a learned bias b (initialised to zeros)"),
        graft::option_string("activation", "none", "activation fused after the bias add",
                             graft::elementwise::kNames),
        graft::option_float("slope", 0.01, "negative slope of leaky_relu").range(0.0, 1.0),
        graft::option_bool("flatten", true,
                           "true: the whole sample is one input vector; false: the layer maps "
                           "the last axis at each position (T, C) -> (T, units)"),
        graft::option_string("init", "kaiming_uniform",
                             "weight init; kaiming_uniform is torch.nn.Linear's U(+-1/sqrt(D))",
                             "xavier_uniform|kaiming_normal|kaiming_uniform|zeros"),
        graft::option_bool("transpose_weight", false,
                           "store the weight as (units, inputs), torch.nn.Linear's layout and "
                           "an embedding table's, so that `tie` can share it"),
    };
  }

  Linear(const graft::Options& o, const graft::Shape& input, graft::Host)
      : input_(input),
        flatten_(o.get_bool("flatten") || input.ndim == 0),
        positions_(
            o.get_bool("flatten") || input.ndim == 0 ? 1 : input.numel() / input[input.ndim - 1]),
        in_features_(input.numel() / positions_),
        out_features_(o.get_int("units")),
        whole_in_(in_features_),
        whole_out_(out_features_),
        has_bias_(o.get_bool("bias")),
        transposed_(o.get_bool("transpose_weight")),
        slope_(static_cast<float>(o.get_float("slope"))),
        init_name_(o.get_string("init")) {
    GRAFT_CHECK(in_features_ >= 1, "linear: the input " << input.str() << " has no features");
    const std::string activation = o.get_string("activation");
    activation_ = activation;
    GRAFT_CHECK(graft::elementwise::parse(activation.c_str(), &kind_),
                "linear: unknown activation '" << activation << "'; use one of "
                                               << graft::elementwise::kNames);
    keeps_pre_activation_ = !graft::elementwise::derivative_from_output(kind_);
  }

  // COLUMN: W (D, H/n), b (H/n,), y (N, H/n) computed from the whole x; the fused activation
  // runs on the part (every fused kind is element-wise). ROW: W (D/n, H), x (N, D/n), y the
  // partial sum x W over this part's inputs; b is kept whole and added by part 0 only, so the
  // all-reduced sum adds it once.
  void shard(int mode, int index, int count) override {
    GRAFT_CHECK(mode_ == GRAFT_SHARD_NONE, "linear: shard() called twice");
    GRAFT_CHECK(count >= 1 && index >= 0 && index < count,
                "linear: shard " << index << " of " << count << " is out of range");
    auto divisible = [&](int64_t features, const char* what, const char* fix) {
      GRAFT_CHECK(features % count == 0,
                  "linear: " << what << " " << features << " does not split into " << count
                             << " equal tensor-parallel parts; " << fix << " divisible by " << count
                             << ", or change [parallel] (strategy or the number of ranks)");
    };
    if (mode == GRAFT_SHARD_COLUMN) {
      divisible(out_features_, "units =", "choose units");
      out_features_ /= count;
    } else if (mode == GRAFT_SHARD_ROW) {
      GRAFT_CHECK(input_.ndim == 1 || !flatten_,
                  "linear: row sharding splits the input's last axis, but the input "
                      << input_.str() << " is flattened whole; set flatten = false to map "
                      << "the last axis at each position");
      GRAFT_CHECK(kind_ == Kind::none,
                  "linear: a row-sharded linear yields partial sums, so it cannot fuse "
                  "activation = \""
                      << activation_
                      << "\" (it must follow the all-reduce); put the activation "
                         "in its own layer");
      divisible(in_features_, "its input features (the previous layer's units)",
                "choose that layer's units");
      in_features_ /= count;
    } else {
      GRAFT_CHECK(mode == GRAFT_SHARD_NONE, "linear: unknown shard mode " << mode);
    }
    mode_ = mode;
    index_ = index;
  }

  graft::Shape output_shape() const override {
    if (flatten_) return graft::Shape{out_features_};
    graft::Shape out = input_;
    out.dims[out.ndim - 1] = out_features_;
    return out;
  }

  std::vector<graft::Param> parameters() const override {
    // Fans stay the whole layer's, so a part is initialised as its slice of the whole.
    graft::Param weight{"weight",
                        transposed_ ? graft::Shape{out_features_, in_features_}
                                    : graft::Shape{in_features_, out_features_},
                        GRAFT_INIT_ZEROS,
                        whole_in_,
                        whole_out_,
                        1.0f,
                        false};
    const int out_axis = transposed_ ? 0 : 1;
    weight.shard_axis = mode_ == GRAFT_SHARD_COLUMN ? out_axis
                        : mode_ == GRAFT_SHARD_ROW  ? 1 - out_axis
                                                    : -1;
    if (init_name_ == "xavier_uniform") weight.init = GRAFT_INIT_XAVIER_UNIFORM;
    if (init_name_ == "kaiming_normal") weight.init = GRAFT_INIT_KAIMING_NORMAL;
    if (init_name_ == "kaiming_uniform") {
      // gain 1/sqrt(3) turns U(+-gain*sqrt(3/D)) into torch.nn.Linear's U(+-1/sqrt(D)).
      weight.init = GRAFT_INIT_KAIMING_UNIFORM;
      weight.gain = 0.57735026918962576f;
    }
    std::vector<graft::Param> params{weight};
    if (has_bias_) {
      graft::Param bias{
          "bias", graft::Shape{out_features_}, GRAFT_INIT_ZEROS, whole_in_, whole_out_, 1.0f, true};
      bias.shard_axis = mode_ == GRAFT_SHARD_COLUMN ? 0 : -1;
      params.push_back(bias);
    }
    return params;
  }

  // dz (N, H) lives here in backward; with gelu, forward leaves the pre-activation in it.
  int64_t workspace_per_sample() const override {
    return kind_ == Kind::none ? 0 : positions_ * out_features_;
  }
  // Without gelu's pre-activation, dz is made from y in backward: nothing is kept, and dz may
  // overwrite dy element by element.
  graft_workspace_use workspace_use() const override {
    return keeps_pre_activation_ ? GRAFT_WORKSPACE_KEPT : GRAFT_WORKSPACE_SCRATCH_OVER_DY;
  }

  // x: (N, D...), y: (N, H); per position, (N * T, D) and (N * T, H).
  void forward(const graft::Context& ctx, const DLTensor* const* params, const DLTensor& x_given,
               DLTensor& y_given, DLTensor* workspace) override {
    graft::require_device(x_given, "linear");
    graft::View x_rows = as_rows(x_given, in_features_), y_rows = as_rows(y_given, out_features_);
    const DLTensor& x = *x_rows;
    DLTensor& y = *y_rows;
    graft::gemm(ctx, false, transposed_, 1.0f, x, *params[0], 0.0f, y);
    // A row part other than 0 adds no bias: the parts' sum must hold it once.
    const bool add_bias = has_bias_ && !(mode_ == GRAFT_SHARD_ROW && index_ != 0);
    if (kind_ == Kind::none && !add_bias) return;
    const int64_t n = graft::rows(y);
    float* pre = nullptr;
    if (keeps_pre_activation_) pre = graft::f32(checked_workspace(workspace, n));
    const float* bias = add_bias ? graft::f32(*params[1]) : nullptr;
    if (graft::on_cuda(x))
      return graft::check_launch(
          "linear", graft::linear_cuda::bias_activation(kind_, graft::f32(y), bias, pre, n,
                                                        out_features_, slope_, ctx.stream));
    with_kind(kind_, [&](auto k) {
      if (add_bias)
        bias_activation<decltype(k)::value, true>(graft::f32(y), bias, pre, n, out_features_,
                                                  slope_);
      else
        bias_activation<decltype(k)::value, false>(graft::f32(y), bias, pre, n, out_features_,
                                                   slope_);
    });
  }

  // dW += x^T dz (transposed: dz^T x), db += sum over rows of dz, dx = dz W^T; dz = dy * f'(.) (N,
  // H). A row part's dy is the whole output's gradient, so every part computes the same db and the
  // replicas of b stay equal; a column part's dx is a partial sum the strategy reduces.
  void backward(const graft::Context& ctx, const DLTensor* const* params, const DLTensor& x_given,
                const DLTensor& y_given, const DLTensor& dy_given, DLTensor* dx_given,
                DLTensor* const* grads, DLTensor* workspace) override {
    graft::require_device(x_given, "linear");
    graft::View x_rows = as_rows(x_given, in_features_), y_rows = as_rows(y_given, out_features_),
                dy_rows = as_rows(dy_given, out_features_), dx_rows;
    if (dx_given) dx_rows = as_rows(*dx_given, in_features_);
    const DLTensor &x = *x_rows, &y = *y_rows, &dy = *dy_rows;
    DLTensor* dx = dx_given ? dx_rows.get() : nullptr;
    const DLTensor* dz = &dy;
    graft::View scratch;
    if (kind_ != Kind::none) {
      const int64_t n = graft::rows(dy);
      scratch =
          graft::View(graft::f32(checked_workspace(workspace, n)), dy.device, {n, out_features_});
      if (graft::on_cuda(x))
        graft::check_launch("linear",
                            graft::linear_cuda::activation_gradient(
                                kind_, graft::f32(dy), graft::f32(y), graft::f32(*scratch),
                                keeps_pre_activation_, n * out_features_, slope_, ctx.stream));
      else
        with_kind(kind_, [&](auto k) {
          activation_gradient<decltype(k)::value>(graft::f32(dy), graft::f32(y),
                                                  graft::f32(*scratch), keeps_pre_activation_,
                                                  n * out_features_, slope_);
        });
      dz = scratch.get();
    }
    if (transposed_)
      graft::gemm(ctx, true, false, 1.0f, *dz, x, 1.0f, *grads[0]);
    else
      graft::gemm(ctx, true, false, 1.0f, x, *dz, 1.0f, *grads[0]);
    if (has_bias_) graft::sum_rows(ctx, *dz, 1.0f, *grads[1]);
    if (dx) graft::gemm(ctx, false, !transposed_, 1.0f, *dz, *params[0], 0.0f, *dx);
  }

 private:
  // t (N, ...) as (N * positions, features): the rows of the gemm.
  graft::View as_rows(const DLTensor& t, int64_t features) const {
    return graft::View(graft::f32(t), t.device, {graft::rows(t) * positions_, features});
  }

  DLTensor& checked_workspace(DLTensor* workspace, int64_t n) const {
    GRAFT_CHECK(workspace && graft::numel(*workspace) >= n * out_features_,
                "linear: the host passed no workspace of (" << n << ", " << out_features_
                                                            << ") floats for activation");
    return *workspace;
  }

  graft::Shape input_;
  bool flatten_;          // false: per position, the output keeps the input's leading axes
  int64_t positions_;     // T: rows of the gemm per sample (1 when flattened)
  int64_t in_features_;   // D (this part's, after a ROW shard)
  int64_t out_features_;  // H (this part's, after a COLUMN shard)
  int64_t whole_in_, whole_out_;
  int mode_ = GRAFT_SHARD_NONE;
  int index_ = 0;
  bool has_bias_;
  bool transposed_;  // W (H, D) rather than (D, H)
  float slope_;
  std::string init_name_;
  std::string activation_;
  Kind kind_ = Kind::none;
  bool keeps_pre_activation_ = false;
};

}  // namespace

// Backward reads y only to make dz, before the gemm that writes dx: dx may be written over y.
GRAFT_PLUGIN_LIBRARY("linear", "0.1.0",
                     graft::layer<Linear>("linear", "fully connected y = f(x W + b), f fused",
                                          GRAFT_ENTRY_SHARD_COLUMN | GRAFT_ENTRY_SHARD_ROW |
                                              GRAFT_ENTRY_DX_OVER_OUTPUT | graft::kCudaEntry))
