// The assembled model: layer plugins in sequence (and residual blocks of them) with shapes
// inferred from the dataset, parameters, gradients and optimizer state in contiguous planned
// buffers, the loss, and the graft_model_api strategies drive. No allocation after construction.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/options.hpp"
#include "model/buffer.hpp"
#include "model/tensor_view.hpp"
#include "optim/schedule.hpp"
#include "plugin/registry.hpp"

namespace graft::runtime {

// What the config says about one plugin: which, with which validated options, from where.
// A residual block is structure, not a plugin: record is NULL and `inner` holds its layers.
struct PluginChoice {
  const PluginRecord* record;
  BoundOptions options;
  std::string section;  // "[[model.layers]] #2 (linear)", for messages
  bool residual = false;
  std::vector<PluginChoice> inner;  // residual only: the layers f of y = x + f(x), in order

  static PluginChoice residual_block(std::vector<PluginChoice> inner, std::string section) {
    return PluginChoice{nullptr, BoundOptions{}, std::move(section), true, std::move(inner)};
  }
};

struct ModelSettings {
  DLDevice device{kDLCPU, 0};
  int64_t max_batch = 1;  // rows per buffer slot
  int32_t slots = 1;      // buffer sets (micro-batches in flight)
  uint64_t seed = 0;
  double clip_grad_norm = 0.0;
  // false: parameters whose spec says is_bias_or_norm get no weight decay.
  bool decay_bias_and_norm = true;
  Schedule schedule;
  // The strategy's plan (model_survey.hpp): each top-level layer's stage and shard mode, and
  // this rank's place in it. Empty placement: one stage, nothing sharded.
  std::vector<graft_layer_placement> placement;
  int32_t stages = 1, shards = 1, stage_index = 0, shard_index = 0;
  // Layers that declare GRAFT_ENTRY_DX_OVER_OUTPUT write dx over their output; false plans a
  // dx buffer for each, which the tests compare against.
  bool dx_over_outputs = true;
  // false: the activation, gradient and workspace buffers of the slots are planned but not
  // allocated until allocate_step_buffers(), so a caller can weigh planned_bytes() against the
  // machine first (the session), or never hold them (graft validate).
  bool allocate_step_buffers = true;
  // Where max_batch comes from, for messages ("run.toml:12:14: [data] batch_size = 64").
  std::string rows_origin = "[data] batch_size";
};

// Names follow the nesting: "layers.0.weight", and inside the residual block at position 2,
// "layers.2.layers.1.weight" (inner layer 1) — stable, so checkpoints keep their keys.
struct ParameterInfo {
  std::string name;
  int64_t layer;  // the top-level layer it belongs to (a block's inner layers give the block's)
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

  // Shapes and sizes, for `graft validate`. Indices are of top-level layers (a residual block
  // is one); layer_rows() lists nested layers too.
  int64_t layer_count() const { return static_cast<int64_t>(layers_.size()); }
  const std::string& layer_name(int64_t i) const;  // the plugin's name, or "residual"
  const graft_shape& layer_output(int64_t i) const;
  int64_t layer_parameter_count(int64_t i) const;
  struct LayerRow {
    int depth;  // 0 for top-level layers, 1 inside a block, ...
    std::string name;
    graft_shape output;
    int64_t parameters;  // a block counts its inner layers'
  };
  std::vector<LayerRow> layer_rows() const;  // every layer, nested ones after their block
  const graft_shape& input_shape() const { return input_; }
  int64_t planned_rows() const { return settings_.max_batch; }
  const std::vector<ParameterInfo>& parameters() const { return params_; }
  size_t parameter_count() const { return param_buffer_.size(); }
  // Every buffer the model planned, allocated or not: parameters, gradients, optimizer state,
  // and each slot's activations, input gradients and workspaces.
  size_t planned_bytes() const { return planned_bytes_; }
  size_t planned_fixed_bytes() const { return fixed_bytes_; }  // of those, the batch-free ones
  // Allocates the planned slot buffers (ModelSettings::allocate_step_buffers); once.
  void allocate_step_buffers();
  bool step_buffers_allocated() const { return !slots_.empty(); }
  const std::vector<std::string>& metric_names() const { return metric_names_; }
  const std::vector<std::string>& optimizer_state_names() const { return state_names_; }

