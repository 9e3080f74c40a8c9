// Plugins driven through the runtime's plugin wrappers as the model drives them (layers,
// activations, losses) on owned CPU tensors, and the finite-difference gradient checker every
// such plugin goes through.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "check/tensor.hpp"
#include "plugin/layer_instance.hpp"
#include "plugin/loss_instance.hpp"
#include "plugin/registry.hpp"

namespace graft::checker {

// A layer plugin made through its vtable with the tensors the host would give it: parameters,
// their gradients, the workspace and x, y, dy, dx for a batch of `batch` samples.
// `options` is the bound table (runtime::bind_options); it need only live during construction.
class LayerUnderTest {
 public:
  LayerUnderTest(const runtime::PluginRecord& record, const graft_options& options,
                 const std::vector<int64_t>& input_shape, int64_t batch);

  // The plugin's description at this SDK's sizes (runtime::LayerInstance::describe).
  const graft_layer_desc& desc() const { return layer_.desc(); }
  // Parameters from each spec's init distribution (layer.h), drawn from rng rather than the
  // host's counter-based stream: for training loops in tests.
  void init_parameters(std::mt19937& rng);
  void zero_gradients();
  // Generation's positions (layer.h's set_positions).
  void set_positions(int64_t first, int64_t capacity) { layer_.set_positions(first, capacity); }
  // Throw runtime::UserError / Failure with the plugin's message on a failed call.
  void forward(const graft_exec_ctx& ctx);
  void backward(const graft_exec_ctx& ctx, bool want_dx = true);

  std::string name;
  std::vector<Tensor> params, grads;
  Tensor workspace, x, y, dy, dx;

 private:
  runtime::LayerInstance layer_;
};

// An activation plugin with x, y, dy, dx of one shape (batch axis first).
class ActivationUnderTest {
 public:
  ActivationUnderTest(const runtime::PluginRecord& record, const graft_options& options,
                      const std::vector<int64_t>& shape);

  bool elementwise() const { return activation_.elementwise(); }
  void forward(const graft_exec_ctx& ctx);
  void backward(const graft_exec_ctx& ctx);

  std::string name;
  Tensor x, y, dy, dx;

 private:
  runtime::LayerInstance activation_;
};

// Target info for int32 class labels (shape ()) or float32 values of a per-sample shape.
graft_target_info class_targets(int64_t classes);
graft_target_info float_targets(const std::vector<int64_t>& shape);

// A loss plugin with prediction, target and dprediction for `batch` rows.
class LossUnderTest {
 public:
  LossUnderTest(const runtime::PluginRecord& record, const graft_options& options,
                const std::vector<int64_t>& prediction_shape, const graft_target_info& target_info,
                int64_t batch);

  const std::vector<std::string>& metric_names() const { return loss_.metric_names(); }
  // Returns the loss sum; metric sums land in `metrics`.
  double forward(const graft_exec_ctx& ctx);
  void backward(const graft_exec_ctx& ctx, float scale);

  std::string name;
  Tensor prediction, target, dprediction;
  std::vector<double> metrics;

 private:
  runtime::LossInstance loss_;
};

struct GradientSettings {
  double epsilon = 1e-2;      // central-difference step; retried at epsilon / 10 on a mismatch
  double tolerance = 1e-2;    // relative error allowed per element
  uint32_t seed = 7;          // inputs, parameters and the projection r
  float input_scale = 1.0f;   // inputs uniform in [-scale, scale]
  float input_margin = 0.0f;  // inputs kept at least this far from 0 (kinks of relu)
  int64_t batch = 3;
  graft_exec_ctx ctx = cpu_context();
  // How inputs are drawn. uniform: in [-scale, scale] (with the margin). spaced: a shuffled,
  // evenly spaced grid over [-scale, scale], so no two inputs of a tensor lie closer than
  // 2 * scale / numel and a step of epsilon / 10 never swaps two (max-pooling's ties).
  // ids: integers in [0, id_limit) for layers that look values up (embedding); such inputs
  // have no gradient, so dx is not compared.
  enum class Inputs { uniform, spaced, ids } inputs = Inputs::uniform;
  int64_t id_limit = 8;
};

struct GradientReport {
  bool ok = true;
  int64_t checked = 0;                // elements compared
  double worst_error = 0.0;           // largest relative error seen
  std::vector<std::string> failures;  // one line per mismatching element (first few)
  std::string summary() const;
};

// numeric(i, step) is d(loss)/d(element i) by central differences with that step.
using NumericGradient = std::function<double(int64_t index, double step)>;

// Compares analytic[0..n) with numeric(i, .) element by element into report, labelled `what`.
// The error is |a - g| / max(|a|, |g|, floor) with floor = 0.1 * the largest |g| (small
// entries are judged against the tensor's scale); above tolerance the difference is retried
// with a tenth of the step, in case the first one straddled a kink.
void compare_gradient(const std::string& what, const float* analytic, int64_t n,
                      const NumericGradient& numeric, const GradientSettings& settings,
                      GradientReport& report);

// Uniform in [-scale, scale], redrawn while closer than margin to 0.
void fill_random(Tensor& t, std::mt19937& rng, float scale, float margin = 0.0f);
// A layer's or activation's inputs as settings.inputs says.
void fill_inputs(Tensor& t, std::mt19937& rng, const GradientSettings& settings);

// Checks dx and every parameter gradient of sum(y * r) for random x, parameters and r;
// also that grads accumulate (prefilled grads keep their value) and that dx = NULL gives
// the same parameter gradients.
GradientReport check_layer(const runtime::PluginRecord& record, const graft_options& options,
                           const std::vector<int64_t>& input_shape,
                           const GradientSettings& settings = {});

// Checks dx of sum(y * r); shape includes the batch axis.
GradientReport check_activation(const runtime::PluginRecord& record, const graft_options& options,
                                const std::vector<int64_t>& shape,
                                const GradientSettings& settings = {});

// Checks dprediction of the loss sum (backward with scale 0.5, divided back), for a target
// the caller filled (target rows = settings.batch).
GradientReport check_loss(const runtime::PluginRecord& record, const graft_options& options,
                          const std::vector<int64_t>& prediction_shape,
                          const graft_target_info& target_info, const Tensor& target,
                          const GradientSettings& settings = {});

}  // namespace graft::checker
