// One created strategy plugin object: the runtime's side of graft_strategy_vtable. The optional
// slots (plan, batch_rows, report) are looked for once, and an absent one gets the host's default.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "config/options.hpp"
#include "graft/graft.h"
#include "plugin/registry.hpp"

namespace graft::runtime {

class Model;

// Whom the failure messages speak to: the user of a run, whose config's [parallel] section
// chose the strategy, or the plugin's author under `graft check-plugin`, who needs the slot.
enum class StrategyUse { run, check };

class StrategyInstance {
 public:
  // Creates the strategy for one rank of `world` (its comm NULL when the world is only
  // planned). Throws naming "[parallel] strategy 'x'" (check: "strategy 'x'") when it refuses.
  StrategyInstance(const PluginRecord& record, const BoundOptions& options,
                   const graft_world& world, StrategyUse use = StrategyUse::run);
  ~StrategyInstance();
  StrategyInstance(const StrategyInstance&) = delete;
  StrategyInstance& operator=(const StrategyInstance&) = delete;

  const PluginRecord& record() const { return record_; }
  const std::string& name() const { return record_.name; }

  // Places the layers on stages and shards and sizes the buffers in `plan`, which the caller
  // fills with the host's defaults first; without plan() those stand: one stage, no shards.
  void plan(const std::vector<graft_layer_info>& layers, int64_t global_batch, graft_plan& plan);
  // The rows [first, second) of a global batch of `rows` that this rank reads; without
  // batch_rows() every rank reads all of them.
  std::pair<int64_t, int64_t> batch_rows(int64_t rows, bool training);
  // One optimizer step over this rank's rows x, y of the global batch ctx describes
  // (global_batch, row_offset); a failure names the step ("training step 12: ...").
  graft_step_result train_step(Model& model, const graft_exec_ctx& ctx, const DLTensor& x,
                               const DLTensor& y);
  // Adds the loss and metric sums of one evaluation batch into `total`.
  void eval_step(Model& model, const graft_exec_ctx& ctx, const DLTensor& x, const DLTensor& y,
                 graft_step_result& total);
  // What the strategy says about the epoch that ended, in `out` (valid until its next call);
  // false when it has no report(). Every rank calls it at the same point: it may communicate.
  bool report(graft_strategy_report& out);

 private:
  const PluginRecord& record_;
  const graft_strategy_vtable& vtable_;
  StrategyUse use_;
  void* self_ = nullptr;
  // The optional slots this plugin has (NULL: absent, or past an older plugin's table).
  decltype(graft_strategy_vtable::plan) plan_ = nullptr;
  decltype(graft_strategy_vtable::batch_rows) batch_rows_ = nullptr;
  decltype(graft_strategy_vtable::report) report_ = nullptr;
};

}  // namespace graft::runtime
