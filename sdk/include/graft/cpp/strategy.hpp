// What a strategy drives, as C++: graft::ModelRef (the host's model) and graft::Comm (its
// communicator), each call throwing on failure. They read the C tables' later slots only where
// the host's struct_size reaches them, so a strategy never probes a table itself and still runs
// on an older host, which it is told to update when it calls a slot that host lacks.
#pragma once

#include <cstddef>
#include <string>
#include <type_traits>

#include "graft/cpp/kinds.hpp"
#include "graft/cpp/rows.hpp"

namespace graft {

namespace detail {

// Whether a table from across the ABI reaches `member` (structs only grow at their end, so an
// older host's table is shorter) and, for a slot, whether the host filled it in.
template <class Table, class Member>
bool has_member(const Table& table, Member Table::*member) {
  const auto offset =
      reinterpret_cast<const char*>(&(table.*member)) - reinterpret_cast<const char*>(&table);
  if (table.struct_size < size_t(offset) + sizeof(Member)) return false;
  if constexpr (std::is_pointer_v<Member>) return table.*member != nullptr;
  return true;
}

inline std::string prefixed(const char* who, const std::string& message) {
  return who && *who ? std::string(who) + ": " + message : message;
}

}  // namespace detail

class Comm;

// The host's model as a strategy sees it: top-level layers 0 .. layer_count() - 1, run in
// ranges. Cheap to copy; valid during the train_step or eval_step it was made in.
class ModelRef {
 public:
  // who names the strategy in errors ("data_parallel").
  ModelRef(const graft_model_api& api, graft_model* model, const char* who)
      : api_(&api), model_(model), who_(who) {}

  // The host's handle: which model this is, for what a strategy builds once per model.
  graft_model* handle() const { return model_; }

  // Whether this host's table has the slot (graft_model_api::grad_sq_norm, ...): for a strategy
  // that refuses up front what it would need later.
  template <class Slot>
  bool has(Slot graft_model_api::*slot) const {
    return detail::has_member(*api_, slot);
  }

  int64_t layer_count() const { return fn(&graft_model_api::layer_count, "layer_count")(model_); }

  // Layers [begin, end) on x; the result is layer end - 1's planned output for ctx.slot, valid
  // until the next forward or backward on that slot.
  const DLTensor& forward(const Context& ctx, int64_t begin, int64_t end, const DLTensor& x) const {
    const DLTensor* y = nullptr;
    check(fn(&graft_model_api::forward, "forward")(model_, &ctx, begin, end, &x, &y));
    return given(y, "forward");
  }

  // Adds the loss and metric sums of prediction against target into result (evaluation).
  void loss(const Context& ctx, const DLTensor& prediction, const DLTensor& target,
            graft_step_result& result) const {
    check(fn(&graft_model_api::loss, "loss")(model_, &ctx, &prediction, &target, &result, nullptr));
  }
  // The same, and the planned buffer d(loss sum)/d(prediction) / ctx.global_batch that
  // backward starts from (the loss scales by the global batch, so parts of it sum to the whole).
  const DLTensor& loss_and_gradient(const Context& ctx, const DLTensor& prediction,
                                    const DLTensor& target, graft_step_result& result) const {
    const DLTensor* dprediction = nullptr;
    check(fn(&graft_model_api::loss, "loss")(model_, &ctx, &prediction, &target, &result,
                                             &dprediction));
    return given(dprediction, "loss");
  }

  // Backward through layers [begin, end) in reverse, from dy (the gradient of layer end - 1's
  // output); parameter gradients accumulate. Returns the gradient of layer begin's input, NULL
  // when begin == 0; it may be written over that layer's output (GRAFT_ENTRY_DX_OVER_OUTPUT).
  const DLTensor* backward(const Context& ctx, int64_t begin, int64_t end,
                           const DLTensor& dy) const {
    return backward_calling(ctx, begin, end, dy, nullptr, nullptr);
  }
  // The same, calling on_layer_done(layer) as each layer finishes, from inside the host's
  // backward (which is C): it must be noexcept, so a failure is kept for later, not thrown.
  template <class OnLayerDone>
  const DLTensor* backward(const Context& ctx, int64_t begin, int64_t end, const DLTensor& dy,
                           OnLayerDone&& on_layer_done) const {
    using F = std::remove_reference_t<OnLayerDone>;
    static_assert(std::is_nothrow_invocable_v<F&, int64_t>,
                  "on_layer_done is called through C: declare it noexcept");
    auto call = [](void* user, int64_t layer) { (*static_cast<F*>(user))(layer); };
    return backward_calling(ctx, begin, end, dy, call,
                            const_cast<void*>(static_cast<const void*>(&on_layer_done)));
  }

