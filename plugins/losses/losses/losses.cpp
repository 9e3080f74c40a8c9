// The built-in losses: mse, mae, cross_entropy (logits, int32 labels) and bce_with_logits.
// forward returns sums over rows of the per-row loss (a mean over the row's elements).
#include <cmath>
#include <string>
#include <vector>

#include "graft/cpp/plugin.hpp"
#include "loss_rows.hpp"
#if GRAFT_PLUGIN_WITH_CUDA
#include "losses_cuda.hpp"
#endif

namespace {

bool is_float32(const DLDataType& t) { return t.code == kDLFloat && t.bits == 32 && t.lanes == 1; }
bool is_int32(const DLDataType& t) { return t.code == kDLInt && t.bits == 32 && t.lanes == 1; }

std::string dtype_name(const DLDataType& t) {
  if (is_float32(t)) return "float32";
  if (is_int32(t)) return "int32";
  return "dtype (code " + std::to_string(t.code) + ", " + std::to_string(t.bits) + " bits)";
}

// cross_entropy has CUDA kernels in a CUDA build; the other losses run on the CPU.
#if GRAFT_PLUGIN_WITH_CUDA
constexpr bool kGpu = true;
#else
constexpr bool kGpu = false;
#endif

void require_cpu(const DLTensor& t, const char* name) {
  if (!graft::on_cpu(t))
    throw graft::Error(GRAFT_ERR_UNSUPPORTED,
                       std::string(name) + ": this build has no CUDA kernels");
}

// The batch a loss is handed: prediction (N, E...) and target with N rows and `target_cols`,
// on the CPU unless the loss has kernels for the GPU (`gpu_ok`).
void require_batch(const char* name, const DLTensor& prediction, int64_t elements,
                   const DLTensor& target, int64_t target_cols, bool int_target,
                   bool gpu_ok = false) {
  if (!(gpu_ok && prediction.device.device_type == kDLCUDA)) require_cpu(prediction, name);
  GRAFT_CHECK(target.device.device_type == prediction.device.device_type,
              name << ": the target and the prediction are on different devices");
  GRAFT_CHECK(graft::cols(prediction) == elements,
              name << ": prediction rows have " << graft::cols(prediction) << " elements, expected "
                   << elements);
  GRAFT_CHECK(graft::rows(target) == graft::rows(prediction) && graft::cols(target) == target_cols,
              name << ": target batch of " << graft::rows(target) << " rows x "
                   << graft::cols(target) << " does not match " << graft::rows(prediction)
                   << " rows x " << target_cols);
  GRAFT_CHECK(int_target ? is_int32(target.dtype) : is_float32(target.dtype),
              name << ": target tensor is " << dtype_name(target.dtype) << ", expected "
                   << (int_target ? "int32" : "float32"));
}

// Regression losses compare float targets with predictions of the same element count.
void require_float_target(const char* name, const graft::Shape& prediction,
                          const graft_target_info& target) {
  GRAFT_CHECK(is_float32(target.dtype),
              name << ": targets must be float32 values, but the dataset gives "
                   << dtype_name(target.dtype)
                   << (target.classes > 0 ? " class labels; use cross_entropy for classes" : ""));
  const graft::Shape target_shape(target.shape);
  GRAFT_CHECK(target_shape.numel() == prediction.numel(),
              name << ": the model outputs " << prediction.str() << " per sample but targets are "
                   << target_shape.str() << "; make the last layer's output match the target");
}

// Mean squared error: per row, mean over elements of (p - t)^2 (PyTorch's reduction='mean'
// once the host divides by the batch).
class MeanSquaredError : public graft::Loss {
 public:
  static std::vector<graft::OptionDef> options() { return {}; }
  MeanSquaredError(const graft::Options&, const graft::Shape& prediction,
                   const graft_target_info& target, graft::Host)
      : elements_(prediction.numel()) {
    require_float_target("mse", prediction, target);
  }

  // prediction, target: (N, E).
  void forward(const graft::Context&, const DLTensor& prediction, const DLTensor& target,
               double& loss_sum, double*) override {
    require_batch("mse", prediction, elements_, target, elements_, false);
    const float* p = graft::f32(prediction);
    const float* t = graft::f32(target);
    const int64_t count = graft::numel(prediction);
    double total = 0.0;
    for (int64_t i = 0; i < count; ++i) {
      const double difference = static_cast<double>(p[i]) - t[i];
      total += difference * difference;
    }
    loss_sum = total / static_cast<double>(elements_);
  }

