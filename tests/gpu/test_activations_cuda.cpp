// Every built-in activation's CUDA forward and backward against its CPU reference (the same
// element math, compiled by nvcc and by g++): relative 1e-5 in float32. Exits 77 (skipped)
// without a GPU; fails when a built-in activation of a CUDA build lacks its kernels.
#define DOCTEST_CONFIG_IMPLEMENT
#include "gpu_support.hpp"

#include "graft/random.h"

namespace rt = graft::runtime;
using graft::gpu_test::Gpu;
using graft::gpu_test::relative_error;
using graft::test::Tensor;

TEST_CASE("activations on the GPU give the CPU's outputs and input gradients") {
  const graft_exec_ctx gpu_ctx = graft::gpu_test::gpu_context();
  const graft_exec_ctx cpu_ctx = graft::test::cpu_ctx();
  for (const char* name : {"relu", "leaky_relu", "sigmoid", "tanh", "gelu", "softmax"}) {
    CAPTURE(name);
    const rt::PluginRecord& record =
        graft::test::builtin_registry().get(GRAFT_KIND_ACTIVATION, name);
    REQUIRE((record.entry->flags & GRAFT_ENTRY_HAS_CUDA) != 0);
    const auto& vt = record.vtable<graft_activation_vtable>();
    const rt::BoundOptions options = graft::test::options(GRAFT_KIND_ACTIVATION, name);
    void* self = nullptr;
    rt::throw_if_failed(vt.create(rt::host_api(), options.get(), &self), name);
    Tensor x({64, 37}), y({64, 37}), dy({64, 37}), dx({64, 37});
    for (int64_t i = 0; i < x.numel(); ++i) {
      x.f()[i] = 6.0f * graft_random_uniform(3, 1, uint64_t(i)) - 3.0f;
      dy.f()[i] = graft_random_uniform(3, 2, uint64_t(i)) - 0.5f;
    }
    Gpu gx(x), gy(y), gdy(dy), gdx(dx);
    rt::throw_if_failed(vt.forward(self, &cpu_ctx, x.get(), y.get()), "cpu forward");
    rt::throw_if_failed(vt.backward(self, &cpu_ctx, x.get(), y.get(), dy.get(), dx.get()),
                        "cpu backward");
    rt::throw_if_failed(vt.forward(self, &gpu_ctx, &gx.tensor, &gy.tensor), "gpu forward");
    rt::throw_if_failed(
        vt.backward(self, &gpu_ctx, &gx.tensor, &gy.tensor, &gdy.tensor, &gdx.tensor),
        "gpu backward");
    CHECK(relative_error(gy.host(), y) <= 1e-5);
    CHECK(relative_error(gdx.host(), dx) <= 1e-5);
    vt.destroy(self);
  }
}

int main(int argc, char** argv) { return graft::gpu_test::run_or_skip(argc, argv); }