  void zero_grad() const { check(fn(&graft_model_api::zero_grad, "zero_grad")(model_)); }
  // Clips by global norm when configured, applies the schedule and updates every parameter.
  void optimizer_step(const Context& ctx) const {
    check(fn(&graft_model_api::optimizer_step, "optimizer_step")(model_, &ctx));
  }

  // The slots below came with the parallel strategies (SDK 1.1).

  // A 1-D float32 view of the gradients (parameters) of layers [begin, end), contiguous in
  // layer order, so they can be summed over ranks in buckets; valid while the model lives.
  DLTensor gradients(int64_t begin, int64_t end) const {
    DLTensor out{};
    check(fn(&graft_model_api::gradients, "gradients")(model_, begin, end, &out));
    return out;
  }
  DLTensor parameters(int64_t begin, int64_t end) const {
    DLTensor out{};
    check(fn(&graft_model_api::parameters, "parameters")(model_, begin, end, &out));
    return out;
  }
  // Sum of squared gradients of layers [begin, end): tensor-parallel shards always count, whole
  // (replicated) tensors only with count_replicated, so ranks' parts sum to the global norm.
  double grad_sq_norm(int64_t begin, int64_t end, bool count_replicated) const {
    double out = 0.0;
    check(fn(&graft_model_api::grad_sq_norm, "grad_sq_norm")(model_, begin, end,
                                                             count_replicated ? 1 : 0, &out));
    return out;
  }
  // optimizer_step for layers [begin, end) alone; clipping uses grad_sq_norm_total (the
  // strategy's global value) when it is >= 0, else the norm of these layers.
  void optimizer_step_layers(const Context& ctx, int64_t begin, int64_t end,
                             double grad_sq_norm_total) const {
    check(fn(&graft_model_api::optimizer_step_layers, "optimizer_step_layers")(
        model_, &ctx, begin, end, grad_sq_norm_total));
  }
  // The plan the model was built with: the stage and graft_shard_mode of top-level layer i.
  int32_t layer_stage(int64_t layer) const {
    return fn(&graft_model_api::layer_stage, "layer_stage")(model_, layer);
  }
  int32_t layer_shard(int64_t layer) const {
    return fn(&graft_model_api::layer_shard, "layer_shard")(model_, layer);
  }

  // The slots below came with ZeRO (SDK 1.2).

  // The host's ZeRO units over the data group (0 without ZeRO, or from an older host).
  int64_t zero_unit_count() const {
    return has(&graft_model_api::zero_unit_count) ? api_->zero_unit_count(model_) : 0;
  }
  graft_zero_unit zero_unit(int64_t unit) const {
    graft_zero_unit out{};
    out.struct_size = sizeof out;
    check(fn(&graft_model_api::zero_unit, "zero_unit")(model_, unit, &out));
    return out;
  }
  // Squares of this rank's part of the unit's gradients, counted as grad_sq_norm counts them.
  double zero_part_sq_norm(int64_t unit, bool count_replicated) const {
    double out = 0.0;
    check(fn(&graft_model_api::zero_part_sq_norm, "zero_part_sq_norm")(
        model_, unit, count_replicated ? 1 : 0, &out));
    return out;
  }
  // One update in parts: the rate and clipping factor for the global squared norm, then any
  // units' own parts, then the step counted once.
  void step_begin(const Context& ctx, double grad_sq_norm_total) const {
    check(fn(&graft_model_api::step_begin, "step_begin")(model_, &ctx, grad_sq_norm_total));
  }
  void step_part(const Context& ctx, int64_t unit) const {
    check(fn(&graft_model_api::step_part, "step_part")(model_, &ctx, unit));
  }
  void step_end() const { check(fn(&graft_model_api::step_end, "step_end")(model_)); }
  // Sums a tensor over the tensor group for the model (graft_model_api's set_tensor_reduce);
  // `comm` must outlive the model's use of it. Defined after Comm.
  void set_tensor_reduce(const Comm& comm) const;
  // Sums the gradients of parameters tied across pipeline stages over `pipeline`, the group
  // with one rank per stage (graft_model_api's tied_gradients); collective over it. Call it
  // after backward (and any data-parallel sum) and before the gradient norm.
  void sum_tied_gradients(const Comm& pipeline) const;

