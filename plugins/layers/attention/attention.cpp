// Multi-head self-attention over (T, C) per sample: x (N*T, C) @ qkv_weight (C, 3C) is one
// gemm giving q | k | v, a tiled core with an online softmax (FlashAttention; backward is
// FlashAttention-2's) never holds a T x T matrix, and one gemm projects the heads' outputs.
// shard(PAIR) keeps a range of heads (Megatron's attention split); set_positions() runs it
// position by position over a key-value cache for generation.
#include <cmath>
#include <cstddef>
#include <string>

#include "attention_cpu.hpp"
#include "attention_cuda.hpp"
#include "graft/cpp/device.hpp"
#include "graft/cpp/plugin.hpp"

namespace {

namespace attn = graft::attention;

// "1, 2, 4, 8, ..." : the values v of [1, limit] for which keep(v) holds, a few at most.
template <class Keep>
std::string choices(int64_t limit, Keep keep) {
  std::string text;
  int shown = 0;
  for (int64_t v = 1; v <= limit; ++v) {
    if (!keep(v)) continue;
    if (shown++ == 8) return text + ", ...";
    text += (text.empty() ? "" : ", ") + std::to_string(v);
  }
  return text.empty() ? "none" : text;
}

class Attention : public graft::Layer {
 public:
  static std::vector<graft::OptionDef> options() {
    return {
        graft::required(graft::option_int("heads", 1, "attention heads; must divide the width C"))
            .range(1, 1 << 20),
        graft::option_bool("causal", true, "each position attends only to itself and earlier ones"),
        graft::option_bool("rope", false,
                           "rotary position embeddings on q and k (rotate-half, as GPT-NeoX)"),
        graft::option_float("rope_base", 10000.0, "rotary frequencies are rope_base^(-2i/d)")
            .range(1.0, 1e30),
        graft::option_float("dropout", 0.0, "dropout on the attention probabilities (training)")
            .range(0.0, 0.999999),
        graft::option_bool("bias", true, "learned biases on q, k, v and the output (zeros)"),
        graft::option_string("init", "kaiming_uniform",
                             "weight init: torch.nn.Linear's U(+-1/sqrt(C)), or N(0, init_std) "
                             "as GPT-2",
                             "kaiming_uniform|normal"),
        graft::option_float("init_std", 0.02, "standard deviation of init = \"normal\"")
            .range(0.0, 1e6),
        graft::option_int("block", 64, "query and key rows per tile of the core").range(1, 1 << 16),
    };
  }

  Attention(const graft::Options& o, const graft::Shape& input, graft::Host host)
      : host_(host),
        input_(input),
        whole_heads_(o.get_int("heads")),
        rope_(o.get_bool("rope")),
        rope_base_(o.get_float("rope_base")),
        dropout_(static_cast<float>(o.get_float("dropout"))),
        has_bias_(o.get_bool("bias")),
        normal_init_(o.get_string("init") == "normal"),
        init_std_(static_cast<float>(o.get_float("init_std"))) {
    GRAFT_CHECK(input.ndim >= 2, "attention: the input "
                                     << input.str()
                                     << " has no positions; attention takes (T, C) per sample "
                                        "(put an embedding or a reshape before it)");
    width_ = input[input.ndim - 1];
    geometry_.positions = input.numel() / width_;
    GRAFT_CHECK(width_ % whole_heads_ == 0,
                "attention: heads = "
                    << whole_heads_ << " does not divide the width C = " << width_
                    << " of the input " << input.str() << "; choose heads dividing " << width_
                    << ": " << choices(width_, [&](int64_t h) { return width_ % h == 0; }));
    geometry_.heads = whole_heads_;
    geometry_.head_width = width_ / whole_heads_;
    GRAFT_CHECK(
        !rope_ || geometry_.head_width % 2 == 0,
        "attention: rope turns pairs of a head's elements, but heads = "
            << whole_heads_ << " gives an odd head width " << width_ << " / " << whole_heads_
            << " = " << geometry_.head_width << "; choose heads with an "
            << "even C / heads: "
            << choices(width_, [&](int64_t h) { return width_ % h == 0 && (width_ / h) % 2 == 0; })
            << ", or rope = false");
    geometry_.causal = o.get_bool("causal");
    geometry_.block = o.get_int("block");
    geometry_.scale = 1.0f / std::sqrt(static_cast<float>(geometry_.head_width));
    if (rope_) table_ = attn::rope_table(geometry_, 0, rope_base_);
  }

