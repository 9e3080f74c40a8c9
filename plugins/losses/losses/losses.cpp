// The built-in losses: mse, mae, cross_entropy (logits, int32 labels) and bce_with_logits.
// forward returns sums over rows of the per-row loss (a mean over the row's elements).
#include <string>
#include <vector>

#include "graft/cpp/device.hpp"
#include "graft/cpp/plugin.hpp"
#include "loss_rows.hpp"
#include "losses_cuda.hpp"

namespace {

bool is_float32(const DLDataType& t) { return t.code == kDLFloat && t.bits == 32 && t.lanes == 1; }
bool is_int32(const DLDataType& t) { return t.code == kDLInt && t.bits == 32 && t.lanes == 1; }

std::string dtype_name(const DLDataType& t) {
  if (is_float32(t)) return "float32";
  if (is_int32(t)) return "int32";
  return "dtype (code " + std::to_string(t.code) + ", " + std::to_string(t.bits) + " bits)";
}

// The batch a loss is handed: prediction (N, E...) and target with N rows and `target_cols`,
// on a device this build runs (every loss here has CUDA kernels in a CUDA build).
void require_batch(const char* name, const DLTensor& prediction, int64_t elements,
                   const DLTensor& target, int64_t target_cols, bool int_target) {
  graft::require_device(prediction, name);
  GRAFT_CHECK(target.device.device_type == prediction.device.device_type,
              name << ": the target and the prediction are on different devices");
  GRAFT_CHECK(graft::cols(prediction) == elements, name << ": prediction rows have "
                                                        << graft::cols(prediction)
                                                        << " elements, expected " << elements);
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

// A loss kernel's per-row results: device memory that grows only (the caching allocator's),
// and their copy on the host, where forward sums them in row order as the CPU loops sum.
class RowResults {
 public:
  explicit RowResults(graft::Host host) : host_(host) {}

  // At least `bytes` of memory on `device` for the kernel to fill.
  void* device_memory(DLDevice device, size_t bytes, const char* name) {
    if (bytes > device_memory_.bytes() || device.device_id != device_memory_.device().device_id) {
      device_memory_.reset();
      device_memory_ = graft::DeviceMemory(host_, device, bytes, name);
    }
    return device_memory_.data();
  }

  // The first `bytes` of the memory on `device`, on the host: a copy by `device` (even of
  // nothing, for no rows), which waits for the kernel.
  const void* to_host(const graft::Context& ctx, DLDevice device, size_t bytes) {
    host_copy_.resize((bytes + sizeof(double) - 1) / sizeof(double));
    int64_t shape = static_cast<int64_t>(bytes);
    const DLDataType byte{kDLUInt, 8, 1};
    DLTensor from{device_memory_.data(), device, 1, byte, &shape, nullptr, 0};
    DLTensor to{host_copy_.data(), DLDevice{kDLCPU, 0}, 1, byte, &shape, nullptr, 0};
    graft::check(host_->copy(&ctx, &from, &to));
    return host_copy_.data();
  }

 private:
  graft::Host host_;
  graft::DeviceMemory device_memory_;
  std::vector<double> host_copy_;
};

using graft::losses::ElementLoss;

constexpr const char* loss_name(ElementLoss kind) {
  return kind == ElementLoss::mse ? "mse" : kind == ElementLoss::mae ? "mae" : "bce_with_logits";
}

// mse, mae and bce_with_logits: predictions (N, E) against float targets (N, E), per row the mean
// over E of element_loss (PyTorch's reduction='mean' once the host divides by the batch).
// bce_with_logits reports accuracy too: per row the fraction of elements that element_hit.
template <ElementLoss K>
class ElementwiseLoss : public graft::Loss {
 public:
  static constexpr const char* kName = loss_name(K);
  static constexpr bool kAccuracy = K == ElementLoss::bce_with_logits;

  static std::vector<graft::OptionDef> options() { return {}; }
  ElementwiseLoss(const graft::Options&, const graft::Shape& prediction,
                  const graft_target_info& target, graft::Host host)
      : elements_(prediction.numel()), gpu_rows_(host) {
    require_float_target(kName, prediction, target);
  }

  std::vector<std::string> metrics() const override {
    if (kAccuracy) return {"accuracy"};
    return {};
  }

  // prediction, target: (N, E).
  void forward(const graft::Context& ctx, const DLTensor& prediction, const DLTensor& target,
               double& loss_sum, double* metric_sums) override {
    require_batch(kName, prediction, elements_, target, elements_, false);
    double total = 0.0, hits = 0.0;
    if (graft::on_cuda(prediction))
      sums_gpu(ctx, prediction, target, total, hits);
    else
      sums_cpu(prediction, target, total, hits);
    loss_sum = total / static_cast<double>(elements_);
    if (kAccuracy && metric_sums) metric_sums[0] = hits / static_cast<double>(elements_);
  }

  void backward(const graft::Context& ctx, const DLTensor& prediction, const DLTensor& target,
                float scale, DLTensor& dprediction) override {
    require_batch(kName, prediction, elements_, target, elements_, false);
    const float factor = graft::losses::gradient_factor(K, scale, elements_);
    const int64_t count = graft::numel(prediction);
    const float* p = graft::f32(prediction);
    const float* t = graft::f32(target);
    float* d = graft::f32(dprediction);
    if (graft::on_cuda(prediction))
      return graft::check_launch(
          kName, graft::losses::cuda::element_gradient(K, p, t, count, factor, d, ctx.stream));
    for (int64_t i = 0; i < count; ++i)
      d[i] = graft::losses::element_gradient(K, p[i], t[i], factor);
  }

 private:
  // total = the sum of element_loss over the batch, hits = the count of element_hit.
  void sums_cpu(const DLTensor& prediction, const DLTensor& target, double& total,
                double& hits) const {
    const float* p = graft::f32(prediction);
    const float* t = graft::f32(target);
    const int64_t count = graft::numel(prediction);
    int64_t correct = 0;
    for (int64_t i = 0; i < count; ++i) {
      total += graft::losses::element_loss(K, p[i], t[i]);
      if (kAccuracy) correct += graft::losses::element_hit(p[i], t[i]) ? 1 : 0;
    }
    hits = static_cast<double>(correct);
  }

  // As sums_cpu, from per-row sums the kernel leaves, added here in row order.
  void sums_gpu(const graft::Context& ctx, const DLTensor& prediction, const DLTensor& target,
                double& total, double& hits) {
    const int64_t n = graft::rows(prediction);
    const size_t bytes = static_cast<size_t>(n) * (kAccuracy ? 2 : 1) * sizeof(double);
    auto* row_loss = static_cast<double*>(gpu_rows_.device_memory(prediction.device, bytes, kName));
    graft::check_launch(kName, graft::losses::cuda::element_rows(
                                   K, graft::f32(prediction), graft::f32(target), n, elements_,
                                   row_loss, kAccuracy ? row_loss + n : nullptr, ctx.stream));
    const auto* rows = static_cast<const double*>(gpu_rows_.to_host(ctx, prediction.device, bytes));
    for (int64_t i = 0; i < n; ++i) total += rows[i];
    if (kAccuracy)
      for (int64_t i = 0; i < n; ++i) hits += rows[n + i];
  }

  int64_t elements_;  // E
  RowResults gpu_rows_;
};

// Cross entropy of logits (N, C) against int32 labels (N,), with optional label smoothing; or
// of a sequence's logits (N, T..., C) against labels (N, T...): a sample's loss is the mean over
// its T positions, so the host's mean over samples is the mean over all N * T positions, as
// torch's F.cross_entropy over (B * T, C) logits.
class CrossEntropy : public graft::Loss {
 public:
  static std::vector<graft::OptionDef> options() {
    return {graft::option_float("label_smoothing", 0.0,
                                "mass spread evenly over all classes, in [0, 1)")
                .range(0.0, 1.0)};
  }
  CrossEntropy(const graft::Options& o, const graft::Shape& prediction,
               const graft_target_info& target, graft::Host host)
      : host_(host),
        gpu_rows_(host),
        positions_(graft::Shape(target.shape).numel()),
        classes_(prediction.ndim ? prediction[prediction.ndim - 1] : 1),
        smoothing_(static_cast<float>(o.get_float("label_smoothing"))) {
    GRAFT_CHECK(
        is_int32(target.dtype) && target.classes > 0,
        "cross_entropy: targets must be int32 class labels, but the dataset gives "
            << dtype_name(target.dtype) << " values"
            << (is_float32(target.dtype) ? "; use mse, mae or bce_with_logits for them" : ""));
    const graft::Shape labels(target.shape);
    // One label (any shape of one element) takes (C) logits; T labels take (T, C).
    bool leading_match = prediction.ndim == labels.ndim + 1;
    for (int a = 0; leading_match && a + 1 < prediction.ndim; ++a)
      leading_match = prediction[a] == labels[a];
    leading_match = leading_match || (labels.numel() == 1 && prediction.ndim == 1);
    GRAFT_CHECK(leading_match, "cross_entropy: the model outputs "
                                   << prediction.str() << " per sample but the targets are "
                                   << labels.str() << "; a sample needs one row of logits per "
                                   << "label: (C) for one label, (T, C) for T labels");
    GRAFT_CHECK(prediction[prediction.ndim - 1] == target.classes,
                "cross_entropy: the model outputs " << prediction.str() << " per sample but the "
                                                    << "dataset has " << target.classes
                                                    << " classes; end the model with a "
                                                    << "layer of units = " << target.classes);
    GRAFT_CHECK(smoothing_ < 1.0f,
                "cross_entropy: label_smoothing must be below 1, got " << smoothing_);
  }

  std::vector<std::string> metrics() const override { return {"accuracy"}; }

  // prediction: (N, T, C) logits; target: (N, T) labels in [0, C); the rows are the N * T.
  void forward(const graft::Context& ctx, const DLTensor& prediction, const DLTensor& target,
               double& loss_sum, double* metric_sums) override {
    require_batch("cross_entropy", prediction, positions_ * classes_, target, positions_, true);
    const int64_t n = graft::rows(prediction) * positions_;
    if (graft::on_cuda(prediction))
      return forward_gpu(ctx, prediction, target, n, loss_sum, metric_sums);
    const float* z = graft::f32(prediction);
    const int32_t* labels = graft::i32(target);
    double total = 0.0;
    int64_t correct = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float* row = z + i * classes_;
      const int32_t label = checked_label(labels[i], i);
      total += graft::losses::cross_entropy_row(row, classes_, label, smoothing_);
      correct += graft::losses::argmax(row, classes_) == label ? 1 : 0;
    }
    loss_sum = total / static_cast<double>(positions_);
    if (metric_sums)
      metric_sums[0] = static_cast<double>(correct) / static_cast<double>(positions_);
  }

  void backward(const graft::Context& ctx, const DLTensor& prediction, const DLTensor& target,
                float scale_per_sample, DLTensor& dprediction) override {
    require_batch("cross_entropy", prediction, positions_ * classes_, target, positions_, true);
    const int64_t n = graft::rows(prediction) * positions_;
    const float scale = scale_per_sample / static_cast<float>(positions_);
    if (graft::on_cuda(prediction))
      return graft::check_launch(
          "cross_entropy", graft::losses::cuda::cross_entropy_gradient(
                               graft::f32(prediction), graft::i32(target), n, classes_, smoothing_,
                               scale, graft::f32(dprediction), ctx.stream));
    const int32_t* labels = graft::i32(target);
    for (int64_t i = 0; i < n; ++i)
      graft::losses::cross_entropy_row_gradient(graft::f32(prediction) + i * classes_, classes_,
                                                checked_label(labels[i], i), smoothing_, scale,
                                                graft::f32(dprediction) + i * classes_);
  }

 private:
  // The label of a row, or an error naming the row and the label.
  int32_t checked_label(int32_t label, int64_t row) const {
    if (label < 0 || label >= classes_)
      throw graft::Error(GRAFT_ERR_CORRUPT_DATA, "cross_entropy: row " + std::to_string(row) +
                                                     " has label " + std::to_string(label) +
                                                     ", outside the classes 0.." +
                                                     std::to_string(classes_ - 1));
    return label;
  }

  // Per-row losses, hits and bad-label marks from the kernel, copied back and summed in double
  // here, as the CPU loop sums them.
  void forward_gpu(const graft::Context& ctx, const DLTensor& prediction, const DLTensor& target,
                   int64_t n, double& loss_sum, double* metric_sums) {
    const size_t bytes = size_t(n) * 3 * sizeof(float);
    auto* row_loss =
        static_cast<float*>(gpu_rows_.device_memory(prediction.device, bytes, "cross_entropy"));
    auto* row_correct = reinterpret_cast<int32_t*>(row_loss + n);
    auto* row_bad = row_correct + n;
    graft::check_launch("cross_entropy",
                        graft::losses::cuda::cross_entropy_rows(
                            graft::f32(prediction), graft::i32(target), n, classes_, smoothing_,
                            row_loss, row_correct, row_bad, ctx.stream));
    const auto* losses =
        static_cast<const float*>(gpu_rows_.to_host(ctx, prediction.device, bytes));
    const auto* hits = reinterpret_cast<const int32_t*>(losses + n);
    const int32_t* bad = hits + n;
    double total = 0.0;
    int64_t correct = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (bad[i]) {
        int32_t label = 0;  // the label itself, for the message
        DLTensor one{static_cast<int32_t*>(target.data) + i,
                     target.device,
                     0,
                     DLDataType{kDLInt, 32, 1},
                     nullptr,
                     nullptr,
                     target.byte_offset};
        DLTensor here{&label, DLDevice{kDLCPU, 0}, 0, DLDataType{kDLInt, 32, 1}, nullptr, nullptr,
                      0};
        graft::check(host_->copy(&ctx, &one, &here));
        checked_label(label, i);
      }
      total += losses[i];
      correct += hits[i];
    }
    loss_sum = total / static_cast<double>(positions_);
    if (metric_sums)
      metric_sums[0] = static_cast<double>(correct) / static_cast<double>(positions_);
  }

  graft::Host host_;
  RowResults gpu_rows_;
  int64_t positions_;  // T: labels per sample
  int64_t classes_;    // C
  float smoothing_;
};

}  // namespace

GRAFT_PLUGIN_LIBRARY(
    "losses", "0.1.0",
    graft::loss<ElementwiseLoss<ElementLoss::mse>>("mse", "mean squared error", graft::kCudaEntry),
    graft::loss<ElementwiseLoss<ElementLoss::mae>>("mae", "mean absolute error", graft::kCudaEntry),
    graft::loss<CrossEntropy>("cross_entropy", "softmax cross entropy of logits and int32 labels",
                              graft::kCudaEntry),
    graft::loss<ElementwiseLoss<ElementLoss::bce_with_logits>>(
        "bce_with_logits", "binary cross entropy of logits, float targets", graft::kCudaEntry))
