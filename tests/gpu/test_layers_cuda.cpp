// dropout and flatten on the GPU against the CPU: dropout draws the CPU's masks (whole rows,
// and a tensor-parallel part of them), so y and dx are equal bit for bit; flatten's copies.
#define DOCTEST_CONFIG_IMPLEMENT
#include "gpu_support.hpp"

#include "graft/random.h"

namespace rt = graft::runtime;
using graft::gpu_test::Gpu;
using graft::test::Tensor;

namespace {

// forward then backward of a layer without parameters on x, dy; returns y, dx.
std::pair<Tensor, Tensor> run(const graft_layer_vtable& vt, void* self, const graft_exec_ctx& ctx,
                              const Tensor& x, const Tensor& dy, int64_t workspace_floats,
                              bool on_gpu) {
  Tensor y(x.shape()), dx(x.shape()), workspace({std::max<int64_t>(workspace_floats, 1)});
  if (!on_gpu) {
    rt::throw_if_failed(vt.forward(self, &ctx, nullptr, x.get(), y.get(), workspace.get()), "cpu");
    Tensor g = dy;
    rt::throw_if_failed(vt.backward(self, &ctx, nullptr, x.get(), y.get(), g.get(), dx.get(),
                                    nullptr, workspace.get()),
                        "cpu");
    return {y, dx};
  }
  Gpu gx(x), gy(y), gdy(dy), gdx(dx), gw(workspace);
  rt::throw_if_failed(vt.forward(self, &ctx, nullptr, &gx.tensor, &gy.tensor, &gw.tensor), "gpu");
  rt::throw_if_failed(vt.backward(self, &ctx, nullptr, &gx.tensor, &gy.tensor, &gdy.tensor,
                                  &gdx.tensor, nullptr, &gw.tensor),
                      "gpu");
  return {gy.host(), gdx.host()};
}

}  // namespace

TEST_CASE("dropout on the GPU draws the CPU's masks, whole and on a part") {
  const rt::PluginRecord& record = graft::test::builtin_registry().get(GRAFT_KIND_LAYER, "dropout");
  REQUIRE((record.entry->flags & GRAFT_ENTRY_HAS_CUDA) != 0);
  const auto& vt = record.vtable<graft_layer_vtable>();
  const rt::BoundOptions bound = graft::test::options(GRAFT_KIND_LAYER, "dropout", "p = 0.3");
  for (int part : {-1, 1}) {  // -1: the whole layer; 1: part 1 of 2
    CAPTURE(part);
    const graft_shape input{1, {64}};
    void* self = nullptr;
    rt::throw_if_failed(vt.create(rt::host_api(), bound.get(), &input, &self), "create");
    if (part >= 0) rt::throw_if_failed(vt.shard(self, GRAFT_SHARD_PART, part, 2), "shard");
    const int64_t features = part >= 0 ? 32 : 64, rows = 40;
    Tensor x({rows, features}), dy({rows, features});
    for (int64_t i = 0; i < x.numel(); ++i) {
      x.f()[i] = graft_random_uniform(6, 1, uint64_t(i)) + 0.5f;
      dy.f()[i] = graft_random_uniform(6, 2, uint64_t(i)) - 0.5f;
    }
    graft_exec_ctx cpu_ctx = graft::test::cpu_ctx();
    cpu_ctx.step = 3;
    cpu_ctx.global_batch = 100;
    cpu_ctx.row_offset = 50;
    cpu_ctx.layer_index = 2;
    graft_exec_ctx gpu_ctx = graft::gpu_test::gpu_context();
    gpu_ctx.step = 3;
    gpu_ctx.global_batch = 100;
    gpu_ctx.row_offset = 50;
    gpu_ctx.layer_index = 2;
    const auto cpu = run(vt, self, cpu_ctx, x, dy, rows * features, false);
    const auto gpu = run(vt, self, gpu_ctx, x, dy, rows * features, true);
    CHECK(graft::checker::same_bits(gpu.first, cpu.first));
    CHECK(graft::checker::same_bits(gpu.second, cpu.second));
    vt.destroy(self);
  }
}

TEST_CASE("flatten on the GPU copies as on the CPU") {
  const rt::PluginRecord& record = graft::test::builtin_registry().get(GRAFT_KIND_LAYER, "flatten");
  REQUIRE((record.entry->flags & GRAFT_ENTRY_HAS_CUDA) != 0);
  const auto& vt = record.vtable<graft_layer_vtable>();
  const rt::BoundOptions bound = graft::test::options(GRAFT_KIND_LAYER, "flatten");
  const graft_shape input{3, {2, 3, 4}};
  void* self = nullptr;
  rt::throw_if_failed(vt.create(rt::host_api(), bound.get(), &input, &self), "create");
  Tensor x({5, 24}), dy({5, 24});
  for (int64_t i = 0; i < x.numel(); ++i) x.f()[i] = float(i), dy.f()[i] = float(-i);
  const auto gpu = run(vt, self, graft::gpu_test::gpu_context(), x, dy, 0, true);
  CHECK(graft::checker::same_bits(gpu.first, x));
  CHECK(graft::checker::same_bits(gpu.second, dy));
  vt.destroy(self);
}

int main(int argc, char** argv) { return graft::gpu_test::run_or_skip(argc, argv); }
