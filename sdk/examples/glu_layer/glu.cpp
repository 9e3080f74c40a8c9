// An example layer with weights, matrix products and a workspace: the gated linear unit
// y = (x W + b) * sigmoid(x V + c) (Dauphin et al. 2017), x (N, D) -> y (N, H). It shows what a
// dense layer needs beyond swish: graft::gemm with its transposes, the weight layout, and the
// workspace that carries forward's values to backward.
#include <graft/cpp/elementwise.hpp>
#include <graft/cpp/plugin.hpp>

namespace {

class Glu final : public graft::Layer {
 public:
  Glu(const graft::Options& options, const graft::Shape& input, graft::Host)
      : in_(input.numel()), out_(options.get_int("units")) {}

  static std::vector<graft::OptionDef> options() {
    return {graft::required(graft::option_int("units", 1, "output features H")).range(1, 1 << 20)};
  }

  graft::Shape output_shape() const override { return graft::Shape{out_}; }

  // W and V are (D, H), row-major: y = x W is gemm(x, W) with no transposes. fan_in and fan_out
  // pick the init's scale (xavier: U(+-sqrt(6 / (D + H)))); biases start at zero.
  std::vector<graft::Param> parameters() const override {
    graft::Param w{"weight", graft::Shape{in_, out_}, GRAFT_INIT_XAVIER_UNIFORM, in_, out_};
    graft::Param b{"bias", graft::Shape{out_}, GRAFT_INIT_ZEROS};
    graft::Param v{"gate_weight", graft::Shape{in_, out_}, GRAFT_INIT_XAVIER_UNIFORM, in_, out_};
    graft::Param c{"gate_bias", graft::Shape{out_}, GRAFT_INIT_ZEROS};
    b.no_weight_decay = c.no_weight_decay = true;
    return {w, b, v, c};
  }

  // Per row: the value a = x W + b and the gate g = x V + c, which backward needs. The host
  // keeps this memory from a forward to the backward after it (GRAFT_WORKSPACE_KEPT).
  int64_t workspace_per_sample() const override { return 2 * out_; }

  void forward(const graft::Context& ctx, const DLTensor* const* params, const DLTensor& x_in,
               DLTensor& y, DLTensor* workspace) override {
    const int64_t n = graft::rows(x_in);
    const graft::View x(graft::f32(x_in), x_in.device, {n, in_});  // any per-sample shape, flat
    // The workspace is (N, 2H) floats; carved as two (N, H) blocks, each a gemm's output.
    graft::View a(graft::f32(*workspace), x_in.device, {n, out_});
    graft::View g(graft::f32(*workspace) + n * out_, x_in.device, {n, out_});
    graft::gemm(ctx, false, false, 1.0f, *x, *params[0], 0.0f, *a);  // a = x W
    graft::gemm(ctx, false, false, 1.0f, *x, *params[2], 0.0f, *g);  // g = x V
    const float *b = graft::f32(*params[1]), *c = graft::f32(*params[3]);
    float *pa = graft::f32(*a), *pg = graft::f32(*g), *py = graft::f32(y);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < out_; ++j) {
        const int64_t i = r * out_ + j;
        pa[i] += b[j];
        pg[i] += c[j];
        py[i] = pa[i] * graft::elementwise::sigmoid(pg[i]);
      }
  }

  // dy -> da = dy * s and dg = dy * a * s (1 - s), s = sigmoid(g), written over a and g: the
  // workspace is this layer's until its next forward, and the host calls backward once per
  // forward. Then dW += x^T da, dV += x^T dg (gemm's first operand transposed), db and dc the
  // column sums, and dx = da W^T + dg V^T (the second operand transposed; beta 1 adds).
  void backward(const graft::Context& ctx, const DLTensor* const* params, const DLTensor& x_in,
                const DLTensor&, const DLTensor& dy, DLTensor* dx, DLTensor* const* grads,
                DLTensor* workspace) override {
    const int64_t n = graft::rows(x_in);
    const graft::View x(graft::f32(x_in), x_in.device, {n, in_});
    graft::View da(graft::f32(*workspace), x_in.device, {n, out_});
    graft::View dg(graft::f32(*workspace) + n * out_, x_in.device, {n, out_});
    const float* pdy = graft::f32(dy);
    float *pa = graft::f32(*da), *pg = graft::f32(*dg);
    for (int64_t i = 0; i < n * out_; ++i) {
      const float s = graft::elementwise::sigmoid(pg[i]), a = pa[i];
      pa[i] = pdy[i] * s;
      pg[i] = pdy[i] * a * s * (1.0f - s);
    }
    graft::gemm(ctx, true, false, 1.0f, *x, *da, 1.0f, *grads[0]);
    graft::sum_rows(ctx, *da, 1.0f, *grads[1]);
    graft::gemm(ctx, true, false, 1.0f, *x, *dg, 1.0f, *grads[2]);
    graft::sum_rows(ctx, *dg, 1.0f, *grads[3]);
    if (!dx) return;  // the first layer's input needs no gradient
    graft::View dx_rows(graft::f32(*dx), x_in.device, {n, in_});
    graft::gemm(ctx, false, true, 1.0f, *da, *params[0], 0.0f, *dx_rows);
    graft::gemm(ctx, false, true, 1.0f, *dg, *params[2], 1.0f, *dx_rows);
  }

 private:
  int64_t in_, out_;  // D, H
};

}  // namespace

GRAFT_PLUGIN_LIBRARY("glu_layer", "0.1.0",
                     graft::layer<Glu>("glu", "gated linear unit (x W + b) * sigmoid(x V + c)"))
