// The 2-D convolution y = f(conv(x, W) + b) over (C, H, W) samples, with stride, padding,
// dilation and groups: host gemms over a chunk of samples, on im2col or Winograd F(2x2, 3x3);
// on a GPU, im2col's kernels (conv2d_cuda.cu) and cuBLAS over the whole batch at once.
#include <algorithm>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "conv2d_cuda.hpp"
#include "graft/cpp/device.hpp"
#include "graft/cpp/elementwise.hpp"
#include "graft/cpp/plugin.hpp"
#include "im2col.hpp"
#include "winograd_tiles.hpp"

namespace {

using graft::elementwise::Kind;

// Dimension letters: N batch, C input channels, H x W input, O output channels, G groups,
// k x k kernel, OH x OW output, P = OH * OW, B samples in one chunk, T Winograd tiles per
// sample, CG = C / G and OG = O / G. Parameters: W (O, CG, k, k), b (O,).

// Floats of a chunk's product (im2col) or M (Winograd) the layer aims at: small enough that
// what one loop writes is still in cache when the next reads it, large enough that the gemms'
// inner dimension stays long and their calls few (OpenBLAS splits a gemm over its threads
// only when it is large). Measured on fashion_cnn's convolutions at batch 128 with
// tests/bench/bench_conv.cpp, 2 threads: its first (im2col, 25088 floats a sample) ran best
// with chunks of 4 to 20 samples, 20% slower with 74; its second (Winograd, 50176 floats a
// sample) best with 20, 15% slower with 5 or 128.
constexpr int64_t kIm2colChunkFloats = int64_t{1} << 19;    // 2 MiB
constexpr int64_t kWinogradChunkFloats = int64_t{1} << 20;  // 4 MiB

// Calls f(std::integral_constant<Kind, k>) so each activation gets its own inner loops.
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

// A row-major (rows, cols) matrix at data, as the host gemm takes it.
graft::View matrix(float* data, int64_t rows, int64_t cols, DLDevice device) {
  return graft::View(data, device, {rows, cols});
}

class Conv2d : public graft::Layer {
 public:
  static std::vector<graft::OptionDef> options() {
    return {
        graft::required(graft::option_int("out_channels", 1, "output channels O"))
            .range(1, 1 << 16),
        graft::option_int("kernel_size", 3, "the kernel is kernel_size x kernel_size")
            .range(1, 1024),
        graft::option_int("stride", 1, "step between output pixels").range(1, 1024),
        graft::option_int("padding", 0, "zeros added on every side").range(0, 1024),
        graft::option_int("dilation", 1, "spacing between kernel taps").range(1, 1024),
        graft::option_int("groups", 1, "channel groups; must divide C and out_channels")
            .range(1, 1 << 16),
        graft::option_bool("bias", true, "add a learned bias per output channel (zeros)"),
        graft::option_string("activation", "none", "activation fused after the bias add",
                             graft::elementwise::kNames),
        graft::option_float("slope", 0.01, "negative slope of leaky_relu").range(0.0, 1.0),
        graft::option_string("init", "kaiming_uniform",
                             "weight init; kaiming_uniform is torch.nn.Conv2d's "
                             "U(+-1/sqrt(C/groups*k*k))",
                             "xavier_uniform|kaiming_normal|kaiming_uniform|zeros"),
        graft::option_string("algorithm", "auto",
                             "winograd (3x3, stride 1, dilation 1: 2.25x fewer products) or "
                             "im2col; auto takes winograd where it applies and pays",
                             "auto|im2col|winograd"),
    };
  }

