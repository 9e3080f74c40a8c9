// An example loss: Huber (smooth L1) as torch.nn.HuberLoss — quadratic for errors below delta,
// linear above, so outliers pull less than with mse. It shows the loss kind's contract: forward
// returns the SUM over rows of each row's loss, backward writes scale * d(sum)/d(prediction).
#include <cmath>

#include <graft/cpp/plugin.hpp>

namespace {

// prediction, target: (N, E) float32, E = the prediction's elements per sample.
class Huber final : public graft::Loss {
 public:
  static std::vector<graft::OptionDef> options() {
    return {graft::option_float("delta", 1.0, "where the loss turns from quadratic to linear")
                .range(1e-6, 1e6)};
  }

  Huber(const graft::Options& options, const graft::Shape& prediction,
        const graft_target_info& target, graft::Host)
      : delta_(options.get_float("delta")), elements_(prediction.numel()) {
    GRAFT_CHECK(target.dtype.code == kDLFloat && target.dtype.bits == 32 && target.classes == 0,
                "huber: targets must be float32 values (a regression dataset); for class "
                "labels use cross_entropy");
    GRAFT_CHECK(graft::Shape(target.shape).numel() == elements_,
                "huber: the model outputs " << prediction.str() << " per sample but targets are "
                                            << graft::Shape(target.shape).str());
  }

  // Each row's loss is the mean over its E elements; the host divides the sum by the batch.
  void forward(const graft::Context&, const DLTensor& prediction, const DLTensor& target,
               double& loss_sum, double*) override {
    check_batch(prediction, target);
    const float* p = graft::f32(prediction);
    const float* t = graft::f32(target);
    double total = 0.0;
    for (int64_t i = 0; i < graft::numel(prediction); ++i) {
      const double error = std::fabs(double(p[i]) - t[i]);
      total += error <= delta_ ? 0.5 * error * error : delta_ * (error - 0.5 * delta_);
    }
    loss_sum = total / double(elements_);
  }

  // d/dp of the row mean is clamp(p - t, -delta, delta) / E.
  void backward(const graft::Context&, const DLTensor& prediction, const DLTensor& target,
                float scale, DLTensor& dprediction) override {
    check_batch(prediction, target);
    const float* p = graft::f32(prediction);
    const float* t = graft::f32(target);
    float* d = graft::f32(dprediction);
    const double factor = double(scale) / double(elements_);
    for (int64_t i = 0; i < graft::numel(prediction); ++i) {
      const double error = double(p[i]) - t[i];
      d[i] = float(factor * std::fmax(-delta_, std::fmin(delta_, error)));
    }
  }

 private:
  void check_batch(const DLTensor& prediction, const DLTensor& target) const {
    GRAFT_CHECK(graft::on_cpu(prediction) && graft::on_cpu(target),
                "huber: only CPU tensors are supported");
    GRAFT_CHECK(
        graft::cols(prediction) == elements_ && graft::numel(target) == graft::numel(prediction),
        "huber: prediction and target batches do not match");
  }

  double delta_;
  int64_t elements_;
};

}  // namespace

GRAFT_PLUGIN_LIBRARY("huber_loss", "0.1.0",
                     graft::loss<Huber>("huber",
                                        "smooth L1: quadratic below delta, linear above "
                                        "(torch HuberLoss)"))
