// Creating, sharding, describing and running a layer or activation plugin object, with the
// checks of what an older plugin's table and description may lack.
#include "plugin/layer_instance.hpp"

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "device/host_api.hpp"
#include "util/errors.hpp"

namespace graft::runtime {

namespace {
bool has_shard(const graft_layer_vtable& vt) {
  return vt.struct_size >= offsetof(graft_layer_vtable, shard) + sizeof(vt.shard) &&
         vt.shard != nullptr;
}
bool has_set_positions(const graft_layer_vtable& vt) {
  return vt.struct_size >= offsetof(graft_layer_vtable, set_positions) + sizeof(vt.set_positions) &&
         vt.set_positions != nullptr;
}
}  // namespace

LayerInstance::LayerInstance(const PluginRecord& record, const graft_options& options,
                             const graft_shape& input, std::string who,
                             const std::string& created_as)
    : input_(input), who_(who.empty() ? plugin_who(record) : std::move(who)) {
  const std::string& refused = created_as.empty() ? who_ : created_as;
  if (record.kind == GRAFT_KIND_ACTIVATION) {
    activation_ = &record.vtable<graft_activation_vtable>();
    throw_if_failed(activation_->create(host_api(), &options, &self_), refused);
    return;
  }
  layer_ = &record.vtable<graft_layer_vtable>();
  throw_if_failed(layer_->create(host_api(), &options, &input_, &self_), refused);
}

LayerInstance::~LayerInstance() {
  if (activation_)
    activation_->destroy(self_);
  else
    layer_->destroy(self_);
}

bool LayerInstance::elementwise() const {
  return activation_ && activation_->flags &&
         (activation_->flags(self_) & GRAFT_ACTIVATION_ELEMENTWISE) != 0;
}

bool LayerInstance::can_shard(const PluginRecord& record) {
  return record.kind == GRAFT_KIND_LAYER && has_shard(record.vtable<graft_layer_vtable>());
}

void LayerInstance::shard(int32_t mode, int32_t index, int32_t count, const std::string& as) {
  if (!layer_ || !has_shard(*layer_)) throw Failure(who_ + ": the plugin has no shard()");
  throw_if_failed(layer_->shard(self_, mode, index, count), who_ + as);
}

void LayerInstance::set_positions(int64_t first, int64_t capacity) {
  if (!layer_ || !has_set_positions(*layer_)) return;
  throw_if_failed(layer_->set_positions(self_, first, capacity), who_);
}

const graft_layer_desc& LayerInstance::describe() {
  desc_ = graft_layer_desc{};
  desc_.struct_size = sizeof desc_;
  specs_.clear();
  if (activation_) {
    desc_.output = input_;
    return desc_;
  }
  graft_layer_desc given{};
  given.struct_size = sizeof given;
  throw_if_failed(layer_->describe(self_, &given), who_);
  desc_.output = given.output;
  desc_.workspace_per_sample = given.workspace_per_sample;
  const size_t use_end = offsetof(graft_layer_desc, workspace_use) + sizeof(given.workspace_use);
  if (given.struct_size >= use_end) desc_.workspace_use = given.workspace_use;
  const size_t scratch_end =
      offsetof(graft_layer_desc, scratch_per_sample) + sizeof(given.scratch_per_sample);
  if (given.struct_size >= scratch_end) desc_.scratch_per_sample = given.scratch_per_sample;
  // The array's stride is the plugin's struct_size, which an older plugin has smaller.
  const size_t stride = given.n_params ? given.params[0].struct_size : 0;
  for (size_t p = 0; p < given.n_params; ++p) {
    graft_param_spec spec{};
    spec.shard_axis = -1;
    std::memcpy(&spec, reinterpret_cast<const char*>(given.params) + p * stride,
                std::min(sizeof spec, stride));
    spec.struct_size = sizeof spec;
    specs_.push_back(spec);
  }
  desc_.n_params = specs_.size();
  desc_.params = specs_.data();
  return desc_;
}

void LayerInstance::forward(const graft_exec_ctx& ctx, const DLTensor* const* params,
                            const DLTensor* x, DLTensor* y, DLTensor* workspace) const {
  graft_status* st = activation_ ? activation_->forward(self_, &ctx, x, y)
                                 : layer_->forward(self_, &ctx, params, x, y, workspace);
  if (st) throw_if_failed(st, who_ + " forward");
}

void LayerInstance::backward(const graft_exec_ctx& ctx, const DLTensor* const* params,
                             const DLTensor* x, const DLTensor* y, const DLTensor* dy, DLTensor* dx,
                             DLTensor* const* grads, DLTensor* workspace) const {
  graft_status* st = nullptr;
  if (!activation_)
    st = layer_->backward(self_, &ctx, params, x, y, dy, dx, grads, workspace);
  else if (dx)
    st = activation_->backward(self_, &ctx, x, y, dy, dx);
  if (st) throw_if_failed(st, who_ + " backward");
}

}  // namespace graft::runtime
