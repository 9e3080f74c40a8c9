// The embedding lookup as torch.nn.Embedding: each integer id (carried as float32) selects a
// row of a learned table (num_embeddings, embedding_dim); backward adds into the rows it used.
#include <cstdint>
#include <cstring>
#include <string>

#include "embedding_cuda.hpp"
#include "embedding_math.hpp"
#include "graft/cpp/device.hpp"
#include "graft/cpp/plugin.hpp"

namespace {

// Dimension letters: N batch, T ids per sample (any per-sample shape, flattened), V the table's
// rows (num_embeddings), E the vector length (embedding_dim).

class Embedding : public graft::Layer {
 public:
  static std::vector<graft::OptionDef> options() {
    return {
        graft::required(graft::option_int("num_embeddings", 1, "rows of the table V: ids 0..V-1"))
            .range(1, static_cast<double>(graft::embedding::kLargestTable)),
        graft::required(graft::option_int("embedding_dim", 1, "length E of each vector"))
            .range(1, 1 << 30),
        graft::option_float("init_std", 1.0,
                            "the table's N(0, init_std); 1 is torch.nn.Embedding's, 0.02 "
                            "GPT-2's (whose output projection is this table, tied)")
            .range(1e-6, 1e6),
    };
  }

  Embedding(const graft::Options& o, const graft::Shape& input, graft::Host host)
      : host_(host),
        input_(input),
        rows_(o.get_int("num_embeddings")),
        dim_(o.get_int("embedding_dim")),
        init_std_(static_cast<float>(o.get_float("init_std"))),
        ids_per_sample_(input.numel()) {
    GRAFT_CHECK(input.ndim < GRAFT_MAX_DIMS, "embedding: the input "
                                                 << input.str() << " has " << input.ndim
                                                 << " axes; the output adds one and graft allows "
                                                 << GRAFT_MAX_DIMS);
    GRAFT_CHECK(ids_per_sample_ >= 1, "embedding: the input " << input.str() << " holds no ids");
  }

  // (T..., E)
  graft::Shape output_shape() const override {
    graft::Shape out = input_;
    out.dims[out.ndim++] = dim_;
    return out;
  }

  // N(0, init_std). Weight decay applies, as in PyTorch's optimizers.
  std::vector<graft::Param> parameters() const override {
    return {
        {"weight", graft::Shape{rows_, dim_}, GRAFT_INIT_NORMAL, rows_, dim_, init_std_, false}};
  }

  // x: (N, T) ids, y: (N, T, E).
  void forward(const graft::Context& ctx, const DLTensor* const* params, const DLTensor& x,
               DLTensor& y, DLTensor*) override {
    graft::require_device(x, "embedding");
    const int64_t count = graft::rows(x) * ids_per_sample_;
    if (graft::on_cuda(x)) return forward_gpu(ctx, *params[0], x, y, count);
    const float* ids = graft::f32(x);
    const float* table = graft::f32(*params[0]);
    float* ys = graft::f32(y);
    for (int64_t i = 0; i < count; ++i) {
      const int64_t row = checked_row(ids[i], i);
      std::memcpy(ys + i * dim_, table + row * dim_, static_cast<size_t>(dim_) * sizeof(float));
    }
  }

  // dweight[id] += dy of every position that read row id; ids have no gradient (dx = 0).
  void backward(const graft::Context& ctx, const DLTensor* const*, const DLTensor& x,
                const DLTensor&, const DLTensor& dy, DLTensor* dx, DLTensor* const* grads,
                DLTensor*) override {
    graft::require_device(x, "embedding");
    const int64_t count = graft::rows(x) * ids_per_sample_;
    // forward has reported any bad id of this batch; here such ids add nothing.
    if (graft::on_cuda(x)) {
      graft::check_launch("embedding", graft::embedding::cuda::weight_gradient(
                                           graft::f32(x), count, graft::f32(dy), rows_, dim_,
                                           graft::f32(*grads[0]), ctx.stream));
      if (dx) graft::fill(ctx, *dx, 0.0f);
      return;
    }
    const float* ids = graft::f32(x);
    const float* dys = graft::f32(dy);
    float* grad = graft::f32(*grads[0]);
    for (int64_t i = 0; i < count; ++i) {
      float* grad_row = grad + checked_row(ids[i], i) * dim_;
      const float* dy_row = dys + i * dim_;
      for (int64_t e = 0; e < dim_; ++e) grad_row[e] += dy_row[e];
    }
    if (dx) graft::fill(ctx, *dx, 0.0f);
  }

 private:
  // The table row of the id at position i, or an error naming the sample, the position and
  // the bad value.
  int64_t checked_row(float id, int64_t i) const {
    const int64_t row = graft::embedding::row_of(id, rows_);
    GRAFT_CHECK(row >= 0, "embedding: id "
                              << id << " (sample " << i / ids_per_sample_ << ", position "
                              << i % ids_per_sample_ << ") is not an integer in [0, " << rows_
                              << "); check the data's ids against num_embeddings = " << rows_);
    return row;
  }

  // bytes from GPU memory to host memory; waits for the stream's kernels.
  void copy_to_host(const graft::Context& ctx, DLDevice device, const void* from, void* to,
                    int64_t bytes) const {
    const DLDataType byte{kDLUInt, 8, 1};
    DLTensor source{const_cast<void*>(from), device, 1, byte, &bytes, nullptr, 0};
    DLTensor target{to, DLDevice{kDLCPU, 0}, 1, byte, &bytes, nullptr, 0};
    graft::check(host_->copy(&ctx, &source, &target));
  }

  // The lookup, then the position of the first bad id copied back (one int64, a wait on the
  // stream) and reported with the CPU's message.
  void forward_gpu(const graft::Context& ctx, const DLTensor& table, const DLTensor& x, DLTensor& y,
                   int64_t count) {
    if (!gpu_first_bad_ || gpu_first_bad_.device().device_id != x.device.device_id) {
      gpu_first_bad_.reset();
      gpu_first_bad_ = graft::DeviceMemory(host_, x.device, sizeof(int64_t), "embedding");
    }
    graft::check_launch("embedding", graft::embedding::cuda::forward(
                                         graft::f32(x), count, graft::f32(table), rows_, dim_,
                                         graft::f32(y), gpu_first_bad_.as<int64_t>(), ctx.stream));
    int64_t first_bad = count;
    copy_to_host(ctx, x.device, gpu_first_bad_.data(), &first_bad, sizeof first_bad);
    if (first_bad >= count) return;
    float id = 0.0f;
    copy_to_host(ctx, x.device, graft::f32(x) + first_bad, &id, sizeof id);
    checked_row(id, first_bad);
  }

  // One int64 on x's GPU, from the first call there: forward's first bad id.
  graft::DeviceMemory gpu_first_bad_;

  graft::Host host_;
  graft::Shape input_;
  int64_t rows_;  // V
  int64_t dim_;   // E
  float init_std_;
  int64_t ids_per_sample_;  // T
};

}  // namespace

GRAFT_PLUGIN_LIBRARY("embedding", "0.1.0",
                     graft::layer<Embedding>("embedding",
                                             "lookup table from integer ids to learned vectors "
                                             "(torch Embedding)",
                                             graft::kCudaEntry))
