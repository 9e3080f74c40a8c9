// The data axis under ZeRO (graft_mesh::zero >= 1): the host lays the stage's parameters out in
// units (graft_zero_unit), each split into one part per data rank; a rank keeps the optimizer
// state of its own parts only, and updates only them.
//   zero 1: the last micro-batch's backward reduce-scatters each unit's gradients as soon as it
//           is done with the unit's layers (in place: each rank's part of the sum lands in its
//           own part); after the update each unit's parts are all-gathered back, each gather
//           started as soon as its unit is updated.
//   zero 2: gradients too are kept by part: every micro-batch's backward sums a unit's
//           gradients in its gradient window and reduce-scatters them while the unit below
//           computes; its part is added to the part the rank keeps before the window (shared
//           with the unit two further down) is zeroed for that unit.
//   zero 3: parameters too, gathered into the unit's window before its layers run, forward and
//           again in backward, the next unit's gather started while this one computes (units
//           alternate between two windows); a window's unit stays gathered until the update.
#pragma once

#include <exception>
#include <string>
#include <utility>
#include <vector>

#include <graft/cpp/strategy.hpp>

#include "../common/stage_runner.hpp"

namespace graft::mesh {

class ZeroSync final : public pipeline::StageHooks {
 public:
  explicit ZeroSync(int32_t level = 1) : level_(level) {}
  bool built_for(const graft_model* model) const { return model_ == model; }

  void build(const ModelRef& model, const Comm& data) {
    model_ = model.handle();
    data_ = data;
    units_.clear();
    unit_of_layer_.assign(size_t(model.layer_count()), -1);
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
      for (int64_t l = z.begin; l < z.end && l < int64_t(unit_of_layer_.size()); ++l)
        unit_of_layer_[size_t(l)] = u;
      units_.push_back(std::move(unit));
    }
    // In-place parts of the whole views: shapes live in the units, set once they stop moving.
    for (Unit& unit : units_) {
      unit.part_shape = unit.layout.part;
      unit.window_part = part_of(unit.layout.gradients, unit.layout, unit.part_shape);
    }
    for (Window* w : {&params_[0], &params_[1], &grads_[0], &grads_[1]}) *w = Window{};
  }

  // zero 1, from backward's on_layer_done in the last micro-batch: starts the reduce-scatter of
  // the unit whose lowest layer this is. Through C, so it keeps a failure for later.
  void layer_done(int64_t layer) noexcept {
    if (level_ != 1) return;
    const int64_t u = unit_of(layer);
    if (u < 0 || units_[size_t(u)].layout.begin != layer) return;
    Unit& unit = units_[size_t(u)];
    unit.started = true;
    if (failure_) return;
    try {
      unit.request = data_.reduce_scatter_start(unit.layout.gradients, unit.window_part,
                                                GRAFT_REDUCE_SUM, unit.what.c_str());
    } catch (...) {
      failure_ = std::current_exception();
    }
  }

  // zero 3, before a unit's first layer runs forward: its parameters, and the next unit's
  // started.
  void before_forward(const ModelRef&, const Context&, int64_t begin, int64_t) override {
    if (level_ < 3) return;
    const int64_t u = unit_of(begin);
    if (u < 0 || units_[size_t(u)].layout.begin != begin) return;
    gathered(u);
    prefetch(u + 1);
  }
  // zero 2-3, entering a unit from its top: at zero 3 its parameters (and the unit below's
  // started); its gradient window, once the unit two further up has left it, from zero.
  void before_backward(const ModelRef&, const Context& ctx, int64_t, int64_t end) override {
    if (level_ < 2) return;
    const int64_t u = unit_of(end - 1);
    if (u < 0 || units_[size_t(u)].layout.end != end) return;
    if (level_ >= 3) {
      gathered(u);
      prefetch(u - 1);
    }
    Unit& unit = units_[size_t(u)];
    settle(ctx, grads_[u % 2]);
    check(ctx.host->fill(&ctx, &unit.layout.gradients, 0.0f), "zeroing a ZeRO gradient window");
  }
  // zero 2-3, leaving a unit at its lowest layer: its gradients' sum over the data group
  // started; this rank's part is added to the part it keeps when the window is next needed.
  void after_backward(const ModelRef&, const Context&, int64_t begin, int64_t) override {
    if (level_ < 2) return;
    const int64_t u = unit_of(begin);
    if (u < 0 || units_[size_t(u)].layout.begin != begin) return;
    Unit& unit = units_[size_t(u)];
    Window& w = grads_[u % 2];
    w.unit = u;
    w.request = data_.reduce_scatter_start(unit.layout.gradients, unit.window_part,
                                           GRAFT_REDUCE_SUM, unit.what.c_str());
  }

