// The built-in activations: relu, leaky_relu, sigmoid, tanh and gelu (element-wise, the same
// math linear fuses, from graft/cpp/elementwise.hpp) and softmax over the last axis.
#include "activations_cuda.hpp"
#include "graft/cpp/device.hpp"
#include "graft/cpp/elementwise.hpp"
#include "graft/cpp/plugin.hpp"
#include "softmax_row.hpp"

namespace {

using graft::elementwise::Kind;

void require_same_size(const DLTensor& a, const DLTensor& b, const char* name) {
  GRAFT_CHECK(graft::numel(a) == graft::numel(b), name << ": tensors of " << graft::numel(a)
                                                       << " and " << graft::numel(b)
                                                       << " elements; they must match");
}

// y = f(x) element by element; K is fixed at compile time so the loops stay tight.
template <Kind K>
class Elementwise : public graft::Activation {
 public:
  static std::vector<graft::OptionDef> options() {
    if constexpr (K == Kind::leaky_relu)
      return {graft::option_float("slope", 0.01, "slope for negative inputs").range(0.0, 1.0)};
    else
      return {};
  }

  Elementwise(const graft::Options& o, graft::Host)
      : slope_(K == Kind::leaky_relu ? static_cast<float>(o.get_float("slope")) : 0.0f) {}

  // x, y: any shape, same element count.
  void forward(const graft::Context& ctx, const DLTensor& x, DLTensor& y) override {
    require_same_size(x, y, "activation forward");
    graft::require_device(x, "activation");
    if (graft::on_cuda(x))
      return graft::check_launch("activation forward", graft::activations_cuda::forward(
                                                           K, graft::f32(x), graft::f32(y),
                                                           graft::numel(x), slope_, ctx.stream));
    const float* xs = graft::f32(x);
    float* ys = graft::f32(y);
    const int64_t count = graft::numel(x);
    for (int64_t i = 0; i < count; ++i) ys[i] = graft::elementwise::apply(K, xs[i], slope_);
  }

  // dx = dy * f'(x); dx may alias dy.
  void backward(const graft::Context& ctx, const DLTensor& x, const DLTensor& y, const DLTensor& dy,
                DLTensor& dx) override {
    require_same_size(x, dy, "activation backward");
    require_same_size(x, dx, "activation backward");
    graft::require_device(x, "activation");
    if (graft::on_cuda(x))
      return graft::check_launch(
          "activation backward",
          graft::activations_cuda::backward(K, graft::f32(x), graft::f32(y), graft::f32(dy),
                                            graft::f32(dx), graft::numel(x), slope_, ctx.stream));
    const float* xs = graft::f32(x);
    const float* ys = graft::f32(y);
    const float* dys = graft::f32(dy);
    float* dxs = graft::f32(dx);
    const int64_t count = graft::numel(x);
    for (int64_t i = 0; i < count; ++i)
      dxs[i] = dys[i] * graft::elementwise::derivative(K, xs[i], ys[i], slope_);
  }

 private:
  float slope_;
};

// Softmax over the last axis: x, y (N, ..., C) seen as rows of C.
class Softmax : public graft::Activation {
 public:
  static std::vector<graft::OptionDef> options() { return {}; }
  Softmax(const graft::Options&, graft::Host) {}

  bool elementwise() const override { return false; }

  void forward(const graft::Context& ctx, const DLTensor& x, DLTensor& y) override {
    require_same_size(x, y, "softmax forward");
    const int64_t c = last_axis(x), count = graft::numel(x);
    graft::require_device(x, "softmax");
    if (graft::on_cuda(x))
      return graft::check_launch(
          "softmax forward", graft::activations_cuda::softmax_forward(graft::f32(x), graft::f32(y),
                                                                      count / c, c, ctx.stream));
    for (int64_t start = 0; start < count; start += c)
      graft::softmax::forward_row(graft::f32(x) + start, graft::f32(y) + start, c);
  }

  void backward(const graft::Context& ctx, const DLTensor&, const DLTensor& y, const DLTensor& dy,
                DLTensor& dx) override {
    require_same_size(y, dy, "softmax backward");
    require_same_size(y, dx, "softmax backward");
    const int64_t c = last_axis(y), count = graft::numel(y);
    graft::require_device(y, "softmax");
    if (graft::on_cuda(y))
      return graft::check_launch("softmax backward", graft::activations_cuda::softmax_backward(
                                                         graft::f32(y), graft::f32(dy),
                                                         graft::f32(dx), count / c, c, ctx.stream));
    for (int64_t start = 0; start < count; start += c)
      graft::softmax::backward_row(graft::f32(y) + start, graft::f32(dy) + start,
                                   graft::f32(dx) + start, c);
  }

 private:
  // A batch of scalars, (N,), is N rows of one element each: softmax of one value is 1.
  static int64_t last_axis(const DLTensor& t) {
    return t.ndim >= 2 && t.shape[t.ndim - 1] > 0 ? t.shape[t.ndim - 1] : 1;
  }
};

}  // namespace

GRAFT_PLUGIN_LIBRARY(
    "activations", "0.1.0",
    graft::activation<Elementwise<Kind::relu>>("relu", "max(x, 0)", graft::kCudaEntry),
    graft::activation<Elementwise<Kind::leaky_relu>>("leaky_relu", "x if x > 0 else slope * x",
                                                     graft::kCudaEntry),
    graft::activation<Elementwise<Kind::sigmoid>>("sigmoid", "1 / (1 + exp(-x))",
                                                  graft::kCudaEntry),
    graft::activation<Elementwise<Kind::tanh>>("tanh", "hyperbolic tangent", graft::kCudaEntry),
    graft::activation<Elementwise<Kind::gelu>>("gelu", "x * Phi(x), the exact (erf) form",
                                               graft::kCudaEntry),
    graft::activation<Softmax>("softmax", "exp(x) / sum exp(x) over the last axis",
                               graft::kCudaEntry))