  // PAIR: heads [index * H / count, (index + 1) * H / count); y and dx are this part's partial
  // sums, which the strategy all-reduces; output_bias is whole and added by part 0 only.
  void shard(int mode, int index, int count) override {
    GRAFT_CHECK(mode_ == GRAFT_SHARD_NONE, "attention: shard() called twice");
    GRAFT_CHECK(count >= 1 && index >= 0 && index < count,
                "attention: shard " << index << " of " << count << " is out of range");
    if (mode == GRAFT_SHARD_NONE) return;
    GRAFT_CHECK(mode == GRAFT_SHARD_PAIR,
                "attention: shards only by heads (PAIR), not mode " << mode);
    GRAFT_CHECK(whole_heads_ % count == 0,
                "attention: heads = " << whole_heads_ << " does not split into " << count
                                      << " equal tensor-parallel parts; choose heads divisible by "
                                      << count << ", or change [parallel] (strategy or the "
                                      << "number of ranks)");
    geometry_.heads = whole_heads_ / count;
    first_head_ = index * geometry_.heads;
    mode_ = mode;
    index_ = index;
  }

  graft::Shape output_shape() const override { return input_; }

  std::vector<graft::Param> parameters() const override {
    const int64_t c = width_, p = geometry_.part_width();
    const bool part = mode_ == GRAFT_SHARD_PAIR;
    auto weight = [&](const char* name, graft::Shape shape, int64_t fan_out, int axis) {
      graft::Param w{name, shape, GRAFT_INIT_NORMAL, c, fan_out, init_std_, false};
      if (!normal_init_) {
        // gain 1/sqrt(3) turns U(+-gain*sqrt(3/C)) into torch.nn.Linear's U(+-1/sqrt(C)).
        w.init = GRAFT_INIT_KAIMING_UNIFORM;
        w.gain = 0.57735026918962576f;
      }
      w.shard_axis = part ? axis : -1;
      return w;
    };
    auto bias = [&](const char* name, graft::Shape shape, int64_t fan_out, int axis) {
      graft::Param b{name, shape, GRAFT_INIT_ZEROS, c, fan_out, 1.0f, true};
      b.shard_axis = part ? axis : -1;
      return b;
    };
    std::vector<graft::Param> params{weight("qkv_weight", {c, 3, p}, 3 * c, 2)};
    if (has_bias_) params.push_back(bias("qkv_bias", {3, p}, 3 * c, 1));
    params.push_back(weight("output_weight", {p, c}, c, 0));
    if (has_bias_) params.push_back(bias("output_bias", {c}, c, -1));
    return params;
  }

  // Kept from forward for backward, in regions over the whole call's N*T rows: q | k | v
  // after rope (N*T, 3P), the heads' output before projection (N*T, P), L (N, H, T).
  int64_t workspace_per_sample() const override {
    return geometry_.positions * (4 * geometry_.part_width() + geometry_.heads);
  }
  // Backward's own: the heads' output gradient (N*T, P) and that of q | k | v (N*T, 3P), in
  // memory the host shares between layers' calls, so only one layer's is ever held.
  int64_t scratch_per_sample() const override {
    return geometry_.positions * 4 * geometry_.part_width();
  }

  void set_positions(int64_t first, int64_t capacity) override {
    if (first < 0) {
      cache_ = graft::DeviceMemory();
      first_ = -1;
      cached_ = 0;
      return;
    }
    GRAFT_CHECK(geometry_.causal,
                "attention: generation with a key-value cache needs causal = true (a position "
                "cannot attend to positions not generated yet)");
    if (first == 0) {
      cache_ = graft::DeviceMemory();
      cached_ = 0;
      capacity_ = capacity;
    }
    GRAFT_CHECK(first <= cached_, "attention: set_positions("
                                      << first << ") is beyond the " << cached_
                                      << " positions in the key-value cache; "
                                      << "continue from at most position " << cached_);
    GRAFT_CHECK(first + geometry_.positions <= capacity_,
                "attention: positions " << first << ".." << first + geometry_.positions - 1
                                        << " exceed the key-value cache's capacity of " << capacity_
                                        << "; generate fewer tokens or start "
                                        << "again with a larger capacity");
    first_ = first;
  }

