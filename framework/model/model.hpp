// The assembled model: layer plugins in sequence (and residual blocks of them) with shapes
// inferred from the dataset, run forward, through the loss and backward over planned buffers,
// and the graft_model_api strategies drive. Its pieces: the parameters (parameter_store.hpp),
// the step's buffers (buffer_plan.hpp) and the update (optim/updater.hpp). No allocation after
// construction.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "config/options.hpp"
#include "model/parameter_store.hpp"
#include "model/tensor_view.hpp"
#include "optim/schedule.hpp"
#include "optim/updater.hpp"
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
  std::vector<TieConfig> ties;      // parameters it shares with earlier layers (config.hpp)

  static PluginChoice residual_block(std::vector<PluginChoice> inner, std::string section) {
    return PluginChoice{nullptr, BoundOptions{}, std::move(section), true, std::move(inner)};
  }
};

struct ModelSettings {
  DLDevice device{kDLCPU, 0};
  int64_t max_batch = 1;  // rows per buffer slot
  int32_t slots = 1;      // buffer sets (micro-batches in flight)
  uint64_t seed = 0;
  // The update's rules (UpdaterSettings), which the model's updater takes when it is built.
  double clip_grad_norm = 0.0;
  // false: parameters whose spec says is_bias_or_norm get no weight decay.
  bool decay_bias_and_norm = true;
  Schedule schedule;
  // The strategy's plan (model_survey.hpp): each top-level layer's stage and shard mode, and
  // this rank's place in it. Empty placement: one stage, nothing sharded.
  std::vector<graft_layer_placement> placement;
  int32_t stages = 1, shards = 1, stage_index = 0, shard_index = 0;
  // ZeRO ([parallel] zero >= 1 over a data group of zero_parts ranks, this one zero_index):
  // the parameters are laid out in units of about zero_unit_floats (ParameterStore::zero()).
  int32_t zero_parts = 1, zero_index = 0, zero_level = 0;
  int64_t zero_unit_floats = 0;
  // Whether this rank holds top-level layer `top`: its parameters, gradients, optimizer state
  // and step buffers. A pipeline stage holds its own layers only, so that splitting a model
  // into stages divides its memory; the other layers are described, never allocated.
  bool holds(int64_t top) const {
    return stages <= 1 || top < 0 || size_t(top) >= placement.size() ||
           placement[size_t(top)].stage == stage_index;
  }
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

class BufferPlan;
class LossInstance;

// The strategy's sum over its tensor group (graft_model_api's set_tensor_reduce), which the
// model runs around layers placed GRAFT_SHARD_PAIR.
struct TensorReduce {
  graft_status* (*fn)(void* user, DLTensor* t, const char* what) = nullptr;
  void* user = nullptr;
};
struct LayerNode;
struct Slot;

class Model {
 public:
  Model(std::vector<PluginChoice> layers, PluginChoice loss, PluginChoice optimizer,
        const graft_shape& input, const graft_target_info& target, ModelSettings settings);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // The C table strategies call (model_table.cpp), and this model as its opaque handle.
  static const graft_model_api* api();
  graft_model* handle() { return reinterpret_cast<graft_model*>(this); }

  // The pieces, for what goes beyond a whole model: views and norms by layer range, host
  // copies (store); the schedule, the step count and an update of a range of layers (updater).
  ParameterStore& store() { return store_; }
  const ParameterStore& store() const { return store_; }
  Updater& updater() { return *updater_; }
  const Updater& updater() const { return *updater_; }

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
  const std::vector<ParameterInfo>& parameters() const { return store_.parameters(); }
  size_t parameter_count() const { return store_.floats(); }  // held by this rank
  // Every buffer the model planned, allocated or not: parameters, gradients, optimizer state,
  // and each slot's activations, input gradients and workspaces; of the layers held only.
  size_t planned_bytes() const;
  size_t planned_fixed_bytes() const;  // of those, the batch-free ones
  // planned_bytes() by what the bytes hold, as `graft validate` prints them per rank.
  struct MemorySplit {
    size_t parameters = 0, gradients = 0, optimizer_state = 0, activations = 0, workspaces = 0;
    size_t gather_windows = 0;  // ZeRO-2/3: the windows units are gathered into
    size_t total() const {
      return parameters + gradients + optimizer_state + activations + workspaces + gather_windows;
    }
  };
  MemorySplit planned_memory() const;
  // Allocates the planned slot buffers (ModelSettings::allocate_step_buffers); once.
  void allocate_step_buffers();
  bool step_buffers_allocated() const;
  const std::vector<std::string>& metric_names() const;
  const std::vector<std::string>& optimizer_state_names() const {
    return updater_->optimizer().state_names();
  }

  // Raw storage for checkpoints: parameters, and optimizer state s of every parameter. On a
  // GPU these are device addresses: read and write them through the copies below.
  bool on_cpu() const { return store_.on_cpu(); }
  // Host <-> model memory (either way a plain copy on the CPU); `model` is an address in one
  // of the model's buffers.
  void copy_to_host(const float* model, float* host, size_t floats) const {
    store_.copy_to_host(model, host, floats);
  }
  void copy_from_host(const float* host, float* model, size_t floats) const {
    store_.copy_from_host(host, model, floats);
  }
  float* parameter_data() { return store_.parameter_data(); }
  float* gradient_data() { return store_.gradient_data(); }
  float* state_data(size_t s) { return store_.state_data(s); }
  int64_t optimizer_steps() const { return updater_->steps(); }
  void set_optimizer_steps(int64_t n) { updater_->set_steps(n); }
  const ModelSettings& settings() const { return settings_; }
  int32_t layer_stage(int64_t i) const;  // 0 when the plan has one stage
  int32_t layer_shard(int64_t i) const;  // a graft_shard_mode

