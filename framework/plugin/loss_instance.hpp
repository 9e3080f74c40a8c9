// One created loss plugin object, the runtime's side of graft_loss_vtable: it reads the metric
// names once and turns every failed call into an exception naming the plugin.
#pragma once

#include <string>
#include <vector>

#include "graft/graft.h"
#include "plugin/registry.hpp"

namespace graft::runtime {

class LossInstance {
 public:
  // Creates the object for per-sample predictions of shape `prediction` and the dataset's
  // `target`. `who` names it in messages (plugin_who() when empty, or the model's
  // "[loss] (...)"); a refused create is reported as `created_as` when that is given.
  LossInstance(const PluginRecord& record, const graft_options& options,
               const graft_shape& prediction, const graft_target_info& target, std::string who = "",
               const std::string& created_as = "");
  ~LossInstance();
  LossInstance(const LossInstance&) = delete;
  LossInstance& operator=(const LossInstance&) = delete;

  // The per-row metrics forward sums besides the loss ("accuracy"), in order.
  const std::vector<std::string>& metric_names() const { return metric_names_; }

  // Sums over the rows given (loss.h); metric_sums has room for GRAFT_MAX_METRICS. Both calls
  // build a message only on failure, so a training step allocates nothing here.
  void forward(const graft_exec_ctx& ctx, const DLTensor& prediction, const DLTensor& target,
               double& loss_sum, double* metric_sums) const;
  // dprediction = scale * d(loss sum) / d(prediction).
  void backward(const graft_exec_ctx& ctx, const DLTensor& prediction, const DLTensor& target,
                float scale, DLTensor& dprediction) const;

  const std::string& who() const { return who_; }

 private:
  const graft_loss_vtable* vtable_;
  void* self_ = nullptr;
  std::vector<std::string> metric_names_;
  std::string who_;
};

}  // namespace graft::runtime