  void backward(const graft::Context&, const DLTensor& prediction, const DLTensor& target,
                float scale, DLTensor& dprediction) override {
    require_batch("mse", prediction, elements_, target, elements_, false);
    const float* p = graft::f32(prediction);
    const float* t = graft::f32(target);
    float* d = graft::f32(dprediction);
    const float factor = 2.0f * scale / static_cast<float>(elements_);
    const int64_t count = graft::numel(prediction);
    for (int64_t i = 0; i < count; ++i) d[i] = factor * (p[i] - t[i]);
  }

 private:
  int64_t elements_;  // E
};

// Mean absolute error: per row, mean over elements of |p - t|; the gradient at p == t is 0.
class MeanAbsoluteError : public graft::Loss {
 public:
  static std::vector<graft::OptionDef> options() { return {}; }
  MeanAbsoluteError(const graft::Options&, const graft::Shape& prediction,
                    const graft_target_info& target, graft::Host)
      : elements_(prediction.numel()) {
    require_float_target("mae", prediction, target);
  }

  void forward(const graft::Context&, const DLTensor& prediction, const DLTensor& target,
               double& loss_sum, double*) override {
    require_batch("mae", prediction, elements_, target, elements_, false);
    const float* p = graft::f32(prediction);
    const float* t = graft::f32(target);
    const int64_t count = graft::numel(prediction);
    double total = 0.0;
    for (int64_t i = 0; i < count; ++i) total += std::fabs(static_cast<double>(p[i]) - t[i]);
    loss_sum = total / static_cast<double>(elements_);
  }

  void backward(const graft::Context&, const DLTensor& prediction, const DLTensor& target,
                float scale, DLTensor& dprediction) override {
    require_batch("mae", prediction, elements_, target, elements_, false);
    const float* p = graft::f32(prediction);
    const float* t = graft::f32(target);
    float* d = graft::f32(dprediction);
    const float factor = scale / static_cast<float>(elements_);
    const int64_t count = graft::numel(prediction);
    for (int64_t i = 0; i < count; ++i)
      d[i] = p[i] > t[i] ? factor : (p[i] < t[i] ? -factor : 0.0f);
  }

 private:
  int64_t elements_;
};

// Cross entropy of logits (N, C) against int32 labels (N,), with optional label smoothing.
class CrossEntropy : public graft::Loss {
 public:
  static std::vector<graft::OptionDef> options() {
    return {graft::option_float("label_smoothing", 0.0,
                                "mass spread evenly over all classes, in [0, 1)")
                .range(0.0, 1.0)};
  }
  CrossEntropy(const graft::Options& o, const graft::Shape& prediction,
               const graft_target_info& target, graft::Host host)
      : host_(host), classes_(prediction.numel()),
        smoothing_(static_cast<float>(o.get_float("label_smoothing"))) {
    GRAFT_CHECK(is_int32(target.dtype) && target.classes > 0,
                "cross_entropy: targets must be int32 class labels, but the dataset gives "
                    << dtype_name(target.dtype) << " values"
                    << (is_float32(target.dtype) ? "; use mse, mae or bce_with_logits for them"
                                                 : ""));
    GRAFT_CHECK(graft::Shape(target.shape).numel() == 1,
                "cross_entropy: one label per sample expected, targets are "
                    << graft::Shape(target.shape).str());
    GRAFT_CHECK(prediction.ndim == 1 && prediction.dims[0] == target.classes,
                "cross_entropy: the model outputs " << prediction.str() << " per sample but the "
                    << "dataset has " << target.classes << " classes; end the model with a "
                    << "layer of units = " << target.classes);
    GRAFT_CHECK(smoothing_ < 1.0f, "cross_entropy: label_smoothing must be below 1, got "
                                       << smoothing_);
  }

  std::vector<std::string> metrics() const override { return {"accuracy"}; }

  ~CrossEntropy() override {
#if GRAFT_PLUGIN_WITH_CUDA
    if (gpu_scratch_) host_->free(gpu_device_, gpu_scratch_);
#endif
  }

