// The data axis under ZeRO-1 (graft_mesh::zero = 1): the host lays the stage's parameters out
// in units (graft_zero_unit), each split into one part per data rank. As backward finishes a
// unit's layers its gradients are reduce-scattered over the data group, so each rank holds the
// sum of its own part only; each rank then updates its own part (the only optimizer state it
// keeps) and the parts are all-gathered back into every rank's parameters, each gather
// started as soon as its unit is updated so it overlaps the updates of the units after it.
#pragma once

#include <exception>
#include <string>
#include <utility>
#include <vector>

#include <graft/cpp/strategy.hpp>

namespace graft::mesh {

class ZeroSync {
 public:
  bool built_for(const graft_model* model) const { return model_ == model; }

  void build(const ModelRef& model) {
    model_ = model.handle();
    units_.clear();
    first_layer_unit_.assign(size_t(model.layer_count()), -1);
    GRAFT_CHECK(model.has(&graft_model_api::zero_unit_count),
                "mesh: [parallel] zero >= 1, but this graft's model api has no ZeRO units "
                "(SDK 1.2); update graft");
    // A stage without parameters (dropout alone) has no units: nothing to sum or update.
    const int64_t n = model.zero_unit_count();
    for (int64_t u = 0; u < n; ++u) {
      Unit unit;
      unit.layout = model.zero_unit(u);
      const graft_zero_unit& z = unit.layout;
      unit.what = "ZeRO unit " + std::to_string(u) + " (layers " + std::to_string(z.begin) + ".." +
                  std::to_string(z.end - 1) + ")";
      unit.own_shape = z.part;
      unit.own_gradients = part_of(z.gradients, z, unit.own_shape);
      unit.own_parameters = part_of(z.parameters, z, unit.own_shape);
      if (z.begin >= 0 && z.begin < int64_t(first_layer_unit_.size()))
        first_layer_unit_[size_t(z.begin)] = u;
      units_.push_back(std::move(unit));
    }
    // Views hold a pointer to their own shape: set them once the vector no longer moves.
    for (Unit& unit : units_) {
      unit.own_gradients.shape = &unit.own_shape;
      unit.own_parameters.shape = &unit.own_shape;
    }
  }

  // From backward's on_layer_done: starts the reduce-scatter of the unit whose lowest layer
  // this is. Through C, so it keeps a failure for wait_reduced rather than throwing.
  void layer_done(const Comm& data, int64_t layer) noexcept {
    if (layer < 0 || size_t(layer) >= first_layer_unit_.size()) return;
    const int64_t u = first_layer_unit_[size_t(layer)];
    if (u >= 0) start_reduce(data, units_[size_t(u)]);
  }

  // Starts the units backward did not (a rank without rows this step), then waits for all:
  // each rank now holds its own parts' summed gradients.
  void wait_reduced(const Comm& data) {
    for (Unit& unit : units_)
      if (!unit.started) start_reduce(data, unit);
    wait_all(data);
  }

  // This rank's share of the global squared gradient norm: its own parts.
  double own_sq_norm(const ModelRef& model, bool count_replicated) const {
    double sum = 0.0;
    for (size_t u = 0; u < units_.size(); ++u)
      sum += model.zero_part_sq_norm(int64_t(u), count_replicated);
    return sum;
  }

  // Updates this rank's part of every unit under one schedule step, all-gathering each unit's
  // parameters as soon as its part is updated.
  void update(const ModelRef& model, const Context& ctx, const Comm& data,
              double grad_sq_norm_total) {
    model.step_begin(ctx, grad_sq_norm_total);
    for (size_t u = 0; u < units_.size() && !failure_; ++u) {
      Unit& unit = units_[u];
      try {
        model.step_part(ctx, int64_t(u));
        unit.request =
            data.all_gather_start(unit.own_parameters, unit.layout.parameters, unit.what.c_str());
      } catch (...) {
        failure_ = std::current_exception();
      }
    }
    wait_all(data);
    model.step_end();
  }

 private:
  struct Unit {
    graft_zero_unit layout{};
    int64_t own_shape = 0;
    DLTensor own_gradients{}, own_parameters{};  // this rank's part of each, in place
    std::string what;
    graft_request* request = nullptr;
    bool started = false;
  };

  // This rank's part of a unit's 1-D view.
  static DLTensor part_of(const DLTensor& whole, const graft_zero_unit& z, int64_t& shape) {
    DLTensor part = whole;
    part.shape = &shape;
    part.byte_offset = whole.byte_offset + uint64_t(z.index) * uint64_t(z.part) * sizeof(float);
    return part;
  }

  void start_reduce(const Comm& data, Unit& unit) noexcept {
    unit.started = true;
    if (failure_) return;
    try {
      unit.request = data.reduce_scatter_start(unit.layout.gradients, unit.own_gradients,
                                               GRAFT_REDUCE_SUM, unit.what.c_str());
    } catch (...) {
      failure_ = std::current_exception();
    }
  }

  // Waits for every started operation, then rethrows the first failure; ready for the next.
  void wait_all(const Comm& data) {
    for (Unit& unit : units_) {
      if (unit.request) {
        try {
          data.wait(unit.request);
        } catch (...) {
          if (!failure_) failure_ = std::current_exception();
        }
      }
      unit.request = nullptr;
      unit.started = false;
    }
    if (failure_) std::rethrow_exception(std::exchange(failure_, nullptr));
  }

  const graft_model* model_ = nullptr;
  std::vector<Unit> units_;
  std::vector<int64_t> first_layer_unit_;  // layer -> the unit it is lowest in, or -1
  std::exception_ptr failure_;
};

}  // namespace graft::mesh
