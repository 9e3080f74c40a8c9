// Flatten: a per-sample tensor (C, H, W) (any rank) becomes (C*H*W) features. Memory is
// already row-major, so forward and backward are plain copies between the host's buffers.
#include "graft/cpp/plugin.hpp"

namespace {

class Flatten : public graft::Layer {
 public:
  static std::vector<graft::OptionDef> options() { return {}; }

  Flatten(const graft::Options&, const graft::Shape& input, graft::Host)
      : features_(input.numel()) {
    GRAFT_CHECK(features_ >= 1, "flatten: the input " << input.str() << " has no elements");
  }

  graft::Shape output_shape() const override { return graft::Shape{features_}; }

  // x: (N, C, H, W), y: (N, C*H*W).
  void forward(const graft::Context& ctx, const DLTensor* const*, const DLTensor& x, DLTensor& y,
               DLTensor*) override {
    graft::copy(ctx, x, y);
  }

  void backward(const graft::Context& ctx, const DLTensor* const*, const DLTensor&, const DLTensor&,
                const DLTensor& dy, DLTensor* dx, DLTensor* const*, DLTensor*) override {
    if (dx) graft::copy(ctx, dy, *dx);
  }

 private:
  int64_t features_;
};

}  // namespace

GRAFT_PLUGIN_LIBRARY("flatten", "0.1.0",
                     // Its copies are the host's, which run on whichever device holds them.
                     // Backward never reads y, so dx may be written over it.
                     graft::layer<Flatten>("flatten", "(C, H, W) per sample to (C*H*W)",
                                           GRAFT_ENTRY_HAS_CUDA | GRAFT_ENTRY_DX_OVER_OUTPUT))
