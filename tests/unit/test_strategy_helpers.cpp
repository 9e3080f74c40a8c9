// graft::ModelRef and graft::Comm (graft/cpp/strategy.hpp) against tables as an older host
// would lend them: a slot beyond the table's struct_size, or left NULL, is an error that names
// the slot and says to update graft, and a world without a communicator makes an empty Comm.
#include <cstddef>
#include <string>
#include <vector>

#include <graft/cpp/strategy.hpp>

#include "test_support.hpp"

namespace {

// A fake model: records what the strategy asked for.
struct Calls {
  std::vector<std::string> seen;
};
Calls* calls(graft_model* m) { return reinterpret_cast<Calls*>(m); }

int64_t fake_layer_count(graft_model*) { return 4; }
graft_status* fake_zero_grad(graft_model* m) {
  calls(m)->seen.push_back("zero_grad");
  return nullptr;
}
graft_status* fake_backward(graft_model* m, const graft_exec_ctx*, int64_t begin, int64_t end,
                            const DLTensor*, const DLTensor** dx,
                            void (*on_layer_done)(void*, int64_t), void* user) {
  calls(m)->seen.push_back("backward " + std::to_string(begin) + ".." + std::to_string(end));
  for (int64_t layer = end; layer-- > begin;)
    if (on_layer_done) on_layer_done(user, layer);
  *dx = nullptr;
  return nullptr;
}
graft_status* fake_grad_sq_norm(graft_model*, int64_t, int64_t, int32_t replicated, double* out) {
  *out = replicated ? 2.5 : 1.5;
  return nullptr;
}
graft_status* failing_optimizer_step(graft_model*, const graft_exec_ctx*) {
  return graft::runtime::host_api()->make_status(GRAFT_ERR_RUNTIME, "the optimizer failed");
}

// A table of every slot, then cut to `struct_size` as an older host's would be.
graft_model_api model_api(size_t struct_size) {
  graft_model_api api{};
  api.struct_size = struct_size;
  api.layer_count = fake_layer_count;
  api.backward = fake_backward;
  api.zero_grad = fake_zero_grad;
  api.optimizer_step = failing_optimizer_step;
  api.grad_sq_norm = fake_grad_sq_norm;
  return api;
}

// The message of a graft::Error that f throws.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const graft::Error& e) {
    return e.what();
  }
  return "(nothing thrown)";
}

int32_t fake_rank(const graft_comm*) { return 1; }
graft_status* fake_barrier(graft_comm*, const char*) { return nullptr; }

}  // namespace

TEST_CASE("ModelRef calls the host's slots and throws what they fail with") {
  Calls seen;
  const graft_model_api api = model_api(sizeof(graft_model_api));
  const graft::ModelRef model(api, reinterpret_cast<graft_model*>(&seen), "my_axis");
  CHECK(model.layer_count() == 4);
  model.zero_grad();
  std::vector<int64_t> done;
  const graft_exec_ctx ctx = graft::test::cpu_ctx();
  DLTensor dy{};
  CHECK(model.backward(ctx, 1, 4, dy, [&](int64_t layer) noexcept { done.push_back(layer); }) ==
        nullptr);
  CHECK(done == std::vector<int64_t>{3, 2, 1});
  model.backward(ctx, 0, 2, dy);
  CHECK(seen.seen == std::vector<std::string>{"zero_grad", "backward 1..4", "backward 0..2"});
  CHECK(model.grad_sq_norm(0, 4, true) == 2.5);
  CHECK(model.grad_sq_norm(0, 4, false) == 1.5);
  try {
    model.optimizer_step(ctx);
    FAIL("optimizer_step did not throw");
  } catch (const graft::StatusError& e) {  // passed back to the host unchanged
    CHECK(std::string(graft::runtime::take(e.status)->message) == "the optimizer failed");
  }
}

TEST_CASE("ModelRef on an older host: a slot it lacks names itself and says to update graft") {
  Calls seen;
  // A host from before the parallel strategies: its table ends at optimizer_step.
  const graft_model_api old_api = model_api(offsetof(graft_model_api, gradients));
  const graft::ModelRef model(old_api, reinterpret_cast<graft_model*>(&seen), "data_parallel");
  CHECK(model.layer_count() == 4);
  CHECK(model.has(&graft_model_api::optimizer_step));
  CHECK_FALSE(model.has(&graft_model_api::gradients));
  CHECK_FALSE(model.has(&graft_model_api::grad_sq_norm));  // filled in, but past its end
  CHECK(error_of([&] { model.gradients(0, 1); }) ==
        "data_parallel: this graft's model api has no gradients(); update graft");
  CHECK(error_of([&] { model.grad_sq_norm(0, 4, true); }) ==
        "data_parallel: this graft's model api has no grad_sq_norm(); update graft");
  CHECK(error_of([&] { model.layer_stage(0); }) ==
        "data_parallel: this graft's model api has no layer_stage(); update graft");

  // A table long enough but with the slot left NULL reads the same.
  const graft_model_api holes = model_api(sizeof(graft_model_api));
  const graft::ModelRef partial(holes, reinterpret_cast<graft_model*>(&seen), "pipeline");
  CHECK_FALSE(partial.has(&graft_model_api::optimizer_step_layers));
  CHECK(error_of([&] { partial.optimizer_step_layers(graft::test::cpu_ctx(), 0, 4, -1.0); }) ==
        "pipeline: this graft's model api has no optimizer_step_layers(); update graft");
}

TEST_CASE("Comm is empty without a communicator, and names a slot an older host lacks") {
  // A world from before communicators ends at size; a planning-only world has comm NULL.
  graft_world old_world{offsetof(graft_world, comm), 0, 2, nullptr, nullptr, 0.0};
  const graft::Comm none(old_world, "my_axis");
  CHECK_FALSE(none);
  CHECK(error_of([&] { none.barrier("step"); }) ==
        "my_axis: barrier(): this world has no communicator (one made for planning only, or by "
        "a graft from before communicators)");
  const graft_world planning{sizeof(graft_world), 0, 2, nullptr, nullptr, 0.0};
  CHECK_FALSE(graft::Comm(planning, "my_axis"));

  // A communicator table that ends before split (an older host), the rest filled in.
  graft_comm_api api{};
  api.struct_size = offsetof(graft_comm_api, split);
  api.rank = fake_rank;
  api.barrier = fake_barrier;
  int handle = 0;
  const graft_world world{
      sizeof(graft_world), 1, 2, reinterpret_cast<graft_comm*>(&handle), &api, 0.0};
  const graft::Comm comm(world, "my_axis");
  REQUIRE(comm);
  CHECK(comm.rank() == 1);
  comm.barrier("step");
  CHECK(error_of([&] { comm.split(0, 1); }) ==
        "my_axis: this graft's communicator api has no split(); update graft");
  CHECK(error_of([&] { comm.size(); }) ==  // inside the table, but NULL
        "my_axis: this graft's communicator api has no size(); update graft");
}