  void forward(const graft::Context& ctx, const DLTensor* const* params, const DLTensor& x,
               DLTensor& y, DLTensor* workspace) override;
  void backward(const graft::Context& ctx, const DLTensor* const* params, const DLTensor& x,
                const DLTensor& y, const DLTensor& dy, DLTensor* dx, DLTensor* const* grads,
                DLTensor* workspace) override;

 private:
  // The regions of workspace_per_sample() for n samples.
  struct Regions {
    float *qkv, *attn, *lse, *dattn, *dqkv;
  };
  // scratch: backward's (scratch_per_sample()), or NULL in forward.
  Regions regions(float* base, float* scratch, int64_t n) const {
    const int64_t rows = n * geometry_.positions, p = geometry_.part_width();
    Regions r{};
    r.qkv = base;
    r.attn = r.qkv + rows * 3 * p;
    r.lse = r.attn + rows * p;
    r.dattn = scratch;
    r.dqkv = scratch ? scratch + rows * p : nullptr;
    return r;
  }
  float* workspace_for(DLTensor* workspace, const DLTensor& x, int64_t n);
  // The host's call scratch, or memory of the layer's own where none is lent (a harness).
  float* scratch_for(const graft::Context& ctx, const DLTensor& x, int64_t n);
  attn::DropoutDraw draw(const graft::Context& ctx) const;
  int qkv_bias_index() const { return has_bias_ ? 1 : -1; }
  int output_weight_index() const { return has_bias_ ? 2 : 1; }

  graft::Host host_;
  graft::Shape input_;
  int64_t whole_heads_;
  int64_t width_ = 1;  // C
  attn::Geometry geometry_;
  bool rope_;
  double rope_base_;
  float dropout_;
  bool has_bias_;
  bool normal_init_;
  float init_std_;
  std::vector<float> table_;  // rope's (cos, sin) of positions [0, T)
  int mode_ = GRAFT_SHARD_NONE;
  int index_ = 0;
  int64_t first_head_ = 0;
  graft::DeviceMemory own_;          // the regions when the host lends no workspace (evaluation)
  graft::DeviceMemory own_scratch_;  // backward's when the host lends no scratch
  // Generation: the cache (N, H, 2, capacity, d) of k and v, positions [0, cached_) filled.
  graft::DeviceMemory cache_;
  int64_t first_ = -1, cached_ = 0, capacity_ = 0, cache_samples_ = 0;
};

}  // namespace

float* Attention::workspace_for(DLTensor* workspace, const DLTensor& x, int64_t n) {
  const int64_t floats = n * workspace_per_sample();
  if (workspace && graft::numel(*workspace) >= floats) return graft::f32(*workspace);
  GRAFT_CHECK(!workspace || graft::numel(*workspace) == 0,
              "attention: the host passed a workspace smaller than ("
                  << n << ", " << workspace_per_sample() << ") floats");
  if (own_.bytes() < size_t(floats) * sizeof(float) ||
      own_.device().device_type != x.device.device_type)
    own_ = graft::DeviceMemory(host_, x.device, size_t(floats) * sizeof(float), "attention");
  return own_.as<float>();
}

float* Attention::scratch_for(const graft::Context& ctx, const DLTensor& x, int64_t n) {
  const int64_t floats = n * scratch_per_sample();
  const bool lent = ctx.struct_size >= offsetof(graft_exec_ctx, scratch) + sizeof(ctx.scratch) &&
                    ctx.scratch && graft::numel(*ctx.scratch) >= floats;
  if (lent) return graft::f32(*ctx.scratch);
  if (own_scratch_.bytes() < size_t(floats) * sizeof(float) ||
      own_scratch_.device().device_type != x.device.device_type)
    own_scratch_ =
        graft::DeviceMemory(host_, x.device, size_t(floats) * sizeof(float), "attention");
  return own_scratch_.as<float>();
}

