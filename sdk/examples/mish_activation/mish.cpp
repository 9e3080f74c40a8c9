// An example activation: mish(x) = x tanh(softplus(x)), element by element. It shows the
// activation kind — no options, no parameters — with its math in a GRAFT_HD header.
#include <graft/cpp/plugin.hpp>

#include "mish_math.hpp"

namespace {

// x, y, dy, dx: any shape (N, ...), the same element count.
class Mish final : public graft::Activation {
 public:
  Mish(const graft::Options&, graft::Host) {}
  static std::vector<graft::OptionDef> options() { return {}; }

  void forward(const graft::Context&, const DLTensor& x, DLTensor& y) override {
    check_tensors(x, y);
    const float* in = graft::f32(x);
    float* out = graft::f32(y);
    for (int64_t i = 0; i < graft::numel(x); ++i) out[i] = mish::value(in[i]);
  }

  void backward(const graft::Context&, const DLTensor& x, const DLTensor&, const DLTensor& dy,
                DLTensor& dx) override {
    check_tensors(x, dx);
    const float* in = graft::f32(x);
    const float* g = graft::f32(dy);
    float* out = graft::f32(dx);
    for (int64_t i = 0; i < graft::numel(x); ++i) out[i] = g[i] * mish::derivative(in[i]);
  }

 private:
  static void check_tensors(const DLTensor& a, const DLTensor& b) {
    GRAFT_CHECK(graft::on_cpu(a) && graft::on_cpu(b), "mish: only CPU tensors are supported");
    GRAFT_CHECK(graft::numel(a) == graft::numel(b),
                "mish: " << graft::numel(a) << " and " << graft::numel(b) << " elements differ");
  }
};

}  // namespace

GRAFT_PLUGIN_LIBRARY("mish_activation", "0.1.0",
                     graft::activation<Mish>("mish", "x * tanh(softplus(x)) (Misra 2019)"))