  // The steps of the model api, callable from C++ too (tests). Each throws on failure; a range
  // with a layer this rank does not hold (another stage's) is a Failure.
  const DLTensor* forward(const graft_exec_ctx& ctx, int64_t begin, int64_t end, const DLTensor& x);
  const DLTensor* loss(const graft_exec_ctx& ctx, const DLTensor& prediction,
                       const DLTensor& target, graft_step_result& result, bool want_gradient);
  const DLTensor* backward(const graft_exec_ctx& ctx, int64_t begin, int64_t end,
                           const DLTensor& dy, void (*on_layer_done)(void*, int64_t), void* user);
  void zero_grad() { store_.zero_gradients(); }
  // Generation with a cache (layer.h's set_positions), told to every layer, nested ones too.
  void set_positions(int64_t first, int64_t capacity);
  void set_tensor_reduce(TensorReduce reduce) { tensor_reduce_ = reduce; }
  // Tied parameters on two pipeline stages (ParameterInfo::tied): pack (unpack false) copies
  // this rank's gradients of them into one buffer, zeros where it holds neither copy, and
  // views it in `out`, for the strategy to sum over its pipeline group; unpack copies the sums
  // back. Every rank's buffer has the same size: 0 when no tie crosses stages.
  void tied_gradients(bool unpack, DLTensor& out);
  // A strategy from before ABI 1.4 never sums them: its step would part the copies silently,
  // so a step after a backward without the sum is a Failure naming the fix.
  void check_ties_summed(const char* what) const;
  // Clips, applies the schedule and updates every parameter (Updater::step_layers).
  void optimizer_step(const graft_exec_ctx& ctx) {
    check_ties_summed("optimizer_step");
    updater_->step_layers(ctx, 0, layer_count(), -1.0);
  }

 private:
  std::string non_finite_report(const graft_exec_ctx& ctx, int64_t rows) const;
  // Creates `choices` in order from `shape` (appending to all_layers_ in pre-order and to
  // `out`), returning the last output shape; residual blocks recurse.
  // `modes`: the inner layers' shard modes of a block placed PAIR (NULL: none sharded).
  graft_shape build_layers(std::vector<PluginChoice>& choices, graft_shape shape,
                           const std::string& prefix, int64_t top, int depth,
                           std::vector<LayerNode*>& out, int32_t& next_nested_index,
                           const std::vector<int32_t>* modes = nullptr);
  // mode: the plan's graft_shard_mode for this layer (NONE inside residual blocks).
  void create_plugin_layer(LayerNode& layer, const graft_shape& shape, int32_t mode,
                           const std::string& path);
  void check_shard_order(const LayerNode& layer, int32_t mode, bool sharded) const;
  void check_held(const char* what, int64_t begin, int64_t end) const;
  const DLTensor* forward_layer(Slot& slot, LayerNode& layer, graft_exec_ctx& ctx, int64_t rows,
                                const DLTensor* input);
  DLTensor* backward_layer(Slot& slot, LayerNode& layer, graft_exec_ctx& ctx, int64_t rows,
                           const DLTensor* dy, bool want_dx);

  // Sums t over the tensor group for a PAIR layer (forward: its output; backward: its dx).
  void reduce_pair(const LayerNode& layer, DLTensor* t, bool forward) const;
  // For each parameter of `layer`, the earlier parameter its config `tie` names, or -1
  // (model_ties.cpp); a name, shape or layout that cannot be tied is a UserError.
  std::vector<int64_t> resolve_ties(const LayerNode& layer, const graft_layer_desc& desc,
                                    const std::string& path) const;
  void plan_cross_stage_ties();

  ModelSettings settings_;
  TensorReduce tensor_reduce_;
  graft_shape input_;
  std::vector<PluginChoice> layer_choices_;
  std::vector<std::unique_ptr<LayerNode>> all_layers_;  // owns every layer, nested ones included
  std::vector<LayerNode*> layers_;                      // the top-level sequence
  ParameterStore store_;
  // Kept for the model's life, as the layers keep theirs: plugins may read their options later.
  PluginChoice loss_choice_, optimizer_choice_;
  std::unique_ptr<LossInstance> loss_;
  std::unique_ptr<Updater> updater_;
  std::unique_ptr<BufferPlan> buffers_;
  struct CrossTie {
    int64_t param;  // the later parameter of the pair (ParameterInfo::tied names the other)
    int64_t held;   // the parameter of the pair this rank holds, or -1
    size_t offset, numel;
  };
  std::vector<CrossTie> cross_ties_;
  Buffer tie_buffer_;
  int64_t tie_floats_ = 0;   // the shape of tied_gradients' view
  bool ties_summed_ = true;  // false from a backward until tied_gradients unpacks
};

}  // namespace graft::runtime
