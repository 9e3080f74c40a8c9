// Inverted dropout: in training each element is kept with probability 1-p and scaled by
// 1/(1-p); in evaluation the layer is the identity. Masks come from global indices.
#include "dropout_cuda.hpp"
#include "dropout_mask.hpp"
#include "graft/cpp/device.hpp"
#include "graft/cpp/plugin.hpp"

namespace {

class Dropout : public graft::Layer {
 public:
  static std::vector<graft::OptionDef> options() {
    return {graft::option_float("p", 0.5, "probability of zeroing an element in training")
                .range(0.0, 1.0)};
  }

  Dropout(const graft::Options& o, const graft::Shape& input, graft::Host)
      : shape_(input),
        features_(input.numel()),
        whole_features_(features_),
        p_(static_cast<float>(o.get_float("p"))) {
    GRAFT_CHECK(p_ < 1.0f, "dropout: p = 1 would zero every element; choose p in [0, 1)");
    keep_scale_ = 1.0f / (1.0f - p_);
  }

  // Tensor parallelism: this copy sees part `index` of `count` of each row's features. Its
  // masks keep the whole row's element indices (offset_ + j), so they equal the whole layer's.
  void shard(int mode, int index, int count) override {
    GRAFT_CHECK(mode == GRAFT_SHARD_PART,
                "dropout: only runs on a part of its input's last "
                "axis (GRAFT_SHARD_PART), not shard mode "
                    << mode);
    GRAFT_CHECK(shape_.ndim == 1,
                "dropout: runs on a tensor-parallel part only with a flat "
                "input (features); this one has "
                    << shape_.ndim << " axes");
    GRAFT_CHECK(count >= 1 && index >= 0 && index < count && features_ % count == 0,
                "dropout: part " << index << " of " << count << " does not split " << features_
                                 << " features evenly");
    features_ /= count;
    offset_ = int64_t(index) * features_;
    shape_.dims[0] = features_;
  }

  graft::Shape output_shape() const override { return shape_; }

  // The mask (0 or 1/(1-p) per element), left by forward for backward.
  int64_t workspace_per_sample() const override { return p_ > 0.0f ? features_ : 0; }

  // x, y: (N, F...) with F = features_ elements per sample.
  void forward(const graft::Context& ctx, const DLTensor* const*, const DLTensor& x, DLTensor& y,
               DLTensor* workspace) override {
    graft::require_device(x, "dropout");
    if (!active(ctx)) return graft::copy(ctx, x, y);
    const int64_t n = graft::rows(x);
    GRAFT_CHECK(ctx.global_batch >= ctx.row_offset + n,
                "dropout: the execution context says global_batch = "
                    << ctx.global_batch << " but holds rows " << ctx.row_offset << ".."
                    << ctx.row_offset + n - 1 << "; the host must set the step's global batch");
    GRAFT_CHECK(workspace && graft::numel(*workspace) >= n * features_,
                "dropout: the host passed no workspace of (" << n << ", " << features_
                                                             << ") floats for the mask");
    const uint64_t stream = graft::dropout::stream(ctx.layer_index);
    if (graft::on_cuda(x))
      return graft::check_launch(
          "dropout", graft::dropout::cuda::forward(
                         graft::f32(x), graft::f32(y), graft::f32(*workspace), n, features_,
                         whole_features_, offset_, ctx.step, ctx.global_batch, ctx.row_offset,
                         ctx.seed, stream, p_, keep_scale_, ctx.stream));
    const float* xs = graft::f32(x);
    float* ys = graft::f32(y);
    float* mask = graft::f32(*workspace);
    for (int64_t i = 0; i < n; ++i) {
      const uint64_t first = graft::dropout::index(ctx.step, ctx.global_batch, ctx.row_offset + i,
                                                   whole_features_, offset_);
      // One Philox block yields four consecutive uniforms; compute each block once.
      graft_philox_block block{};
      for (int64_t j = 0; j < features_; ++j) {
        const uint64_t counter = first + static_cast<uint64_t>(j);
        if (j == 0 || (counter & 3u) == 0) block = graft_philox(ctx.seed, stream, counter >> 2);
        const float m =
            graft::dropout::multiplier(graft_u32_to_unit(block.v[counter & 3u]), p_, keep_scale_);
        const int64_t e = i * features_ + j;
        mask[e] = m;
        ys[e] = xs[e] * m;
      }
    }
  }

  // dx = dy * mask (the identity in evaluation).
  void backward(const graft::Context& ctx, const DLTensor* const*, const DLTensor& x,
                const DLTensor&, const DLTensor& dy, DLTensor* dx, DLTensor* const*,
                DLTensor* workspace) override {
    graft::require_device(x, "dropout");
    if (!dx) return;
    if (!active(ctx)) return graft::copy(ctx, dy, *dx);
    const int64_t count = graft::numel(dy);
    GRAFT_CHECK(workspace && graft::numel(*workspace) >= count,
                "dropout: backward needs the mask workspace that forward filled");
    if (graft::on_cuda(x))
      return graft::check_launch(
          "dropout", graft::dropout::cuda::backward(graft::f32(dy), graft::f32(*workspace),
                                                    graft::f32(*dx), count, ctx.stream));
    const float* dys = graft::f32(dy);
    const float* mask = graft::f32(*workspace);
    float* dxs = graft::f32(*dx);
    for (int64_t e = 0; e < count; ++e) dxs[e] = dys[e] * mask[e];
  }

 private:
  bool active(const graft::Context& ctx) const { return ctx.training && p_ > 0.0f; }

  graft::Shape shape_;
  int64_t features_;        // F: this part's (all of them unless sharded)
  int64_t whole_features_;  // the whole row's, which mask indices count in
  int64_t offset_ = 0;      // this part's first feature within the whole row
  float p_;
  float keep_scale_;
};

}  // namespace

GRAFT_PLUGIN_LIBRARY("dropout", "0.1.0",
                     // Backward reads dy and the mask, never y, so dx may be written over it.
                     graft::layer<Dropout>("dropout", "inverted dropout with layout-free masks",
                                           GRAFT_ENTRY_SHARD_PART | GRAFT_ENTRY_DX_OVER_OUTPUT |
                                               graft::kCudaEntry))