attn::DropoutDraw Attention::draw(const graft::Context& ctx) const {
  attn::DropoutDraw d;
  if (!ctx.training || dropout_ <= 0.0f) return d;
  d.p = dropout_;
  d.keep_scale = 1.0f / (1.0f - dropout_);
  d.seed = ctx.seed;
  d.stream = attn::dropout_stream(ctx.layer_index);
  d.step = ctx.step;
  d.global_batch = ctx.global_batch;
  d.row_offset = ctx.row_offset;
  d.whole_heads = whole_heads_;
  d.first_head = first_head_;
  return d;
}

// x, y: (N, T, C); the workspace as workspace_per_sample() says.
void Attention::forward(const graft::Context& ctx, const DLTensor* const* params, const DLTensor& x,
                        DLTensor& y, DLTensor* workspace) {
  graft::require_device(x, "attention");
  const int64_t n = graft::rows(x), rows = n * geometry_.positions, p = geometry_.part_width();
  const bool cuda = graft::on_cuda(x);
  const Regions r = regions(workspace_for(workspace, x, n), nullptr, n);
  const DLDevice dev = x.device;
  const graft::View xs(graft::f32(x), dev, {rows, width_});
  graft::View qkv(r.qkv, dev, {rows, 3 * p}), heads_out(r.attn, dev, {rows, p});
  graft::View ys(graft::f32(y), dev, {rows, width_});
  graft::gemm(ctx, false, false, 1.0f, *xs, *params[0], 0.0f, *qkv);
  const float* qkv_bias = has_bias_ ? graft::f32(*params[qkv_bias_index()]) : nullptr;
  const int64_t first = first_ >= 0 ? first_ : 0;
  if (cuda) {
    graft::check_launch("attention",
                        attn::cuda::bias_and_rope(geometry_, r.qkv, n, qkv_bias, rope_, rope_base_,
                                                  first, 1.0f, ctx.stream));
  } else {
    std::vector<float> moved;  // generation's angles at positions first..
    if (rope_ && first_ > 0) moved = attn::rope_table(geometry_, first_, rope_base_);
    attn::bias_and_rope(ctx, geometry_, r.qkv, n, qkv_bias,
                        !rope_       ? nullptr
                        : first_ > 0 ? moved.data()
                                     : table_.data(),
                        1.0f);
  }
  if (first_ >= 0) {
    const int64_t per_sample = geometry_.heads * 2 * capacity_ * geometry_.head_width;
    if (first_ == 0 || !cache_) {
      cache_ = graft::DeviceMemory(host_, dev, size_t(n * per_sample) * sizeof(float),
                                   "attention's key-value cache");
      cache_samples_ = n;
    }
    GRAFT_CHECK(n == cache_samples_, "attention: generation began with "
                                         << cache_samples_ << " sequences but continues with "
                                         << n);
    if (cuda)
      graft::check_launch("attention",
                          attn::cuda::forward_cached(geometry_, n, r.qkv, cache_.as<float>(),
                                                     capacity_, first_, r.attn, ctx.stream));
    else
      attn::forward_cached(ctx, geometry_, n, r.qkv, cache_.as<float>(), capacity_, first_, r.attn);
    cached_ = first_ + geometry_.positions;
  } else if (cuda) {
    graft::check_launch("attention", attn::cuda::forward(geometry_, n, r.qkv, r.attn, r.lse,
                                                         draw(ctx), ctx.stream));
  } else {
    attn::forward_batch(ctx, geometry_, n, r.qkv, r.attn, r.lse, draw(ctx));
  }
  graft::gemm(ctx, false, false, 1.0f, *heads_out, *params[output_weight_index()], 0.0f, *ys);
  if (!has_bias_ || index_ != 0) return;  // the parts' sum must hold the bias once
  const float* bias = graft::f32(*params[output_weight_index() + 1]);
  if (cuda)
    return graft::check_launch("attention",
                               attn::cuda::add_bias(graft::f32(y), bias, rows, width_, ctx.stream));
  float* out = graft::f32(y);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t c = 0; c < width_; ++c) out[i * width_ + c] += bias[c];
}

