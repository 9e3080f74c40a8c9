// Creating and calling a strategy plugin object: which optional slots an older plugin's table
// reaches, the host's defaults for the absent ones, and failures as exceptions naming the plugin.
#include "plugin/strategy_instance.hpp"

#include <cstddef>

#include "device/host_api.hpp"
#include "model/model.hpp"
#include "util/errors.hpp"

namespace graft::runtime {

namespace {
// "strategy 'pipeline'", and "[parallel] strategy 'pipeline'" where the config chose it.
std::string strategy_named(const std::string& name) { return "strategy '" + name + "'"; }
std::string configured(const std::string& name) { return "[parallel] " + strategy_named(name); }
}  // namespace

StrategyInstance::StrategyInstance(const PluginRecord& record, const BoundOptions& options,
                                   const graft_world& world, StrategyUse use)
    : record_(record), vtable_(record.vtable<graft_strategy_vtable>()), use_(use) {
  // Slots added after ABI 1.0 count only where the plugin's table reaches them.
  const size_t size = vtable_.struct_size;
  if (size >= offsetof(graft_strategy_vtable, plan) + sizeof(vtable_.plan)) plan_ = vtable_.plan;
  if (size >= offsetof(graft_strategy_vtable, batch_rows) + sizeof(vtable_.batch_rows))
    batch_rows_ = vtable_.batch_rows;
  if (size >= offsetof(graft_strategy_vtable, report) + sizeof(vtable_.report))
    report_ = vtable_.report;
  throw_if_failed(vtable_.create(host_api(), options.get(), &world, &self_),
                  use_ == StrategyUse::run ? configured(name()) : strategy_named(name()));
}

StrategyInstance::~StrategyInstance() {
  if (self_) vtable_.destroy(self_);
}

void StrategyInstance::plan(const std::vector<graft_layer_info>& layers, int64_t global_batch,
                            graft_plan& plan) {
  if (!plan_) return;
  throw_if_failed(
      plan_(self_, layers.data(), static_cast<int64_t>(layers.size()), global_batch, &plan),
      configured(name()));
}

std::pair<int64_t, int64_t> StrategyInstance::batch_rows(int64_t rows, bool training) {
  int64_t begin = 0, end = rows;
  if (batch_rows_) batch_rows_(self_, rows, training ? 1 : 0, &begin, &end);
  return {begin, end};
}

graft_step_result StrategyInstance::train_step(Model& model, const graft_exec_ctx& ctx,
                                               const DLTensor& x, const DLTensor& y) {
  graft_step_result result{};
  result.struct_size = sizeof result;
  // The message is made only on failure: a step allocates nothing.
  if (graft_status* st =
          vtable_.train_step(self_, Model::api(), model.handle(), &ctx, &x, &y, &result))
    throw_if_failed(st, use_ == StrategyUse::run ? "training step " + std::to_string(ctx.step)
                                                 : strategy_named(name()) + " train_step");
  return result;
}

void StrategyInstance::eval_step(Model& model, const graft_exec_ctx& ctx, const DLTensor& x,
                                 const DLTensor& y, graft_step_result& total) {
  if (graft_status* st =
          vtable_.eval_step(self_, Model::api(), model.handle(), &ctx, &x, &y, &total))
    throw_if_failed(
        st, strategy_named(name()) + (use_ == StrategyUse::run ? " evaluation" : " eval_step"));
}

bool StrategyInstance::report(graft_strategy_report& out) {
  if (!report_) return false;
  out = graft_strategy_report{};
  out.struct_size = sizeof out;
  if (graft_status* st = report_(self_, &out))
    throw_if_failed(st, strategy_named(name()) + " report");
  return true;
}

}  // namespace graft::runtime
