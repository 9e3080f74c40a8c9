// The assembled model: layer plugins in sequence with shapes inferred from the dataset, their
// parameters, gradients and optimizer state in contiguous planned buffers, the loss, and the
// graft_model_api that strategy plugins drive. Nothing here allocates after construction.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config/options.hpp"
#include "model/buffer.hpp"
#include "model/tensor_view.hpp"
#include "plugin/registry.hpp"

namespace graft::runtime {

// What the config says about one plugin: which, with which validated options, from where.
struct PluginChoice {
  const PluginRecord* record;
  BoundOptions options;
  std::string section;  // "[[model.layers]] #2 (linear)", for messages
};

// The learning-rate schedule (the framework's, not the optimizer's).
struct Schedule {
  std::string type = "constant";  // constant | step | cosine | linear_warmup_cosine (via warmup)
  double lr = 0.01;
  int64_t warmup_steps = 0;
  int64_t step_size = 0;
  double gamma = 0.1;
  double min_lr = 0.0;
  int64_t total_steps = 0;  // for cosine
  double at(int64_t step) const;  // step: 0-based update index
};

struct ModelSettings {
  DLDevice device{kDLCPU, 0};
  int64_t max_batch = 1;  // rows per buffer slot
  int32_t slots = 1;      // buffer sets (micro-batches in flight)
  uint64_t seed = 0;
  double clip_grad_norm = 0.0;
  Schedule schedule;
};

struct ParameterInfo {
  std::string name;  // "layers.0.weight"
  int64_t layer;
  graft_shape shape;
  size_t offset;  // in floats, into the parameter, gradient and each state buffer
  size_t numel;
  graft_param_spec spec;
};

class Model {
 public:
  Model(std::vector<PluginChoice> layers, PluginChoice loss, PluginChoice optimizer,
        const graft_shape& input, const graft_target_info& target, ModelSettings settings);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // The C table strategies call, and this model as its opaque handle.
  static const graft_model_api* api();
  graft_model* handle() { return reinterpret_cast<graft_model*>(this); }

  // Shapes and sizes, for `graft validate`.
  int64_t layer_count() const { return static_cast<int64_t>(layers_.size()); }
  const std::string& layer_name(int64_t i) const;
  const graft_shape& layer_output(int64_t i) const;
  int64_t layer_parameter_count(int64_t i) const;
  const graft_shape& input_shape() const { return input_; }
  const std::vector<ParameterInfo>& parameters() const { return params_; }
  size_t parameter_count() const { return param_buffer_.size(); }
  size_t planned_bytes() const;  // every buffer the model planned
  const std::vector<std::string>& metric_names() const { return metric_names_; }
  const std::vector<std::string>& optimizer_state_names() const { return state_names_; }

  // Raw storage for checkpoints: parameters, and optimizer state s of every parameter.
  float* parameter_data() { return param_buffer_.data(); }
  float* gradient_data() { return grad_buffer_.data(); }
  float* state_data(size_t s) { return state_buffers_[s].data(); }
  int64_t optimizer_steps() const { return optimizer_steps_; }
  void set_optimizer_steps(int64_t n) { optimizer_steps_ = n; }
  const Schedule& schedule() const { return settings_.schedule; }
  void set_total_steps(int64_t n) { settings_.schedule.total_steps = n; }
  double last_lr() const { return last_lr_; }

  // The steps of the model api, callable from C++ too (tests). Each throws on failure.
  const DLTensor* forward(const graft_exec_ctx& ctx, int64_t begin, int64_t end, const DLTensor& x);
  const DLTensor* loss(const graft_exec_ctx& ctx, const DLTensor& prediction,
                       const DLTensor& target, graft_step_result& result, bool want_gradient);
  const DLTensor* backward(const graft_exec_ctx& ctx, int64_t begin, int64_t end,
                           const DLTensor& dy, void (*on_layer_done)(void*, int64_t), void* user);
  void zero_grad();
  void optimizer_step(const graft_exec_ctx& ctx);

 private:
  struct Layer;
  struct Slot;
  std::string non_finite_report(const graft_exec_ctx& ctx, int64_t rows) const;

  ModelSettings settings_;
  graft_shape input_;
  std::vector<PluginChoice> layer_choices_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<ParameterInfo> params_;
  Buffer param_buffer_, grad_buffer_;
  std::vector<Buffer> state_buffers_;
  std::vector<std::unique_ptr<Slot>> slots_;
  PluginChoice loss_choice_, optimizer_choice_;
  void* loss_ = nullptr;
  void* optimizer_ = nullptr;
  std::vector<std::string> metric_names_, state_names_;
  graft_target_info target_;
  int64_t optimizer_steps_ = 0;
  double last_lr_ = 0.0;
};

}  // namespace graft::runtime
