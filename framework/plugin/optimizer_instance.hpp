// One created optimizer plugin object, the runtime's side of graft_optimizer_vtable: it reads
// the state names once and turns every failed step into an exception naming the plugin.
#pragma once

#include <string>
#include <vector>

#include "graft/graft.h"
#include "plugin/registry.hpp"

namespace graft::runtime {

class OptimizerInstance {
 public:
  // `who` names it in messages (plugin_who() when empty, or the model's "[optimizer] (...)").
  OptimizerInstance(const PluginRecord& record, const graft_options& options, std::string who = "");
  ~OptimizerInstance();
  OptimizerInstance(const OptimizerInstance&) = delete;
  OptimizerInstance& operator=(const OptimizerInstance&) = delete;

  // The state tensors it keeps per parameter, each shaped like it and zero at the start; saved
  // in checkpoints by these names.
  const std::vector<std::string>& state_names() const { return state_names_; }

  // Updates one parameter. A failure names the plugin and `parameter` ("... on layers.0.weight"),
  // or the step when no parameter is named; the message is only built on failure.
  void step(const graft_exec_ctx& ctx, const graft_param_update& update,
            const std::string& parameter = "") const;

  const std::string& who() const { return who_; }

 private:
  const graft_optimizer_vtable* vtable_;
  void* self_ = nullptr;
  std::vector<std::string> state_names_;
  std::string who_;
};

}  // namespace graft::runtime