  // prediction: (N, C) logits; target: (N,) labels in [0, C).
  void forward(const graft::Context& ctx, const DLTensor& prediction, const DLTensor& target,
               double& loss_sum, double* metric_sums) override {
    require_batch("cross_entropy", prediction, classes_, target, 1, true, kGpu);
    const int64_t n = graft::rows(prediction);
#if GRAFT_PLUGIN_WITH_CUDA
    if (prediction.device.device_type == kDLCUDA)
      return forward_gpu(ctx, prediction, target, n, loss_sum, metric_sums);
#else
    (void)ctx;
#endif
    const float* z = graft::f32(prediction);
    const int32_t* labels = graft::i32(target);
    double total = 0.0;
    int64_t correct = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float* row = z + i * classes_;
      const int32_t label = checked_label(labels, i);
      total += graft::losses::cross_entropy_row(row, classes_, label, smoothing_);
      correct += graft::losses::argmax(row, classes_) == label ? 1 : 0;
    }
    loss_sum = total;
    if (metric_sums) metric_sums[0] = static_cast<double>(correct);
  }

  void backward(const graft::Context& ctx, const DLTensor& prediction, const DLTensor& target,
                float scale, DLTensor& dprediction) override {
    require_batch("cross_entropy", prediction, classes_, target, 1, true, kGpu);
    const int64_t n = graft::rows(prediction);
#if GRAFT_PLUGIN_WITH_CUDA
    if (prediction.device.device_type == kDLCUDA)
      return check_launch(graft::losses::cuda::cross_entropy_gradient(
          graft::f32(prediction), graft::i32(target), n, classes_, smoothing_, scale,
          graft::f32(dprediction), ctx.stream));
#else
    (void)ctx;
#endif
    const int32_t* labels = graft::i32(target);
    for (int64_t i = 0; i < n; ++i)
      graft::losses::cross_entropy_row_gradient(graft::f32(prediction) + i * classes_, classes_,
                                                checked_label(labels, i), smoothing_, scale,
                                                graft::f32(dprediction) + i * classes_);
  }

 private:
  int32_t checked_label(const int32_t* labels, int64_t row) const {
    const int32_t label = labels[row];
    if (label < 0 || label >= classes_)
      throw graft::Error(GRAFT_ERR_CORRUPT_DATA,
                         "cross_entropy: row " + std::to_string(row) + " has label " +
                             std::to_string(label) + ", outside the classes 0.." +
                             std::to_string(classes_ - 1));
    return label;
  }

#if GRAFT_PLUGIN_WITH_CUDA
  static void check_launch(const char* error) {
    if (error) throw graft::Error(GRAFT_ERR_RUNTIME, std::string("cross_entropy: CUDA: ") + error);
  }

  // Per-row losses, hits and bad-label marks from the kernel, copied back and summed in double
  // here, as the CPU loop sums them. The device scratch grows only (the caching allocator's).
  void forward_gpu(const graft::Context& ctx, const DLTensor& prediction, const DLTensor& target,
                   int64_t n, double& loss_sum, double* metric_sums) {
    const size_t bytes = size_t(n) * 3 * sizeof(float);
    if (bytes > gpu_bytes_ || prediction.device.device_id != gpu_device_.device_id) {
      if (gpu_scratch_) host_->free(gpu_device_, gpu_scratch_);
      gpu_device_ = prediction.device;
      gpu_scratch_ = host_->alloc(gpu_device_, bytes);
      GRAFT_CHECK(gpu_scratch_, "cross_entropy: out of GPU memory for " << n << " rows");
      gpu_bytes_ = bytes;
    }
    auto* row_loss = static_cast<float*>(gpu_scratch_);
    auto* row_correct = reinterpret_cast<int32_t*>(row_loss + n);
    auto* row_bad = row_correct + n;
    check_launch(graft::losses::cuda::cross_entropy_rows(graft::f32(prediction), graft::i32(target), n,
                                          classes_, smoothing_, row_loss, row_correct, row_bad,
                                          ctx.stream));
    host_rows_.resize(size_t(n) * 3);
    int64_t shape = n * 3;
    DLTensor from{gpu_scratch_, gpu_device_, 1, DLDataType{kDLFloat, 32, 1}, &shape, nullptr, 0};
    DLTensor to{host_rows_.data(), DLDevice{kDLCPU, 0}, 1, DLDataType{kDLFloat, 32, 1}, &shape,
                nullptr, 0};
    graft::check(host_->copy(&ctx, &from, &to));  // waits for the kernel
    const float* losses = host_rows_.data();
    const auto* hits = reinterpret_cast<const int32_t*>(losses + n);
    const int32_t* bad = hits + n;
    double total = 0.0;
    int64_t correct = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (bad[i]) {
        int32_t label = 0;  // the label itself, for the message
        DLTensor one{static_cast<int32_t*>(target.data) + i, target.device, 0,
                     DLDataType{kDLInt, 32, 1}, nullptr, nullptr, target.byte_offset};
        DLTensor here{&label, DLDevice{kDLCPU, 0}, 0, DLDataType{kDLInt, 32, 1}, nullptr,
                      nullptr, 0};
        graft::check(host_->copy(&ctx, &one, &here));
        checked_label(&label, 0);
      }
      total += losses[i];
      correct += hits[i];
    }
    loss_sum = total;
    if (metric_sums) metric_sums[0] = static_cast<double>(correct);
  }

  void* gpu_scratch_ = nullptr;
  size_t gpu_bytes_ = 0;
  DLDevice gpu_device_{kDLCUDA, 0};
  std::vector<float> host_rows_;
