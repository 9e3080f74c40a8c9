// An example layer with a learned parameter: y = x * sigmoid(beta * x), one beta per feature
// (Ramachandran et al. 2017). It shows the whole SDK surface a layer author needs.
#include <graft/cpp/elementwise.hpp>
#include <graft/cpp/plugin.hpp>

namespace {

// x, y: (N, D); beta: (D,)
class Swish final : public graft::Layer {
 public:
  Swish(const graft::Options& options, const graft::Shape& input, graft::Host)
      : features_(input.numel()), shape_(input), beta_init_(float(options.get_float("beta"))) {}

  static std::vector<graft::OptionDef> options() {
    return {graft::option_float("beta", 1.0, "initial value of the learned slope").range(-10, 10)};
  }

  graft::Shape output_shape() const override { return shape_; }
  std::vector<graft::Param> parameters() const override {
    graft::Param beta{"beta", graft::Shape{features_}, GRAFT_INIT_CONSTANT};
    beta.gain = beta_init_;  // every beta starts at the option's value
    beta.no_weight_decay = true;
    return {beta};
  }

  void forward(const graft::Context&, const DLTensor* const* params, const DLTensor& x, DLTensor& y,
               DLTensor*) override {
    const float* b = graft::f32(*params[0]);
    const float* in = graft::f32(x);
    float* out = graft::f32(y);
    for (int64_t r = 0; r < graft::rows(x); ++r)
      for (int64_t j = 0; j < features_; ++j) {
        const float v = in[r * features_ + j];
        out[r * features_ + j] = v * graft::elementwise::sigmoid(b[j] * v);
      }
  }

  void backward(const graft::Context&, const DLTensor* const* params, const DLTensor& x,
                const DLTensor&, const DLTensor& dy, DLTensor* dx, DLTensor* const* grads,
                DLTensor*) override {
    const float* b = graft::f32(*params[0]);
    const float* in = graft::f32(x);
    const float* g = graft::f32(dy);
    float* db = graft::f32(*grads[0]);
    float* out = dx ? graft::f32(*dx) : nullptr;
    for (int64_t r = 0; r < graft::rows(x); ++r)
      for (int64_t j = 0; j < features_; ++j) {
        const int64_t i = r * features_ + j;
        const float beta = b[j], v = in[i];
        const float s = graft::elementwise::sigmoid(beta * v);
        const float ds = s * (1.0f - s);
        if (out) out[i] = g[i] * (s + beta * v * ds);
        db[j] += g[i] * v * v * ds;
      }
  }

 private:
  int64_t features_;
  graft::Shape shape_;
  float beta_init_;
};

}  // namespace

GRAFT_PLUGIN_LIBRARY("swish_layer", "0.1.0",
                     graft::layer<Swish>("swish",
                                         "x * sigmoid(beta x) with a learned beta per feature"))