  // Raw storage for checkpoints: parameters, and optimizer state s of every parameter. On a
  // GPU these are device addresses: read and write them through the copies below.
  bool on_cpu() const { return settings_.device.device_type == kDLCPU; }
  // Host <-> model memory (either way a plain copy on the CPU); `model` is an address in one
  // of the model's buffers.
  void copy_to_host(const float* model, float* host, size_t floats) const;
  void copy_from_host(const float* host, float* model, size_t floats) const;
  float* parameter_data() { return param_buffer_.data(); }
  float* gradient_data() { return grad_buffer_.data(); }
  float* state_data(size_t s) { return state_buffers_[s].data(); }
  int64_t optimizer_steps() const { return optimizer_steps_; }
  void set_optimizer_steps(int64_t n) { optimizer_steps_ = n; }
  const Schedule& schedule() const { return settings_.schedule; }
  const ModelSettings& settings() const { return settings_; }
  int32_t layer_stage(int64_t i) const;  // 0 when the plan has one stage
  int32_t layer_shard(int64_t i) const;  // a graft_shard_mode
  void set_total_steps(int64_t n) { settings_.schedule.total_steps = n; }
  double last_lr() const { return last_lr_; }

  // The steps of the model api, callable from C++ too (tests). Each throws on failure.
  const DLTensor* forward(const graft_exec_ctx& ctx, int64_t begin, int64_t end, const DLTensor& x);
  const DLTensor* loss(const graft_exec_ctx& ctx, const DLTensor& prediction,
                       const DLTensor& target, graft_step_result& result, bool want_gradient);
  const DLTensor* backward(const graft_exec_ctx& ctx, int64_t begin, int64_t end,
                           const DLTensor& dy, void (*on_layer_done)(void*, int64_t), void* user);
  void zero_grad();
  void optimizer_step(const graft_exec_ctx& ctx);  // optimizer_step_layers over every layer

  // For the parallel strategies (strategy.h; model_api.cpp). Layer indices are top-level.
  // A 1-D float32 view of the parameters (or gradients) of layers [begin, end); its shape
  // array is the model's and stays valid while the model lives.
  void layer_range_view(bool gradients, int64_t begin, int64_t end, DLTensor& out);
  // Sum of squared gradients of layers [begin, end): buffers never count, a tensor-parallel
  // shard (spec.shard_axis >= 0) always, a whole tensor only when count_replicated.
  double grad_sq_norm(int64_t begin, int64_t end, bool count_replicated);
  // Clips (by total_sq_norm when >= 0, else by these layers' own norm), applies the schedule
  // and updates the parameters of layers [begin, end); one optimizer step is counted.
  void optimizer_step_layers(const graft_exec_ctx& ctx, int64_t begin, int64_t end,
                             double total_sq_norm);

 private:
  struct Layer;
  struct Slot;
  std::string non_finite_report(const graft_exec_ctx& ctx, int64_t rows) const;
  // Creates `choices` in order from `shape` (appending to all_layers_ in pre-order and to
  // `out`), returning the last output shape; residual blocks recurse.
  graft_shape build_layers(std::vector<PluginChoice>& choices, graft_shape shape,
                           const std::string& prefix, int64_t top, int depth,
                           std::vector<Layer*>& out, int32_t& next_nested_index);
  // mode: the plan's graft_shard_mode for this layer (NONE inside residual blocks).
  void create_plugin_layer(Layer& layer, const graft_shape& shape, int32_t mode);
  void check_shard_order(const Layer& layer, int32_t mode, bool sharded) const;
  void initialise_parameters();
  const DLTensor* forward_layer(Slot& slot, Layer& layer, graft_exec_ctx& ctx, int64_t rows,
                                const DLTensor* input);
  void place_workspaces(const std::vector<Layer*>& list, bool top);
  void place_input_gradients(size_t reads_model_input);
  DLTensor* backward_layer(Slot& slot, Layer& layer, graft_exec_ctx& ctx, int64_t rows,
                           const DLTensor* dy, bool want_dx);
  // [first, last) in floats of the buffers that layers [begin, end) own; throws on a bad range.
  std::pair<size_t, size_t> layer_floats(int64_t begin, int64_t end, const char* what) const;

  // The floats of each buffer of one slot, indexed by Layer::flat (every slot has the same).
  struct SlotPlan {
    std::vector<size_t> outputs, input_grads, workspaces;
    size_t scratch = 0, dprediction = 0;
  };
  // Sizes every slot buffer for settings_.max_batch rows; a size that overflows is a UserError.
  void plan_slots(size_t reads_model_input, const graft_shape& prediction);
  Slot& slot_at(int32_t index) const;  // a Failure when the buffers are not allocated

  ModelSettings settings_;
  SlotPlan slot_plan_;
  size_t fixed_bytes_ = 0, planned_bytes_ = 0;
  graft_shape input_;
  std::vector<PluginChoice> layer_choices_;
  std::vector<std::unique_ptr<Layer>> all_layers_;  // owns every layer, nested ones included
  std::vector<Layer*> layers_;                      // the top-level sequence
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
  std::map<std::pair<int64_t, int64_t>, int64_t> range_shapes_;  // layer_range_view's shapes
};

}  // namespace graft::runtime
