// The model's parameters, their gradients and the optimizer's state: one contiguous buffer
// each, laid out in layer order, initialised from counter-based streams, and viewed by range of
// top-level layers for the parallel strategies (graft_model_api's gradients, parameters,
// grad_sq_norm).
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "graft/graft.h"
#include "model/buffer.hpp"
#include "model/tensor_view.hpp"
#include "model/zero_layout.hpp"

namespace graft::runtime {

// Names follow the nesting: "layers.0.weight", and inside the residual block at position 2,
// "layers.2.layers.1.weight" (inner layer 1) — stable, so checkpoints keep their keys.
struct ParameterInfo {
  std::string name;
  int64_t layer;  // the top-level layer it belongs to (a block's inner layers give the block's)
  graft_shape shape;
  size_t offset;  // in floats, into the parameter, gradient and each state buffer
  size_t numel;
  graft_param_spec spec;
  // false: a parameter of another pipeline stage. Shape and numel still describe it (for
  // checkpoints and `graft verify`, which gather it from its stage), but this rank has no
  // floats for it: it takes none of the buffers, and `offset` is where it would have started.
  bool held = true;
  // A tied parameter (a layer's `tie` in the config): `tied` is the earlier parameter it is.
  // Where this rank holds both it is an alias: its views are the other's floats, it takes none
  // of its own, and only the other is stepped. Where the other is on another pipeline stage it
  // is a copy, drawn from the same stream; the strategy sums the two gradients
  // (Model::tied_gradients) so that the copies take the same steps and stay equal.
  int64_t tied = -1;
  bool alias = false;
  bool has_floats() const { return held && !alias; }
};

class ParameterStore {
 public:
  explicit ParameterStore(DLDevice device) : device_(device) {}
  ParameterStore(const ParameterStore&) = delete;
  ParameterStore& operator=(const ParameterStore&) = delete;

  // Assembly, as the model creates its layers in pre-order, so that a layer's parameters are
  // consecutive and those of consecutive top-level layers are one run of floats. The values
  // come from the stream of (init_layer, position): the layer's number (ctx.layer_index) and
  // the parameter's place in it, so they depend on the seed and the model's structure only.
  // `owner` names the layer in messages. `held` false: another stage's (ParameterInfo::held).
  // `tied` >= 0: parameter `tied` (declared before, of the same shape) is this one
  // (ParameterInfo::tied); its spec and stream stand for both. Returns the parameter's index.
  size_t declare(std::string name, int64_t layer, const graft_param_spec& spec, int32_t init_layer,
                 size_t position, std::string owner, bool held = true, int64_t tied = -1);
  // Allocates the held parameters and gradients of a model of `layers` top-level layers and
  // initialises them; a tensor-parallel part (spec.shard_axis) is its slice, part
  // `shard_index` of `shards`, of the whole tensor drawn from the same stream. A parameter not
  // held gets a view with no data, which nothing reads.
  void allocate(int64_t layers, uint64_t seed, int32_t shard_index, int32_t shards);
  // Before allocate: lay the held parameters out in ZeRO units over `parts` data ranks, this
  // rank being `index` (zero_layout.hpp); the optimizer state then holds this rank's parts only.
  // Level 2 also keeps gradients by part (whole ones only in a unit's gradient window during its
  // backward), level 3 parameters too (whole only in a unit's parameter window once gathered).
  void shard_over_data(int32_t parts, int32_t index, size_t unit_floats, int32_t level);
  // The ZeRO layout, or NULL without ZeRO; its level (0 without).
  const ZeroLayout* zero() const { return zero_ ? &*zero_ : nullptr; }
  int32_t zero_level() const { return zero_ ? zero_level_ : 0; }
  // ZeRO unit u: its whole parameters / gradients (parts * part floats: in the padded buffer,
  // or at levels 3 / 2 a window unit u shares with the units two before and after it), and
  // this rank's part of them (in place, or kept apart at those levels).
  float* unit_parameters(size_t u) { return param_at(zero_->units[u].first); }
  float* unit_gradients(size_t u) { return grad_at(zero_->units[u].first); }
  float* own_parameters(size_t u);
  float* own_gradients(size_t u);
  // What the buffers hold, in floats: parameters and gradients kept (whole, or this rank's parts
  // at levels 3 / 2), each optimizer state, and the windows units are gathered into.
  struct Floats {
    size_t parameters = 0, gradients = 0, state = 0, windows = 0;
  };
  Floats floats_by_kind() const;
  // One zeroed buffer per optimizer state tensor (optimizer.h), shaped like the parameters.
  void allocate_optimizer_state(size_t states);