  Conv2d(const graft::Options& o, const graft::Shape& input, graft::Host)
      : out_channels_(o.get_int("out_channels")),
        groups_(o.get_int("groups")),
        has_bias_(o.get_bool("bias")),
        slope_(static_cast<float>(o.get_float("slope"))),
        init_name_(o.get_string("init")) {
    GRAFT_CHECK(input.ndim == 3, "conv2d: the input per sample is "
                                     << input.str() << "; conv2d needs (C, H, W), e.g. the idx "
                                     << "reader's shape = \"image\" gives (1, 28, 28)");
    const int64_t kernel = o.get_int("kernel_size"), padding = o.get_int("padding");
    const int64_t stride = o.get_int("stride"), dilation = o.get_int("dilation");
    im2col_ = graft::conv::Lowering{input[0],
                                    input[1],
                                    input[2],
                                    kernel,
                                    out_channels_,
                                    {input[1], kernel, stride, padding, dilation},
                                    {input[2], kernel, stride, padding, dilation}};
    GRAFT_CHECK(input[0] % groups_ == 0 && out_channels_ % groups_ == 0,
                "conv2d: groups = " << groups_ << " must divide both the input channels ("
                                    << input[0] << ") and out_channels (" << out_channels_ << ")");
    GRAFT_CHECK(im2col_.pixels() >= 1,
                "conv2d: the input " << input.str() << " is too small for the kernel: "
                                     << "kernel_size " << kernel << " with dilation " << dilation
                                     << " spans " << dilation * (kernel - 1) + 1
                                     << " pixels, but the input padded by " << padding << " is "
                                     << input[1] + 2 * padding << " x " << input[2] + 2 * padding
                                     << "; lower kernel_size or dilation, or raise padding");
    const std::string activation = o.get_string("activation");
    GRAFT_CHECK(graft::elementwise::parse(activation.c_str(), &kind_),
                "conv2d: unknown activation '" << activation << "'; use one of "
                                               << graft::elementwise::kNames);
    keeps_pre_activation_ = !graft::elementwise::derivative_from_output(kind_);

    const std::string algorithm = o.get_string("algorithm");
    const bool fits = kernel == 3 && stride == 1 && dilation == 1;
    GRAFT_CHECK(fits || algorithm != "winograd",
                "conv2d: algorithm = \"winograd\" needs kernel_size 3, stride 1 and dilation 1 "
                "(got "
                    << kernel << ", " << stride << ", " << dilation
                    << "); use \"im2col\" or \"auto\"");
    // With few channels per group the transformed products are too thin to gain.
    use_winograd_ = algorithm == "winograd" ||
                    (algorithm == "auto" && fits && in_per_group() >= 8 && out_per_group() >= 8);
    if (use_winograd_) {
      winograd_ = graft::conv::WinogradTiles(input[0], out_channels_, input[1], input[2], padding);
      transformed_weight_.resize(static_cast<size_t>(16 * out_channels_ * in_per_group()));
      transformed_weight_grad_.resize(transformed_weight_.size());
    }
    // One chunk's dcol or dV: the largest chunk is that of an unbounded batch.
    input_gradient_.resize(static_cast<size_t>(chunk_samples(int64_t{1} << 40) * input_rows()));
  }

  graft::Shape output_shape() const override {
    return graft::Shape{out_channels_, im2col_.out_height(), im2col_.out_width()};
  }

  std::vector<graft::Param> parameters() const override {
    const int64_t k = im2col_.kernel;
    // torch's fans for a (O, CG, k, k) weight: fan_in CG*k*k, fan_out O*k*k.
    graft::Param weight{"weight",
                        graft::Shape{out_channels_, in_per_group(), k, k},
                        GRAFT_INIT_ZEROS,
                        in_per_group() * k * k,
                        out_channels_ * k * k,
                        1.0f,
                        false};
    if (init_name_ == "xavier_uniform") weight.init = GRAFT_INIT_XAVIER_UNIFORM;
    if (init_name_ == "kaiming_normal") weight.init = GRAFT_INIT_KAIMING_NORMAL;
    if (init_name_ == "kaiming_uniform") {
      // gain 1/sqrt(3) turns U(+-gain*sqrt(3/fan_in)) into torch's U(+-1/sqrt(fan_in)).
      weight.init = GRAFT_INIT_KAIMING_UNIFORM;
      weight.gain = 0.57735026918962576f;
    }
    std::vector<graft::Param> params{weight};
    if (has_bias_)
      params.push_back(graft::Param{"bias", graft::Shape{out_channels_}, GRAFT_INIT_ZEROS,
                                    weight.fan_in, weight.fan_out, 1.0f, true});
    return params;
  }

  // Per sample: the pre-activation (O, P) when f' needs it (gelu) and the sample's columns of
  // im2col's col (C*k*k, P) or Winograd's V (16, C, T), both kept from forward for backward;
  // and room for one sample of the chunk's products, (O, P) or M (16, O, T): a chunk of
  // B <= N samples uses B samples' room, which the (N, .) workspace always has. A GPU always
  // takes im2col, so a Winograd layer also has room for its col and product (the host does
  // not say the device before it plans).
  int64_t workspace_per_sample() const override {
    const int64_t im2col_rows = (im2col_.patch() + out_channels_) * im2col_.pixels();
    return (keeps_pre_activation_ ? out_channels_ * im2col_.pixels() : 0) +
           std::max(input_rows() + output_rows(), im2col_rows);
  }

