// The update after backward: gradient clipping by global norm, the learning-rate schedule, and
// the optimizer plugin called on each parameter of a range of layers. Training policy, kept
// apart from the model's assembly so that a strategy can step any part of the parameters.
#pragma once

#include <cstdint>
#include <memory>

#include "model/parameter_store.hpp"
#include "optim/schedule.hpp"
#include "plugin/optimizer_instance.hpp"

namespace graft::runtime {

struct UpdaterSettings {
  double clip_grad_norm = 0.0;  // 0: no clipping
  // false: parameters whose spec says is_bias_or_norm get no weight decay.
  bool decay_bias_and_norm = true;
  Schedule schedule;
};

class Updater {
 public:
  // Updates the parameters of `store` (which must outlive it) with `optimizer`, whose state
  // tensors the store holds.
  Updater(ParameterStore& store, std::unique_ptr<OptimizerInstance> optimizer,
          UpdaterSettings settings);

  // Clips (by total_sq_norm when >= 0, else by these layers' own norm), applies the schedule
  // and updates the parameters of top-level layers [begin, end); one optimizer step is counted.
  void step_layers(const graft_exec_ctx& ctx, int64_t begin, int64_t end, double total_sq_norm);

  // The same step in parts, for ZeRO (the store's zero() layout): begin fixes the rate and the
  // clipping factor for the global squared norm; part updates this rank's part of unit u,
  // its gradients scaled by that factor; end counts the step. Parts of one step see one rate.
  void step_begin(double total_sq_norm);
  void step_part(const graft_exec_ctx& ctx, size_t unit);
  void step_end() { ++steps_; }
  // Squares of this rank's part of unit u's gradients (buffers never, a whole tensor only
  // with count_replicated), for the global norm.
  double part_sq_norm(const graft_exec_ctx& ctx, size_t unit, bool count_replicated) const;

  const OptimizerInstance& optimizer() const { return *optimizer_; }
  // Updates taken so far: the schedule's position, and what a checkpoint records.
  int64_t steps() const { return steps_; }
  void set_steps(int64_t n) { steps_ = n; }
  const Schedule& schedule() const { return settings_.schedule; }
  // The run's length, which a cosine schedule anneals over.
  void set_total_steps(int64_t n) { settings_.schedule.total_steps = n; }
  double last_lr() const { return last_lr_; }  // the rate of the latest update

 private:
  // Scales the gradients of floats [first, last) so that their global norm is at most the limit.
  void clip(const graft_exec_ctx& ctx, size_t first, size_t last, double squared_norm);
  // The factor clipping scales gradients by for this global squared norm (1: none).
  float clip_factor(double squared_norm) const;
  // Calls the optimizer on `floats` floats of parameter i at param_data (its gradients at
  // grad_data, its state at `state` floats into the state buffers): 1-D views, which the
  // optimizers take because they are element-wise.
  void step_slice(const graft_exec_ctx& ctx, size_t i, float* param_data, float* grad_data,
                  size_t floats, size_t state);

  ParameterStore& store_;
  std::unique_ptr<OptimizerInstance> optimizer_;
  UpdaterSettings settings_;
  int64_t steps_ = 0;
  double last_lr_ = 0.0;
  float part_clip_ = 1.0f;  // step_begin's clipping factor
};

}  // namespace graft::runtime
