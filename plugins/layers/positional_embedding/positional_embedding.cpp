// Learned absolute positions as GPT-2's wpe: y[n, t] = x[n, t] + weight[first + t], with the
// table (max_positions, C) and first = 0 except while graft generate feeds a sequence a few
// positions at a time (set_positions).
#include <cstdint>
#include <string>

#include "graft/cpp/device.hpp"
#include "graft/cpp/plugin.hpp"
#include "positional_embedding_cuda.hpp"
#include "positional_math.hpp"

namespace {

// Dimension letters: N batch, T positions per sample, C the vector at each position,
// P max_positions (the table's rows).

class PositionalEmbedding : public graft::Layer {
 public:
  static std::vector<graft::OptionDef> options() {
    return {
        graft::required(graft::option_int("max_positions", 1,
                                          "rows P of the table: the longest sequence (context) "
                                          "the model takes, generation included"))
            .range(1, 1 << 24),
        graft::option_float("init_std", 0.02, "the table starts N(0, init_std^2), as GPT-2's")
            .range(0.0, 10.0),
    };
  }

  PositionalEmbedding(const graft::Options& o, const graft::Shape& input, graft::Host)
      : input_(input),
        rows_(o.get_int("max_positions")),
        std_(static_cast<float>(o.get_float("init_std"))) {
    GRAFT_CHECK(input.ndim == 2 && input.numel() >= 1,
                "positional_embedding: the input "
                    << input.str()
                    << " is not a sequence (T, C); put it after an embedding of (T) ids");
    positions_ = input[0];
    width_ = input[1];
    GRAFT_CHECK(positions_ <= rows_, "positional_embedding: the input has "
                                         << positions_ << " positions but max_positions = " << rows_
                                         << "; set max_positions >= " << positions_
                                         << " (the data's context)");
  }

  graft::Shape output_shape() const override { return input_; }

  std::vector<graft::Param> parameters() const override {
    return {{"weight", graft::Shape{rows_, width_}, GRAFT_INIT_NORMAL, rows_, width_, std_, false}};
  }

  // Generation: the next calls' samples are positions first.. of their sequences.
  void set_positions(int64_t first, int64_t) override {
    GRAFT_CHECK(first < 0 || first + positions_ <= rows_,
                "positional_embedding: position "
                    << first + positions_ - 1 << " is beyond the table's max_positions = " << rows_
                    << "; generate within the context");
    first_ = first < 0 ? 0 : first;
  }

  // x, y: (N, T, C).
  void forward(const graft::Context& ctx, const DLTensor* const* params, const DLTensor& x,
               DLTensor& y, DLTensor*) override {
    graft::require_device(x, "positional_embedding");
    const int64_t n = graft::rows(x);
    if (graft::on_cuda(x))
      return graft::check_launch(
          "positional_embedding",
          graft::positional::cuda::forward(graft::f32(x), graft::f32(*params[0]), n, positions_,
                                           width_, first_, graft::f32(y), ctx.stream));
    const float* xs = graft::f32(x);
    const float* table = graft::f32(*params[0]);
    float* ys = graft::f32(y);
    const int64_t count = n * positions_ * width_;
    for (int64_t e = 0; e < count; ++e)
      ys[e] = xs[e] + table[graft::positional::table_index(e, positions_, width_, first_)];
  }

  // dx = dy; dweight[first + t] += the sum over samples of dy[., t].
  void backward(const graft::Context& ctx, const DLTensor* const*, const DLTensor& x,
                const DLTensor&, const DLTensor& dy, DLTensor* dx, DLTensor* const* grads,
                DLTensor*) override {
    graft::require_device(x, "positional_embedding");
    const int64_t n = graft::rows(x);
    const int64_t per_sample = positions_ * width_;
    if (graft::on_cuda(x)) {
      graft::check_launch("positional_embedding", graft::positional::cuda::weight_gradient(
                                                      graft::f32(dy), n, positions_, width_, first_,
                                                      graft::f32(*grads[0]), ctx.stream));
    } else {
      float* grad = graft::f32(*grads[0]) + first_ * width_;
      for (int64_t j = 0; j < per_sample; ++j)
        grad[j] += graft::positional::column_sum(graft::f32(dy), n, per_sample, j);
    }
    if (dx) graft::copy(ctx, dy, *dx);
  }

 private:
  graft::Shape input_;
  int64_t rows_;  // P
  float std_;
  int64_t positions_ = 0;  // T
  int64_t width_ = 0;      // C
  int64_t first_ = 0;      // the position of each sample's first row
};

}  // namespace

GRAFT_PLUGIN_LIBRARY("positional_embedding", "0.1.0",
                     graft::layer<PositionalEmbedding>(
                         "positional_embedding",
                         "a learned vector per position added to a sequence (GPT-2's wpe)",
                         graft::kCudaEntry))
