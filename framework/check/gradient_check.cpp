// The plugin drivers (owned CPU tensors around the runtime's plugin wrappers) and the
// finite-difference gradient checker: central differences of a random projection sum(y * r),
// computed in double over the float32 outputs.
#include "check/gradient_check.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

#include "device/host_api.hpp"
#include "util/errors.hpp"

namespace graft::checker {

namespace {

graft_shape to_shape(const std::vector<int64_t>& dims) {
  graft_shape s{};
  for (int64_t d : dims) s.dims[s.ndim++] = d;
  return s;
}

// {batch, dims of s...}
std::vector<int64_t> batched(int64_t batch, const graft_shape& s) {
  std::vector<int64_t> out{batch};
  out.insert(out.end(), s.dims, s.dims + s.ndim);
  return out;
}

void fill_nan(Tensor& t) {
  for (int64_t i = 0; i < t.numel(); ++i) t.f()[i] = std::numeric_limits<float>::quiet_NaN();
}

// Central difference of loss() in element i of t; the step actually taken in float32 is
// used as the denominator.
double central_difference(Tensor& t, int64_t i, double step, const std::function<double()>& loss) {
  const float original = t.f()[i];
  t.f()[i] = static_cast<float>(original + step);
  const double up = t.f()[i];
  const double loss_up = loss();
  t.f()[i] = static_cast<float>(original - step);
  const double down = t.f()[i];
  const double loss_down = loss();
  t.f()[i] = original;
  return (loss_up - loss_down) / (up - down);
}

double projection(const Tensor& y, const Tensor& r) {
  double sum = 0.0;
  for (int64_t i = 0; i < y.numel(); ++i) sum += static_cast<double>(y.f()[i]) * r.f()[i];
  return sum;
}

}  // namespace

void fill_random(Tensor& t, std::mt19937& rng, float scale, float margin) {
  std::uniform_real_distribution<float> uniform(-scale, scale);
  for (int64_t i = 0; i < t.numel(); ++i) {
    float v;
    do v = uniform(rng);
    while (std::fabs(v) < margin);
    t.f()[i] = v;
  }
}

void fill_inputs(Tensor& t, std::mt19937& rng, const GradientSettings& settings) {
  const int64_t n = t.numel();
  switch (settings.inputs) {
    case GradientSettings::Inputs::uniform:
      fill_random(t, rng, settings.input_scale, settings.input_margin);
      break;
    case GradientSettings::Inputs::spaced: {
      const double step = 2.0 * settings.input_scale / double(n);
      for (int64_t i = 0; i < n; ++i)
        t.f()[i] = static_cast<float>(-settings.input_scale + (double(i) + 0.5) * step);
      std::shuffle(t.f(), t.f() + n, rng);
      break;
    }
    case GradientSettings::Inputs::ids: {
      std::uniform_int_distribution<int64_t> id(0, settings.id_limit - 1);
      for (int64_t i = 0; i < n; ++i) t.f()[i] = static_cast<float>(id(rng));
      break;
    }
  }
}

LayerUnderTest::LayerUnderTest(const runtime::PluginRecord& record, const graft_options& options,
                               const std::vector<int64_t>& input_shape, int64_t batch)
    : name(record.name),
      workspace(std::vector<int64_t>{0}),
      x(std::vector<int64_t>{0}),
      y(std::vector<int64_t>{0}),
      dy(std::vector<int64_t>{0}),
      dx(std::vector<int64_t>{0}),
      layer_(record, options, to_shape(input_shape)) {
  const graft_layer_desc& desc = layer_.describe();
  for (size_t k = 0; k < desc.n_params; ++k) {
    const graft_shape& s = desc.params[k].shape;
    params.emplace_back(std::vector<int64_t>(s.dims, s.dims + s.ndim));
    grads.emplace_back(std::vector<int64_t>(s.dims, s.dims + s.ndim));
  }
  const graft_shape input = to_shape(input_shape);
  workspace = Tensor({batch, desc.workspace_per_sample});
  fill_nan(workspace);  // backward must read only what forward wrote
  x = Tensor(batched(batch, input));
  dx = Tensor(batched(batch, input));
  y = Tensor(batched(batch, desc.output));
  dy = Tensor(batched(batch, desc.output));
}

void LayerUnderTest::init_parameters(std::mt19937& rng) {
  for (size_t k = 0; k < params.size(); ++k) {
    const graft_param_spec& spec = desc().params[k];
    const double fan_in = static_cast<double>(spec.fan_in);
    const double fan_out = static_cast<double>(spec.fan_out);
    double low = 0.0, high = 0.0, stddev = 0.0;
    switch (spec.init) {
      case GRAFT_INIT_ONES: low = high = 1.0; break;
      case GRAFT_INIT_XAVIER_UNIFORM: high = spec.gain * std::sqrt(6.0 / (fan_in + fan_out)); break;
      case GRAFT_INIT_KAIMING_NORMAL: stddev = spec.gain * std::sqrt(2.0 / fan_in); break;
      case GRAFT_INIT_KAIMING_UNIFORM: high = spec.gain * std::sqrt(3.0 / fan_in); break;
      case GRAFT_INIT_NORMAL: stddev = spec.gain; break;
      case GRAFT_INIT_UNIFORM: high = spec.gain; break;
      default: break;
    }
    if (high > 0.0 && low == 0.0) low = -high;
    std::uniform_real_distribution<double> uniform(low, high);
    std::normal_distribution<double> normal(0.0, stddev > 0.0 ? stddev : 1.0);
    for (int64_t i = 0; i < params[k].numel(); ++i)
      params[k].f()[i] =
          static_cast<float>(stddev > 0.0 ? normal(rng) : (high > low ? uniform(rng) : low));
  }
}

void LayerUnderTest::zero_gradients() {
  for (Tensor& g : grads) std::memset(g.f(), 0, static_cast<size_t>(g.numel()) * sizeof(float));
}

void LayerUnderTest::forward(const graft_exec_ctx& ctx) {
  std::vector<const DLTensor*> p;
  for (const Tensor& t : params) p.push_back(t.get());
  DLTensor* ws = desc().workspace_per_sample > 0 ? workspace.get() : nullptr;
  layer_.forward(ctx, p.data(), x.get(), y.get(), ws);
}

void LayerUnderTest::backward(const graft_exec_ctx& ctx, bool want_dx) {
  std::vector<const DLTensor*> p;
  std::vector<DLTensor*> g;
  for (const Tensor& t : params) p.push_back(t.get());
  for (Tensor& t : grads) g.push_back(t.get());
  DLTensor* ws = desc().workspace_per_sample > 0 ? workspace.get() : nullptr;
  layer_.backward(ctx, p.data(), x.get(), y.get(), dy.get(), want_dx ? dx.get() : nullptr, g.data(),
                  ws);
}

ActivationUnderTest::ActivationUnderTest(const runtime::PluginRecord& record,
                                         const graft_options& options,
                                         const std::vector<int64_t>& shape)
    : name(record.name),
      x(shape),
      y(shape),
      dy(shape),
      dx(shape),
      activation_(record, options, graft_shape{}) {}
void ActivationUnderTest::forward(const graft_exec_ctx& ctx) {
  activation_.forward(ctx, nullptr, x.get(), y.get(), nullptr);
}
void ActivationUnderTest::backward(const graft_exec_ctx& ctx) {
  activation_.backward(ctx, nullptr, x.get(), y.get(), dy.get(), dx.get(), nullptr, nullptr);
}

graft_target_info class_targets(int64_t classes) {
  return graft_target_info{sizeof(graft_target_info), graft_shape{}, DLDataType{kDLInt, 32, 1},
                           classes};
}
graft_target_info float_targets(const std::vector<int64_t>& shape) {
  return graft_target_info{sizeof(graft_target_info), to_shape(shape), DLDataType{kDLFloat, 32, 1},
                           0};
}

LossUnderTest::LossUnderTest(const runtime::PluginRecord& record, const graft_options& options,
                             const std::vector<int64_t>& prediction_shape,
                             const graft_target_info& target_info, int64_t batch)
    : name(record.name),
      prediction(batched(batch, to_shape(prediction_shape))),
      target(batched(batch, target_info.shape), target_info.dtype),
      dprediction(batched(batch, to_shape(prediction_shape))),
      loss_(record, options, to_shape(prediction_shape), target_info) {
  metrics.assign(loss_.metric_names().size(), 0.0);
}

double LossUnderTest::forward(const graft_exec_ctx& ctx) {
  double loss = 0.0;
  double sums[GRAFT_MAX_METRICS] = {};
  loss_.forward(ctx, *prediction.get(), *target.get(), loss, sums);
  metrics.assign(sums, sums + loss_.metric_names().size());
  return loss;
}
void LossUnderTest::backward(const graft_exec_ctx& ctx, float scale) {
  loss_.backward(ctx, *prediction.get(), *target.get(), scale, *dprediction.get());
}

std::string GradientReport::summary() const {
  std::ostringstream os;
  os << (ok ? "passed" : "FAILED") << ": " << checked << " elements, worst relative error "
     << worst_error;
  for (const std::string& line : failures) os << "\n  " << line;
  return os.str();
}

void compare_gradient(const std::string& what, const float* analytic, int64_t n,
                      const NumericGradient& numeric, const GradientSettings& settings,
                      GradientReport& report) {
  std::vector<double> estimate(static_cast<size_t>(n));
  double largest = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    estimate[i] = numeric(i, settings.epsilon);
    largest = std::max(largest, std::fabs(estimate[i]));
  }
  const double floor = std::max(0.1 * largest, 1e-6);
  auto error = [&](double a, double g) {
    return std::fabs(a - g) / std::max({std::fabs(a), std::fabs(g), floor});
  };
  for (int64_t i = 0; i < n; ++i) {
    double g = estimate[i];
    double e = error(analytic[i], g);
    if (!(e <= settings.tolerance)) {  // also catches NaN
      g = numeric(i, settings.epsilon / 10.0);
      e = std::min(e, error(analytic[i], g));
    }
    ++report.checked;
    report.worst_error = std::max(report.worst_error, e);
    if (e <= settings.tolerance) continue;
    report.ok = false;
    if (report.failures.size() < 8) {
      std::ostringstream os;
      os << what << "[" << i << "]: analytic " << analytic[i] << ", numeric " << g
         << " (relative error " << e << ")";
      report.failures.push_back(os.str());
    }
  }
}