  // x: (N, C, H, W), y: (N, O, OH, OW).
  void forward(const graft::Context& ctx, const DLTensor* const* params, const DLTensor& x,
               DLTensor& y, DLTensor* workspace) override {
    graft::require_device(x, "conv2d");
    const float* bias = has_bias_ ? graft::f32(*params[1]) : nullptr;
    float* weight = graft::f32(*params[0]);
    if (graft::on_cuda(x)) return forward_cuda(ctx, weight, bias, x, y, workspace);
    const Scratch s = scratch(x, workspace);
    if (use_winograd_) weight = transform_weights(weight);
    for (int64_t first = 0; first < s.n; first += s.chunk) {
      const int64_t b = std::min(s.chunk, s.n - first), at = first * output_numel();
      float* y_chunk = graft::f32(y) + at;
      float* pre = s.pre ? s.pre + at : nullptr;
      float* inputs = s.inputs + first * input_rows();
      const float* x_chunk = graft::f32(x) + first * input_numel();
      if (use_winograd_) {
        winograd_.gather_input(x_chunk, b, inputs);
        multiply(ctx, x.device, b, Product::outputs, weight, inputs, s.outputs, true);
        with_kind(kind_, [&](auto f) {
          winograd_.scatter_output<decltype(f)::value>(s.outputs, b, bias, y_chunk, pre, slope_);
        });
      } else {
        float* product = b == 1 ? y_chunk : s.outputs;  // one sample: already y's layout
        im2col_.im2col(x_chunk, b, inputs);
        multiply(ctx, x.device, b, Product::outputs, weight, inputs, product, false);
        if (kind_ == Kind::none && !bias && product == y_chunk) continue;
        with_kind(kind_, [&](auto f) {
          im2col_.scatter_output<decltype(f)::value>(product, b, bias, y_chunk, pre, slope_);
        });
      }
    }
  }

  // dz = dy * f'(.); dW += dz (inputs)^T, db += sums of dz, dx from W^T dz. Winograd keeps
  // dW in the transformed domain over all chunks and brings it back once. The workspace is
  // only read, so backward may run again on the same forward.
  void backward(const graft::Context& ctx, const DLTensor* const* params, const DLTensor& x,
                const DLTensor& y, const DLTensor& dy, DLTensor* dx, DLTensor* const* grads,
                DLTensor* workspace) override {
    graft::require_device(x, "conv2d");
    float* bias_grad = has_bias_ ? graft::f32(*grads[1]) : nullptr;
    float* weight = graft::f32(*params[0]);
    float* weight_grad = graft::f32(*grads[0]);
    if (graft::on_cuda(x))
      return backward_cuda(ctx, weight, x, y, dy, dx, weight_grad, bias_grad, workspace);
    const Scratch s = scratch(x, workspace);
    if (use_winograd_) {
      weight = transform_weights(weight);
      std::fill(transformed_weight_grad_.begin(), transformed_weight_grad_.end(), 0.0f);
      weight_grad = transformed_weight_grad_.data();
    }
    float* dz = s.outputs;
    for (int64_t first = 0; first < s.n; first += s.chunk) {
      const int64_t b = std::min(s.chunk, s.n - first), at = first * output_numel();
      float* inputs = s.inputs + first * input_rows();
      with_kind(kind_, [&](auto f) {
        constexpr Kind kF = decltype(f)::value;
        const float* pre = s.pre ? s.pre + at : nullptr;
        if (use_winograd_)
          winograd_.gather_output_gradient<kF>(graft::f32(dy) + at, graft::f32(y) + at, pre, b, dz,
                                               bias_grad, slope_);
        else
          im2col_.gather_output_gradient<kF>(graft::f32(dy) + at, graft::f32(y) + at, pre, b, dz,
                                             bias_grad, slope_);
      });
      multiply(ctx, x.device, b, Product::weight_gradient, weight_grad, inputs, dz, use_winograd_);
      if (!dx) continue;
      float* input_gradient = input_gradient_.data();
      multiply(ctx, x.device, b, Product::input_gradient, weight, input_gradient, dz,
               use_winograd_);
      float* dx_chunk = graft::f32(*dx) + first * input_numel();
      if (use_winograd_)
        winograd_.scatter_input_gradient(input_gradient, b, dx_chunk);
      else
        im2col_.col2im(input_gradient, b, dx_chunk);
    }
    if (use_winograd_)
      graft::conv::WinogradTiles::add_weight_gradient(
          transformed_weight_grad_.data(), out_channels_ * in_per_group(), graft::f32(*grads[0]));
  }

