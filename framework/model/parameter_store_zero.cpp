// Where ZeRO keeps a unit's floats (parameter_store.hpp): in the padded buffers at level 1, in
// windows shared by every other unit plus this rank's parts kept apart at levels 2 (gradients)
// and 3 (parameters), and the initialisation of level 3, which draws each unit whole into its
// window and keeps this rank's part.
#include <algorithm>

#include "device/host_api.hpp"
#include "model/parameter_store.hpp"

namespace graft::runtime {

size_t ParameterStore::unit_of(size_t f) const {
  const std::vector<ZeroUnit>& units = zero_->units;
  auto after = std::upper_bound(units.begin(), units.end(), f,
                                [](size_t v, const ZeroUnit& u) { return v < u.first; });
  return after == units.begin() ? 0 : size_t(after - units.begin()) - 1;
}

float* ParameterStore::window_at(Buffer& windows, size_t f) {
  const size_t u = unit_of(f);
  return windows.data() + (u % 2 ? window_size_[0] : 0) + (f - zero_->units[u].first);
}

float* ParameterStore::param_at(size_t f) {
  return zero_level() >= 3 ? window_at(param_buffer_, f) : param_buffer_.data() + f;
}

float* ParameterStore::grad_at(size_t f) {
  return zero_level() >= 2 ? window_at(grad_buffer_, f) : grad_buffer_.data() + f;
}

float* ParameterStore::own_parameters(size_t u) {
  return zero_level() >= 3 ? param_parts_.data() + zero_->units[u].state
                           : param_at(zero_->own_first(u));
}

float* ParameterStore::own_gradients(size_t u) {
  return zero_level() >= 2 ? grad_parts_.data() + zero_->units[u].state
                           : grad_at(zero_->own_first(u));
}

// Unit by unit, since units share windows: each parameter drawn whole into the window (sliced
// for a tensor-parallel part, as always), then this rank's part of the unit kept.
void ParameterStore::initialise_by_unit(uint64_t seed, int32_t shard_index, int32_t shards) {
  const ZeroLayout& z = *zero_;
  for (size_t u = 0; u < z.units.size(); ++u) {
    const ZeroUnit& unit = z.units[u];
    const size_t end = unit.first + unit.part * size_t(z.parts);
    float* const window = unit_parameters(u);
    TensorView all(window, device_, graft_shape{1, {int64_t(end - unit.first)}});
    throw_if_failed(host_api()->fill(nullptr, all.get(), 0.0f), "zeroing a ZeRO window");
    for (size_t i = 0; i < params_.size(); ++i)
      if (params_[i].has_floats() && params_[i].offset >= unit.first && params_[i].offset < end)
        initialise(i, seed, shard_index, shards);
    const graft_shape part{1, {int64_t(unit.part)}};
    TensorView from(window + (z.own_first(u) - unit.first), device_, part);
    TensorView to(own_parameters(u), device_, part);
    throw_if_failed(host_api()->copy(nullptr, from.get(), to.get()), "keeping a ZeRO part");
  }
}

}  // namespace graft::runtime