 private:
  // The one place a slot is looked up: absent from an older host, it is an error to update.
  template <class Slot>
  Slot fn(Slot graft_model_api::*slot, const char* name) const {
    if (!has(slot))
      throw Error(GRAFT_ERR_INVALID_ARGUMENT,
                  detail::prefixed(who_, std::string("this graft's model api has no ") + name +
                                             "(); update graft"));
    return (*api_).*slot;
  }
  const DLTensor& given(const DLTensor* t, const char* name) const {
    if (!t)
      throw Error(GRAFT_ERR_RUNTIME, detail::prefixed(who_, std::string("the model's ") + name +
                                                                "() succeeded but gave no tensor"));
    return *t;
  }
  const DLTensor* backward_calling(const Context& ctx, int64_t begin, int64_t end,
                                   const DLTensor& dy, void (*on_layer_done)(void*, int64_t),
                                   void* user) const {
    const DLTensor* dx = nullptr;
    check(fn(&graft_model_api::backward, "backward")(model_, &ctx, begin, end, &dy, &dx,
                                                     on_layer_done, user));
    return dx;
  }

  const graft_model_api* api_;
  graft_model* model_;
  const char* who_;
};

// The communicator of a strategy's world (comm.h): every call but send/recv is collective over
// it, and `what` names the call in the watchdog's report when a rank does not join. Empty (false)
// in a world from a graft that predates communicators, or one made only for planning
// (`graft validate --world N`), where a strategy must not communicate: check it first, with a
// message that says how to launch. Cheap to copy; the host owns what it refers to.
class Comm {
 public:
  Comm() = default;
  Comm(const graft_world& world, const char* who) : who_(who) {
    if (detail::has_member(world, &graft_world::comm_api) && world.comm && world.comm_api) {
      comm_ = world.comm;
      api_ = world.comm_api;
    }
  }
  Comm(graft_comm* comm, const graft_comm_api* api, const char* who)
      : comm_(comm && api ? comm : nullptr), api_(comm && api ? api : nullptr), who_(who) {}

  explicit operator bool() const { return comm_ != nullptr; }
  graft_comm* handle() const { return comm_; }
  const graft_comm_api* api() const { return api_; }

  int32_t rank() const { return fn(&graft_comm_api::rank, "rank")(comm_); }
  int32_t size() const { return fn(&graft_comm_api::size, "size")(comm_); }

  // In place on a float32 tensor; every rank passes the same element count.
  void all_reduce(DLTensor& t, graft_reduce_op op, const char* what) const {
    check(fn(&graft_comm_api::all_reduce, "all_reduce")(comm_, &t, op, what));
  }
  // Starts an all-reduce and returns at once: t is not touched until wait(request).
  graft_request* all_reduce_start(DLTensor& t, graft_reduce_op op, const char* what) const {
    graft_request* request = nullptr;
    check(fn(&graft_comm_api::all_reduce_start, "all_reduce_start")(comm_, &t, op, what, &request));
    return request;
  }
  // Waits for an operation started here and frees it, even when it failed.
  void wait(graft_request* request) const {
    check(fn(&graft_comm_api::wait, "wait")(comm_, request));
  }
  // n doubles in place (losses, metric sums, norms), in double precision.
  void all_reduce_f64(double* values, int64_t n, graft_reduce_op op, const char* what) const {
    check(fn(&graft_comm_api::all_reduce_f64, "all_reduce_f64")(comm_, values, n, op, what));
  }
  void broadcast(DLTensor& t, int32_t root, const char* what) const {
    check(fn(&graft_comm_api::broadcast, "broadcast")(comm_, &t, root, what));
  }
  // out holds size() x in's bytes: rank r's `in` lands in the r-th equal part.
  void all_gather(const DLTensor& in, DLTensor& out, const char* what) const {
    check(fn(&graft_comm_api::all_gather, "all_gather")(comm_, &in, &out, what));
  }
  // in holds size() equal parts; rank r receives the reduction of every rank's part r.
  void reduce_scatter(const DLTensor& in, DLTensor& out, graft_reduce_op op,
                      const char* what) const {
    check(fn(&graft_comm_api::reduce_scatter, "reduce_scatter")(comm_, &in, &out, op, what));
  }
  // Point to point, matched by (peer, tag) in order.
  void send(const DLTensor& t, int32_t peer, int32_t tag, const char* what) const {
    check(fn(&graft_comm_api::send, "send")(comm_, &t, peer, tag, what));
  }
  void recv(DLTensor& t, int32_t peer, int32_t tag, const char* what) const {
    check(fn(&graft_comm_api::recv, "recv")(comm_, &t, peer, tag, what));
  }
  graft_request* send_start(const DLTensor& t, int32_t peer, int32_t tag, const char* what) const {
    graft_request* request = nullptr;
    check(fn(&graft_comm_api::send_start, "send_start")(comm_, &t, peer, tag, what, &request));
    return request;
  }
  graft_request* recv_start(DLTensor& t, int32_t peer, int32_t tag, const char* what) const {
    graft_request* request = nullptr;
    check(fn(&graft_comm_api::recv_start, "recv_start")(comm_, &t, peer, tag, what, &request));
    return request;
  }
  void barrier(const char* what) const {
    check(fn(&graft_comm_api::barrier, "barrier")(comm_, what));
  }
  // The two above, started (SDK 1.2): neither tensor is touched until wait(request). An
  // all_gather may run in place, `in` being this rank's own part of `out`.
  graft_request* reduce_scatter_start(const DLTensor& in, DLTensor& out, graft_reduce_op op,
                                      const char* what) const {
    graft_request* request = nullptr;
    check(fn(&graft_comm_api::reduce_scatter_start, "reduce_scatter_start")(comm_, &in, &out, op,
                                                                            what, &request));
    return request;
  }
  graft_request* all_gather_start(const DLTensor& in, DLTensor& out, const char* what) const {
    graft_request* request = nullptr;
    check(fn(&graft_comm_api::all_gather_start, "all_gather_start")(comm_, &in, &out, what,
                                                                    &request));
    return request;
  }
  // Collective: ranks passing the same color form a new communicator, ordered by key; the
  // host owns it and frees it with this one.
  Comm split(int32_t color, int32_t key) const {
    graft_comm* out = nullptr;
    check(fn(&graft_comm_api::split, "split")(comm_, color, key, &out));
    return Comm(out, api_, who_);
  }