 private:
  int64_t in_per_group() const { return im2col_.channels / groups_; }  // CG
  int64_t out_per_group() const { return out_channels_ / groups_; }    // OG
  // Floats per sample of the chunk's input-side matrix (col or V) and output-side one.
  int64_t input_rows() const {
    return use_winograd_ ? 16 * im2col_.channels * winograd_.tiles()
                         : im2col_.patch() * im2col_.pixels();
  }
  int64_t output_rows() const {
    return use_winograd_ ? 16 * out_channels_ * winograd_.tiles()
                         : out_channels_ * im2col_.pixels();
  }
  int64_t chunk_samples(int64_t n) const {
    const int64_t target = use_winograd_ ? kWinogradChunkFloats : kIm2colChunkFloats;
    return std::clamp<int64_t>(target / output_rows(), 1, n);
  }
  int64_t input_numel() const { return im2col_.channels * im2col_.height * im2col_.width; }
  int64_t output_numel() const { return out_channels_ * im2col_.pixels(); }

  // Where the workspace (N, workspace_per_sample()) keeps what, for a batch of N.
  struct Scratch {
    int64_t n, chunk;  // N, B
    float* pre;        // (N, O, P) or null
    float* inputs;     // each chunk's col (C*k*k, B*P) or V (16, C, B*T), one after another
    float* outputs;    // one chunk's product (O, B*P) or M (16, O, B*T); dz or dM in backward
  };
  // A GPU takes im2col over the whole batch as one chunk, so that its gemms are wide.
  // x's device has passed graft::require_device.
  Scratch scratch(const DLTensor& x, DLTensor* workspace) const {
    const bool gpu = graft::on_cuda(x);
    GRAFT_CHECK(graft::cols(x) == input_numel(),
                "conv2d: got samples of " << graft::cols(x)
                                          << " values, expected C*H*W = " << input_numel());
    const int64_t n = graft::rows(x);
    GRAFT_CHECK(workspace && graft::numel(*workspace) >= n * workspace_per_sample(),
                "conv2d: the host passed no workspace of (" << n << ", " << workspace_per_sample()
                                                            << ") floats");
    float* pre = keeps_pre_activation_ ? graft::f32(*workspace) : nullptr;
    float* inputs = graft::f32(*workspace) + (pre ? n * output_numel() : 0);
    if (gpu) return Scratch{n, n, pre, inputs, inputs + n * im2col_.patch() * im2col_.pixels()};
    return Scratch{n, chunk_samples(n), pre, inputs, inputs + n * input_rows()};
  }

  // x (N, C, H, W) -> col (C*k*k, N*P) -> the product W col (O, N*P) -> y (N, O, OH, OW).
  void forward_cuda(const graft::Context& ctx, float* weight, const float* bias, const DLTensor& x,
                    DLTensor& y, DLTensor* workspace) {
    namespace kernels = graft::conv::cuda;
    const Scratch s = scratch(x, workspace);
    graft::check_launch("conv2d",
                        kernels::im2col(im2col_, graft::f32(x), s.n, s.inputs, ctx.stream));
    multiply(ctx, x.device, s.n, Product::outputs, weight, s.inputs, s.outputs, false);
    graft::check_launch("conv2d",
                        kernels::scatter_output(im2col_, kind_, s.outputs, s.n, bias, graft::f32(y),
                                                s.pre, slope_, ctx.stream));
  }