#endif
  graft::Host host_;
  int64_t classes_;  // C
  float smoothing_;
};

// Binary cross entropy on logits against float targets in [0, 1], element by element;
// accuracy counts an element right when (logit > 0) == (target > 0.5).
class BinaryCrossEntropyWithLogits : public graft::Loss {
 public:
  static std::vector<graft::OptionDef> options() { return {}; }
  BinaryCrossEntropyWithLogits(const graft::Options&, const graft::Shape& prediction,
                               const graft_target_info& target, graft::Host)
      : elements_(prediction.numel()) {
    require_float_target("bce_with_logits", prediction, target);
  }

  std::vector<std::string> metrics() const override { return {"accuracy"}; }

  // prediction, target: (N, E); per row the loss and the accuracy are means over E.
  void forward(const graft::Context&, const DLTensor& prediction, const DLTensor& target,
               double& loss_sum, double* metric_sums) override {
    require_batch("bce_with_logits", prediction, elements_, target, elements_, false);
    const float* z = graft::f32(prediction);
    const float* t = graft::f32(target);
    const int64_t count = graft::numel(prediction);
    double total = 0.0;
    int64_t correct = 0;
    for (int64_t i = 0; i < count; ++i) {
      total += graft::losses::bce_with_logits(z[i], t[i]);
      correct += (z[i] > 0.0f) == (t[i] > 0.5f) ? 1 : 0;
    }
    loss_sum = total / static_cast<double>(elements_);
    if (metric_sums) metric_sums[0] = static_cast<double>(correct) / static_cast<double>(elements_);
  }

  void backward(const graft::Context&, const DLTensor& prediction, const DLTensor& target,
                float scale, DLTensor& dprediction) override {
    require_batch("bce_with_logits", prediction, elements_, target, elements_, false);
    const float* z = graft::f32(prediction);
    const float* t = graft::f32(target);
    float* d = graft::f32(dprediction);
    const float factor = scale / static_cast<float>(elements_);
    const int64_t count = graft::numel(prediction);
    for (int64_t i = 0; i < count; ++i)
      d[i] = factor * graft::losses::bce_with_logits_gradient(z[i], t[i]);
  }

 private:
  int64_t elements_;
};

}  // namespace

GRAFT_PLUGIN_LIBRARY(
    "losses", "0.1.0",
    graft::loss<MeanSquaredError>("mse", "mean squared error"),
    graft::loss<MeanAbsoluteError>("mae", "mean absolute error"),
    graft::loss<CrossEntropy>("cross_entropy", "softmax cross entropy of logits and int32 labels",
                              kGpu ? GRAFT_ENTRY_HAS_CUDA : 0u),
    graft::loss<BinaryCrossEntropyWithLogits>("bce_with_logits",
                                              "binary cross entropy of logits, float targets"))