 private:
  // The one place a slot is looked up: no communicator at all, or a slot an older host lacks.
  template <class Slot>
  Slot fn(Slot graft_comm_api::*slot, const char* name) const {
    if (!comm_)
      throw Error(GRAFT_ERR_INVALID_ARGUMENT,
                  detail::prefixed(who_, std::string(name) +
                                             "(): this world has no communicator (one made for "
                                             "planning only, or by a graft from before "
                                             "communicators)"));
    if (!detail::has_member(*api_, slot))
      throw Error(GRAFT_ERR_INVALID_ARGUMENT,
                  detail::prefixed(who_, std::string("this graft's communicator api has no ") +
                                             name + "(); update graft"));
    return (*api_).*slot;
  }

  graft_comm* comm_ = nullptr;
  const graft_comm_api* api_ = nullptr;
  const char* who_ = nullptr;
};

inline void ModelRef::set_tensor_reduce(const Comm& comm) const {
  if (!comm.handle()) return;  // one rank: nothing to sum
  static constexpr auto reduce = [](void* user, DLTensor* t, const char* what) {
    const auto* c = static_cast<const Comm*>(user);
    return c->api()->all_reduce(c->handle(), t, GRAFT_REDUCE_SUM, what);
  };
  fn(&graft_model_api::set_tensor_reduce, "set_tensor_reduce")(model_, +reduce,
                                                               const_cast<Comm*>(&comm));
}

inline void ModelRef::sum_tied_gradients(const Comm& pipeline) const {
  if (!pipeline.handle() || !has(&graft_model_api::tied_gradients)) return;  // nothing tied
  DLTensor buffer{};
  auto tied = fn(&graft_model_api::tied_gradients, "tied_gradients");
  check(tied(model_, 0, &buffer));
  if (buffer.shape[0] == 0) return;
  pipeline.all_reduce(buffer, GRAFT_REDUCE_SUM, "pipeline: gradients of tied parameters");
  check(tied(model_, 1, &buffer));
}

// A step's sums as one array of doubles, as strategies sum them over ranks: [0] the squared
// gradient norm (for clipping), then the loss sum, the row count and the metric sums of a
// graft_step_result. Every rank returns the whole batch's sums; summing this array over the
// right groups (a rank that computed no loss contributes zeros) is how it gets them.
struct StepSums {
  static constexpr int kCount = 3 + GRAFT_MAX_METRICS;
  double values[kCount] = {};

  double& norm() { return values[0]; }
  double* loss_part() { return values + 1; }  // the kCount - 1 values after the norm
  // This rank's loss, rows and metrics, from its part of the batch.
  void take(const graft_step_result& part) {
    values[1] = part.loss_sum;
    values[2] = double(part.rows);
    for (int m = 0; m < GRAFT_MAX_METRICS; ++m) values[3 + m] = part.metric_sums[m];
  }
  // Sums values[first..] over `comm` (in double precision, on the host).
  void sum_over(const Comm& comm, const char* what, int first = 0) {
    comm.all_reduce_f64(values + first, kCount - first, GRAFT_REDUCE_SUM, what);
  }
  // Adds the loss, rows and metrics into result (which may hold earlier batches', as in an
  // evaluation).
  void add_to(graft_step_result& result) const {
    result.loss_sum += values[1];
    result.rows += int64_t(values[2] + 0.5);  // exact: counts far below 2^53
    for (int m = 0; m < GRAFT_MAX_METRICS; ++m) result.metric_sums[m] += values[3 + m];
  }
};

}  // namespace graft