// Reverse order: the output projection's gradients, the core's, then the fused qkv gemm's.
void Attention::backward(const graft::Context& ctx, const DLTensor* const* params,
                         const DLTensor& x, const DLTensor&, const DLTensor& dy, DLTensor* dx,
                         DLTensor* const* grads, DLTensor* workspace) {
  graft::require_device(x, "attention");
  GRAFT_CHECK(first_ < 0, "attention: backward while generating (set_positions(-1) first)");
  GRAFT_CHECK(workspace, "attention: backward needs the workspace that forward filled");
  const int64_t n = graft::rows(x), rows = n * geometry_.positions, p = geometry_.part_width();
  const bool cuda = graft::on_cuda(x);
  const Regions r = regions(workspace_for(workspace, x, n), scratch_for(ctx, x, n), n);
  const DLDevice dev = x.device;
  const graft::View xs(graft::f32(x), dev, {rows, width_}),
      dys(graft::f32(dy), dev, {rows, width_});
  const graft::View heads_out(r.attn, dev, {rows, p});
  graft::View dheads(r.dattn, dev, {rows, p}), dqkv(r.dqkv, dev, {rows, 3 * p});
  const int wo = output_weight_index();
  graft::gemm(ctx, true, false, 1.0f, *heads_out, *dys, 1.0f, *grads[wo]);
  // Every part adds the whole output bias's gradient, so its replicas stay equal.
  if (has_bias_) graft::sum_rows(ctx, *dys, 1.0f, *grads[wo + 1]);
  graft::gemm(ctx, false, true, 1.0f, *dys, *params[wo], 0.0f, *dheads);
  if (cuda) {
    graft::check_launch("attention", attn::cuda::backward(geometry_, n, r.qkv, r.attn, r.lse,
                                                          r.dattn, r.dqkv, draw(ctx), ctx.stream));
    graft::check_launch("attention", attn::cuda::bias_and_rope(geometry_, r.dqkv, n, nullptr, rope_,
                                                               rope_base_, 0, -1.0f, ctx.stream));
  } else {
    attn::backward_batch(ctx, geometry_, n, r.qkv, r.attn, r.lse, r.dattn, r.dqkv, draw(ctx));
    if (rope_) attn::bias_and_rope(ctx, geometry_, r.dqkv, n, nullptr, table_.data(), -1.0f);
  }
  graft::gemm(ctx, true, false, 1.0f, *xs, *dqkv, 1.0f, *grads[0]);
  if (has_bias_) {
    // Without rope the key bias adds q_i . b to every score of row i, which softmax ignores: its
    // gradient is exactly 0, and what float rounding leaves instead differs between layouts and
    // Adam, which normalises it, would turn it into full-size steps. So its part of the
    // accumulated gradient is kept as it was (in dheads' memory, which the core has consumed).
    // With rope, b is rotated by each position and its gradient is real.
    graft::View key_bias(graft::f32(*grads[qkv_bias_index()]) + p, dev, {p}),
        kept(r.dattn, dev, {p});
    if (!rope_) graft::copy(ctx, *key_bias, *kept);
    graft::sum_rows(ctx, *dqkv, 1.0f, *grads[qkv_bias_index()]);
    if (!rope_) graft::copy(ctx, *kept, *key_bias);
  }
  if (dx) {
    graft::View dxs(graft::f32(*dx), dev, {rows, width_});
    graft::gemm(ctx, false, true, 1.0f, *dqkv, *params[0], 0.0f, *dxs);
  }
}

// Backward never reads y, so dx may be written over it.
GRAFT_PLUGIN_LIBRARY("attention", "0.1.0",
                     graft::layer<Attention>("attention",
                                             "multi-head self-attention (fused qkv, tiled "
                                             "online softmax, rope, kv cache)",
                                             GRAFT_ENTRY_SHARD_PAIR | GRAFT_ENTRY_DX_OVER_OUTPUT |
                                                 graft::kCudaEntry))
