// Creating, describing and running a loss plugin object.
#include "plugin/loss_instance.hpp"

#include "device/host_api.hpp"
#include "util/errors.hpp"

namespace graft::runtime {

LossInstance::LossInstance(const PluginRecord& record, const graft_options& options,
                           const graft_shape& prediction, const graft_target_info& target,
                           std::string who, const std::string& created_as)
    : vtable_(&record.vtable<graft_loss_vtable>()),
      who_(who.empty() ? plugin_who(record) : std::move(who)) {
  throw_if_failed(vtable_->create(host_api(), &options, &prediction, &target, &self_),
                  created_as.empty() ? who_ : created_as);
  try {
    graft_loss_desc desc{};
    desc.struct_size = sizeof desc;
    throw_if_failed(vtable_->describe(self_, &desc), who_);
    // metric_names has room for GRAFT_MAX_METRICS; a larger count would read past it.
    if (desc.n_metrics > GRAFT_MAX_METRICS)
      throw UserError(who_ + ": describe() reports " + std::to_string(desc.n_metrics) +
                      " metrics, but a loss may have at most " + std::to_string(GRAFT_MAX_METRICS) +
                      " (GRAFT_MAX_METRICS, loss.h); " +
                      "the plugin must be fixed to report fewer");
    for (size_t m = 0; m < desc.n_metrics; ++m) metric_names_.push_back(desc.metric_names[m]);
  } catch (...) {
    vtable_->destroy(self_);
    throw;
  }
}

LossInstance::~LossInstance() { vtable_->destroy(self_); }

void LossInstance::forward(const graft_exec_ctx& ctx, const DLTensor& prediction,
                           const DLTensor& target, double& loss_sum, double* metric_sums) const {
  if (graft_status* st =
          vtable_->forward(self_, &ctx, &prediction, &target, &loss_sum, metric_sums))
    throw_if_failed(st, who_ + " forward");
}

void LossInstance::backward(const graft_exec_ctx& ctx, const DLTensor& prediction,
                            const DLTensor& target, float scale, DLTensor& dprediction) const {
  if (graft_status* st = vtable_->backward(self_, &ctx, &prediction, &target, scale, &dprediction))
    throw_if_failed(st, who_ + " backward");
}

}  // namespace graft::runtime