GradientReport check_layer(const runtime::PluginRecord& record, const graft_options& options,
                           const std::vector<int64_t>& input_shape,
                           const GradientSettings& settings) {
  GradientReport report;
  std::mt19937 rng(settings.seed);
  LayerUnderTest layer(record, options, input_shape, settings.batch);
  const graft_exec_ctx& ctx = settings.ctx;
  fill_inputs(layer.x, rng, settings);
  for (Tensor& p : layer.params) fill_random(p, rng, 1.0f);
  Tensor r = layer.y;
  fill_random(r, rng, 1.0f);

  // Analytic: grads start at random values that backward must add to, not overwrite.
  std::vector<Tensor> initial = layer.grads;
  for (Tensor& g : initial) fill_random(g, rng, 1.0f);
  layer.grads = initial;
  fill_nan(layer.dx);
  layer.forward(ctx);
  layer.dy = r;
  layer.backward(ctx, true);
  std::vector<Tensor> analytic = layer.grads;
  for (size_t k = 0; k < analytic.size(); ++k)
    for (int64_t i = 0; i < analytic[k].numel(); ++i) analytic[k].f()[i] -= initial[k].f()[i];
  const Tensor analytic_dx = layer.dx;

  // Without dx the parameter gradients must not change.
  layer.zero_gradients();
  layer.forward(ctx);
  layer.backward(ctx, false);
  for (size_t k = 0; k < analytic.size(); ++k)
    for (int64_t i = 0; i < analytic[k].numel(); ++i) {
      const float a = analytic[k].f()[i], b = layer.grads[k].f()[i];
      if (std::fabs(a - b) > 1e-4f * std::max(1.0f, std::fabs(a))) {
        report.ok = false;
        report.failures.push_back("grad of " + std::string(layer.desc().params[k].name) +
                                  " differs when backward gets no dx");
        break;
      }
    }

  auto loss = [&] {
    layer.forward(ctx);
    return projection(layer.y, r);
  };
  auto numeric_in = [&](Tensor& t) {
    return [&loss, tensor = &t](int64_t i, double step) {
      return central_difference(*tensor, i, step, loss);
    };
  };
  if (settings.inputs != GradientSettings::Inputs::ids)
    compare_gradient("dx", analytic_dx.f(), analytic_dx.numel(), numeric_in(layer.x), settings,
                     report);
  for (size_t k = 0; k < layer.params.size(); ++k)
    compare_gradient("grad of " + std::string(layer.desc().params[k].name), analytic[k].f(),
                     analytic[k].numel(), numeric_in(layer.params[k]), settings, report);
  return report;
}

