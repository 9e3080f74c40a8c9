// Creating, describing and stepping an optimizer plugin object.
#include "plugin/optimizer_instance.hpp"

#include "device/host_api.hpp"
#include "util/errors.hpp"

namespace graft::runtime {

OptimizerInstance::OptimizerInstance(const PluginRecord& record, const graft_options& options,
                                     std::string who)
    : vtable_(&record.vtable<graft_optimizer_vtable>()),
      who_(who.empty() ? plugin_who(record) : std::move(who)) {
  throw_if_failed(vtable_->create(host_api(), &options, &self_), who_);
  try {
    graft_optimizer_desc desc{};
    desc.struct_size = sizeof desc;
    throw_if_failed(vtable_->describe(self_, &desc), who_);
    // state_names has room for GRAFT_MAX_OPTIMIZER_STATE; a larger count would read past it.
    if (desc.n_state > GRAFT_MAX_OPTIMIZER_STATE)
      throw UserError(who_ + ": describe() reports " + std::to_string(desc.n_state) +
                      " state tensors per parameter, but an optimizer may have at most " +
                      std::to_string(GRAFT_MAX_OPTIMIZER_STATE) +
                      " (GRAFT_MAX_OPTIMIZER_STATE, optimizer.h); the plugin must be fixed to "
                      "report fewer");
    for (size_t s = 0; s < desc.n_state; ++s) state_names_.push_back(desc.state_names[s]);
  } catch (...) {
    vtable_->destroy(self_);
    throw;
  }
}

OptimizerInstance::~OptimizerInstance() { vtable_->destroy(self_); }

void OptimizerInstance::step(const graft_exec_ctx& ctx, const graft_param_update& update,
                             const std::string& parameter) const {
  if (graft_status* st = vtable_->step(self_, &ctx, &update))
    throw_if_failed(st, who_ + (parameter.empty() ? " step" : " on " + parameter));
}

}  // namespace graft::runtime