  // After the schedule: each rank now holds its own parts' summed gradients. zero 1 starts the
  // units backward did not (a rank without rows this step) and waits for all; zero 2-3 add the
  // last reduce-scatters' parts.
  void wait_reduced(const Context& ctx) {
    if (level_ == 1)
      for (Unit& unit : units_)
        if (!unit.started) layer_done(unit.layout.begin);
    wait_all();
    for (Window& w : grads_) settle(ctx, w);
  }

  // This rank's share of the global squared gradient norm: its own parts.
  double own_sq_norm(const ModelRef& model, bool count_replicated) const {
    double sum = 0.0;
    for (size_t u = 0; u < units_.size(); ++u)
      sum += model.zero_part_sq_norm(int64_t(u), count_replicated);
    return sum;
  }

  // Updates this rank's part of every unit under one schedule step; at zero 1-2 each unit's
  // parameters are all-gathered as soon as its part is updated (zero 3 gathers them when a
  // layer next needs them).
  void update(const ModelRef& model, const Context& ctx, double grad_sq_norm_total) {
    // zero 3: the gathered windows are about to go stale.
    for (Window& w : params_) {
      finish(w);
      w.unit = -1;
    }
    model.step_begin(ctx, grad_sq_norm_total);
    for (size_t u = 0; u < units_.size() && !failure_; ++u) {
      Unit& unit = units_[u];
      try {
        model.step_part(ctx, int64_t(u));
        if (level_ < 3)
          unit.request = data_.all_gather_start(unit.layout.own_parameters, unit.layout.parameters,
                                                unit.what.c_str());
      } catch (...) {
        failure_ = std::current_exception();
      }
    }
    wait_all();
    model.step_end();
  }

 private:
  struct Unit {
    graft_zero_unit layout{};
    int64_t part_shape = 0;
    DLTensor window_part{};  // this rank's part of the whole gradients, in place
    std::string what;
    graft_request* request = nullptr;
    bool started = false;
  };

  int64_t unit_of(int64_t layer) const {
    return layer >= 0 && size_t(layer) < unit_of_layer_.size() ? unit_of_layer_[size_t(layer)] : -1;
  }
  static DLTensor part_of(const DLTensor& whole, const graft_zero_unit& z, int64_t& shape) {
    DLTensor part = whole;
    part.shape = &shape;
    part.byte_offset = whole.byte_offset + uint64_t(z.index) * uint64_t(z.part) * sizeof(float);
    return part;
  }
  // A window of even or odd units: which unit's tensors it holds (or will, once `request`
  // completes), -1 for none.
  struct Window {
    int64_t unit = -1;
    graft_request* request = nullptr;
  };

  void finish(Window& w) {
    if (!w.request) return;
    graft_request* r = std::exchange(w.request, nullptr);
    data_.wait(r);
  }
  // Unit u's parameters whole in its window: gathered already (or being), else now.
  void gathered(int64_t u) {
    Window& w = params_[u % 2];
    if (w.unit != u) start_gather(u);
    finish(w);
  }
  // Starts gathering unit u (when there is one) into its window, which the unit computing does
  // not share: they are neighbours.
  void prefetch(int64_t u) {
    if (u < 0 || size_t(u) >= units_.size() || params_[u % 2].unit == u) return;
    start_gather(u);
  }
  void start_gather(int64_t u) {
    Window& w = params_[u % 2];
    finish(w);
    Unit& unit = units_[size_t(u)];
    w.unit = u;
    w.request = data_.all_gather_start(unit.layout.own_parameters, unit.layout.parameters,
                                       unit.what.c_str());
  }
  // A gradient window's reduce-scatter done and its part added to the part this rank keeps.
  void settle(const Context& ctx, Window& w) {
    if (w.unit < 0) return;
    finish(w);
    Unit& unit = units_[size_t(w.unit)];
    w.unit = -1;
    check(ctx.host->axpby(&ctx, 1.0f, &unit.window_part, 1.0f, &unit.layout.own_gradients),
          "adding a ZeRO gradient part");
  }
  static void check(graft_status* status, const char*) { graft::check(status); }

  // Waits for every started operation, then rethrows the first failure; ready for the next.
  void wait_all() {
    for (Unit& unit : units_) {
      if (unit.request) {
        try {
          data_.wait(unit.request);
        } catch (...) {
          if (!failure_) failure_ = std::current_exception();
        }
      }
      unit.request = nullptr;
      unit.started = false;
    }
    if (failure_) std::rethrow_exception(std::exchange(failure_, nullptr));
  }

  int32_t level_;
  const graft_model* model_ = nullptr;
  Comm data_;
  std::vector<Unit> units_;
  std::vector<int64_t> unit_of_layer_;  // layer -> its unit, or -1
  Window params_[2], grads_[2];         // zero 2-3: the windows of even and odd units
  std::exception_ptr failure_;
};

}  // namespace graft::mesh