  const std::vector<ParameterInfo>& parameters() const { return params_; }
  // Of the parameters held, in the padded layout (under ZeRO-3 only windows of it are whole).
  size_t floats() const { return held_floats_; }
  // The floats of every buffer held (parameters, gradients, each state), for memory plans.
  std::vector<size_t> buffer_floats() const;
  float* parameter_data() { return param_buffer_.data(); }
  float* gradient_data() { return grad_buffer_.data(); }
  float* state_data(size_t s) { return state_buffers_[s].data(); }
  size_t state_count() const { return state_buffers_.size(); }

  // The tensors of parameter i and the following ones, as a layer's forward and backward take
  // them; valid while the store lives.
  const DLTensor* const* parameter_tensors(size_t i) const { return param_ptrs_.data() + i; }
  DLTensor* const* gradient_tensors(size_t i) const { return grad_ptrs_.data() + i; }
  // Parameter i and its gradient alone, as the optimizer updates them.
  DLTensor* parameter_tensor(size_t i) { return param_views_[i].get(); }
  const DLTensor* gradient_tensor(size_t i) const { return grad_views_[i].get(); }
  // State s of parameter i, a view made on the stack (the training step never allocates).
  // Under ZeRO the state is kept by part, not by parameter: a Failure.
  TensorView state_tensor(size_t s, size_t i) const;

  // [first, last) in floats of the buffers that layers [begin, end) own; a range outside the
  // model is a Failure that starts with `what`.
  std::pair<size_t, size_t> layer_floats(int64_t begin, int64_t end, const char* what) const;
  // A 1-D float32 view of the parameters (or gradients) of layers [begin, end); its shape
  // array is the store's and stays valid while the store lives.
  void layer_range_view(bool gradients, int64_t begin, int64_t end, DLTensor& out);
  // Sum of squared gradients of layers [begin, end): buffers never count, a tensor-parallel
  // part (spec.shard_axis >= 0) always, a whole tensor only when count_replicated.
  double grad_sq_norm(int64_t begin, int64_t end, bool count_replicated) const;
  void zero_gradients();

  // Host <-> store memory (either way a plain copy on the CPU); `device_memory` is an
  // address in one of the store's buffers.
  DLDevice device() const { return device_; }
  bool on_cpu() const { return device_.device_type == kDLCPU; }
  void copy_to_host(const float* device_memory, float* host, size_t floats) const;
  void copy_from_host(const float* host, float* device_memory, size_t floats) const;

 private:
  void initialise(size_t i, uint64_t seed, int32_t shard_index, int32_t shards);
  void lay_out_units(int64_t layers);
  // Where float f of the padded layout lives: a window at the levels that keep parts apart.
  size_t unit_of(size_t f) const;
  float* param_at(size_t f);
  float* grad_at(size_t f);
  float* window_at(Buffer& windows, size_t f);
  void initialise_by_unit(uint64_t seed, int32_t shard_index, int32_t shards);

  DLDevice device_;
  int64_t layers_ = 0;
  size_t held_floats_ = 0;  // of the parameters declared so far
  std::optional<ZeroLayout> zero_;
  int32_t zero_parts_ = 1, zero_index_ = 0, zero_level_ = 0;
  size_t zero_unit_floats_ = 0;
  Buffer param_parts_, grad_parts_;  // levels 3 / 2: this rank's parts of every unit
  size_t window_size_[2] = {0, 0};   // levels 2-3: the windows of even and odd units, in floats
  std::vector<ParameterInfo> params_;
  // Per parameter: its random stream and the layer that declared it (for messages).
  std::vector<uint64_t> streams_;
  std::vector<std::string> owners_;
  Buffer param_buffer_, grad_buffer_;
  std::vector<Buffer> state_buffers_;
  std::vector<TensorView> param_views_, grad_views_;
  std::vector<const DLTensor*> param_ptrs_;
  std::vector<DLTensor*> grad_ptrs_;
  std::map<std::pair<int64_t, int64_t>, int64_t> range_shapes_;  // layer_range_view's shapes
};

}  // namespace graft::runtime
