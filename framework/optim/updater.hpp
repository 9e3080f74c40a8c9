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

  ParameterStore& store_;
  std::unique_ptr<OptimizerInstance> optimizer_;
  UpdaterSettings settings_;
  int64_t steps_ = 0;
  double last_lr_ = 0.0;
};

}  // namespace graft::runtime
