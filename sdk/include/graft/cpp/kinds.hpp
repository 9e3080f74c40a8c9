// Base classes a plugin author subclasses, one per plugin kind. Each class names what its
// constructor receives; the adapters in plugin.hpp call it.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "graft/cpp/core.hpp"

namespace graft {

using Host = const graft_host_api*;
using Context = graft_exec_ctx;

// A parameter a layer declares; the host allocates and initialises it.
struct Param {
  std::string name;
  Shape shape;
  graft_init init = GRAFT_INIT_ZEROS;
  int64_t fan_in = 0, fan_out = 0;
  float gain = 1.0f;
  bool no_weight_decay = false;  // biases and norm scales
  bool buffer = false;           // updated by the layer itself, not by the optimizer
  int shard_axis = -1;           // after shard(): the axis of the whole tensor split (layer.h)
};

// Constructed as T(const Options&, const Shape& input, Host).
class Layer {
 public:
  virtual ~Layer() = default;
  virtual Shape output_shape() const = 0;
  virtual std::vector<Param> parameters() const { return {}; }
  virtual int64_t workspace_per_sample() const { return 0; }
  // What the workspace holds between calls, and whether it may be dy's memory (layer.h's
  // graft_workspace_use): the host lends shared memory for the scratch kinds.
  virtual graft_workspace_use workspace_use() const { return GRAFT_WORKSPACE_KEPT; }
  // Memory for the call only (layer.h's scratch_per_sample), found in ctx.scratch.
  virtual int64_t scratch_per_sample() const { return 0; }
  // x: (N, input...), y: (N, output...); params follow parameters().
  virtual void forward(const Context& ctx, const DLTensor* const* params, const DLTensor& x,
                       DLTensor& y, DLTensor* workspace) = 0;
  // Accumulates into grads; dx may be null (nothing needs it).
  virtual void backward(const Context& ctx, const DLTensor* const* params, const DLTensor& x,
                        const DLTensor& y, const DLTensor& dy, DLTensor* dx, DLTensor* const* grads,
                        DLTensor* workspace) = 0;
  // Tensor parallelism (strategy.h's graft_shard_mode): called before output_shape() and
  // parameters(). A layer that shards overrides it and sets GRAFT_ENTRY_SHARD_* on its entry.
  virtual void shard(int /*mode*/, int /*index*/, int /*count*/) {
    throw Error(GRAFT_ERR_UNSUPPORTED, "this layer cannot be sharded");
  }
  // Generation with a cache (layer.h's set_positions): a layer whose output at a position
  // depends on other positions or on the position itself overrides it; the default is for
  // layers that treat each position alone.
  virtual void set_positions(int64_t /*first*/, int64_t /*capacity*/) {}
};

// Constructed as T(const Options&, Host).
class Activation {
 public:
  virtual ~Activation() = default;
  virtual bool elementwise() const { return true; }
  virtual void forward(const Context& ctx, const DLTensor& x, DLTensor& y) = 0;
  virtual void backward(const Context& ctx, const DLTensor& x, const DLTensor& y,
                        const DLTensor& dy, DLTensor& dx) = 0;
};

// Constructed as T(const Options&, const Shape& prediction, const graft_target_info&, Host).
class Loss {
 public:
  virtual ~Loss() = default;
  virtual std::vector<std::string> metrics() const { return {}; }
  // Sums over rows (see loss.h).
  virtual void forward(const Context& ctx, const DLTensor& prediction, const DLTensor& target,
                       double& loss_sum, double* metric_sums) = 0;
  virtual void backward(const Context& ctx, const DLTensor& prediction, const DLTensor& target,
                        float scale, DLTensor& dprediction) = 0;
};

// Constructed as T(const Options&, Host).
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual std::vector<std::string> state_names() const { return {}; }
  virtual void step(const Context& ctx, const graft_param_update& update) = 0;
};

// Constructed as T(const Options&, const graft_dataset_args&, Host).
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual graft_dataset_info info() const = 0;
  virtual void read(const int64_t* indices, int64_t n, DLTensor& x, DLTensor& y) = 0;
};

// A dataset of token sequences (dataset.h's decode and encode): graft::dataset<T> fills those
// slots for a T derived from TextDataset.
class TextDataset : public Dataset {
 public:
  virtual std::string decode(const int32_t* ids, int64_t n) const = 0;
  virtual std::vector<int32_t> encode(const std::string& text) const = 0;
};

// Constructed as T(const Options&, const graft_world&, Host).
class Strategy {
 public:
  virtual ~Strategy() = default;
  // Before the model is built (strategy.h): the default leaves the host's one-stage, unsharded
  // plan. Throw graft::Error(GRAFT_ERR_INVALID_ARGUMENT, ...) for a layout the config cannot have.
  virtual void plan(const graft_layer_info* /*layers*/, int64_t /*n*/, int64_t /*global_batch*/,
                    graft_plan& /*plan*/) {}
  // The rows of a global batch this rank reads; the default: all of them.
  virtual void batch_rows(int64_t rows, bool /*training*/, int64_t& begin, int64_t& end) {
    begin = 0;
    end = rows;
  }
  // At each training epoch's end, on every rank at the same point (strategy.h): what the
  // strategy has to say about the steps since its last report. The default: nothing.
  struct Report {
    std::string message;
    std::vector<std::pair<std::string, double>> values;
  };
  virtual Report report() { return {}; }
  virtual void train_step(const graft_model_api& api, graft_model* model, const Context& ctx,
                          const DLTensor& x, const DLTensor& y, graft_step_result& result) = 0;
  virtual void eval_step(const graft_model_api& api, graft_model* model, const Context& ctx,
                         const DLTensor& x, const DLTensor& y, graft_step_result& result) = 0;
};

}  // namespace graft