  // dz (O, N*P), db, dW += dz col^T, then dcol = W^T dz over col and col2im's gather into dx.
  // col is made again from x first, since a backward with dx overwrites it: backward may
  // then run again on the same forward, as on the CPU.
  void backward_cuda(const graft::Context& ctx, float* weight, const DLTensor& x, const DLTensor& y,
                     const DLTensor& dy, DLTensor* dx, float* weight_grad, float* bias_grad,
                     DLTensor* workspace) {
    namespace kernels = graft::conv::cuda;
    const Scratch s = scratch(x, workspace);
    float* col = s.inputs;
    float* dz = s.outputs;
    graft::check_launch("conv2d", kernels::im2col(im2col_, graft::f32(x), s.n, col, ctx.stream));
    graft::check_launch(
        "conv2d", kernels::output_gradient(im2col_, kind_, graft::f32(dy), graft::f32(y), s.pre,
                                           s.n, dz, slope_, ctx.stream));
    if (bias_grad)
      graft::check_launch("conv2d",
                          kernels::bias_gradient(im2col_, dz, s.n, bias_grad, ctx.stream));
    multiply(ctx, x.device, s.n, Product::weight_gradient, weight_grad, col, dz, false);
    if (!dx) return;
    multiply(ctx, x.device, s.n, Product::input_gradient, weight, col, dz, false);
    graft::check_launch("conv2d", kernels::col2im(im2col_, col, s.n, graft::f32(*dx), ctx.stream));
  }

  // U (16, O, CG) from W into transformed_weight_; returns it.
  float* transform_weights(const float* weight) {
    graft::conv::WinogradTiles::transform_weights(weight, out_channels_ * in_per_group(),
                                                  transformed_weight_.data());
    return transformed_weight_.data();
  }

  // The chunk's products, one gemm per group (and per Winograd position xi) on blocks of
  // rows of weights (positions, O, K), inputs (positions, C*k*k or C, B*cols) and outputs
  // (positions, O, B*cols), where K = CG*k*k (im2col) or CG (Winograd) and cols = P or T.
  // On the CPU a product that overwrites its target is zeroed here and accumulated with
  // beta = 1: OpenBLAS 0.3.21's own beta = 0 pass is slower than memset, a quarter of the
  // gemm time on fashion_cnn's second convolution with 2 threads. cuBLAS takes beta = 0.
  enum class Product { outputs, weight_gradient, input_gradient };
  void multiply(const graft::Context& ctx, DLDevice device, int64_t batch, Product product,
                float* weights, float* inputs, float* outputs, bool winograd) {
    const int64_t positions = winograd ? 16 : 1, og = out_per_group();
    const int64_t k = in_per_group() * (winograd ? 1 : im2col_.kernel * im2col_.kernel);
    const int64_t width = batch * (winograd ? winograd_.tiles() : im2col_.pixels());
    const bool cpu = device.device_type == kDLCPU;
    const float overwrite = cpu ? 1.0f : 0.0f;  // beta of a product that overwrites
    if (cpu && product == Product::outputs)
      std::memset(outputs, 0, sizeof(float) * positions * out_channels_ * width);
    if (cpu && product == Product::input_gradient)
      std::memset(inputs, 0, sizeof(float) * positions * groups_ * k * width);
    for (int64_t block = 0; block < positions * groups_; ++block) {
      graft::View w = matrix(weights + block * og * k, og, k, device);
      graft::View in = matrix(inputs + block * k * width, k, width, device);
      graft::View out = matrix(outputs + block * og * width, og, width, device);
      switch (product) {
        case Product::outputs:  // out = w in
          graft::gemm(ctx, false, false, 1.0f, *w, *in, overwrite, *out);
          break;
        case Product::weight_gradient:  // w += out in^T
          graft::gemm(ctx, false, true, 1.0f, *out, *in, 1.0f, *w);
          break;
        case Product::input_gradient:  // in = w^T out
          graft::gemm(ctx, true, false, 1.0f, *w, *out, overwrite, *in);
          break;
      }
    }
  }

  graft::conv::Lowering im2col_;         // geometry of every path; the im2col loops
  graft::conv::WinogradTiles winograd_;  // the Winograd loops, when use_winograd_
  int64_t out_channels_;                 // O
  int64_t groups_;                       // G
  bool has_bias_;
  float slope_;
  std::string init_name_;
  Kind kind_ = Kind::none;
  bool keeps_pre_activation_ = false;
  bool use_winograd_ = false;
  // Made once here, reused by every call: one chunk's dcol or dV, and the transformed
  // weights U (16, O, CG) and their gradient.
  std::vector<float> input_gradient_, transformed_weight_, transformed_weight_grad_;
};

}  // namespace

GRAFT_PLUGIN_LIBRARY("conv2d", "0.1.0",
                     graft::layer<Conv2d>("conv2d",
                                          "2-D convolution y = f(conv(x, W) + b) over (C, H, W), "
                                          "f fused; im2col or Winograd + gemm",
                                          graft::kCudaEntry))