GradientReport check_activation(const runtime::PluginRecord& record, const graft_options& options,
                                const std::vector<int64_t>& shape,
                                const GradientSettings& settings) {
  GradientReport report;
  std::mt19937 rng(settings.seed);
  ActivationUnderTest activation(record, options, shape);
  const graft_exec_ctx& ctx = settings.ctx;
  fill_inputs(activation.x, rng, settings);
  Tensor r = activation.y;
  fill_random(r, rng, 1.0f);
  fill_nan(activation.dx);
  activation.forward(ctx);
  activation.dy = r;
  activation.backward(ctx);
  const Tensor analytic = activation.dx;
  auto loss = [&] {
    activation.forward(ctx);
    return projection(activation.y, r);
  };
  compare_gradient(
      "dx", analytic.f(), analytic.numel(),
      [&](int64_t i, double step) { return central_difference(activation.x, i, step, loss); },
      settings, report);
  return report;
}

GradientReport check_loss(const runtime::PluginRecord& record, const graft_options& options,
                          const std::vector<int64_t>& prediction_shape,
                          const graft_target_info& target_info, const Tensor& target,
                          const GradientSettings& settings) {
  GradientReport report;
  std::mt19937 rng(settings.seed);
  LossUnderTest loss(record, options, prediction_shape, target_info, settings.batch);
  if (loss.target.numel() != target.numel() || loss.target.bytes() != target.bytes())
    throw runtime::Failure("check_loss: the target has " + std::to_string(target.numel()) +
                           " elements, but " + std::to_string(settings.batch) +
                           " rows of this target type need " + std::to_string(loss.target.numel()));
  loss.target = target;
  const graft_exec_ctx& ctx = settings.ctx;
  fill_random(loss.prediction, rng, settings.input_scale, settings.input_margin);
  fill_nan(loss.dprediction);  // backward writes every element
  constexpr float kScale = 0.5f;
  loss.backward(ctx, kScale);
  Tensor analytic = loss.dprediction;
  for (int64_t i = 0; i < analytic.numel(); ++i) analytic.f()[i] /= kScale;
  compare_gradient(
      "dprediction", analytic.f(), analytic.numel(),
      [&](int64_t i, double step) {
        return central_difference(loss.prediction, i, step, [&] { return loss.forward(ctx); });
      },
      settings, report);
  return report;
}

}  // namespace graft::checker
