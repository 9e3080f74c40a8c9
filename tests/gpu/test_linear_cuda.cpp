// linear on the GPU against the CPU: y, dx and the accumulated dW, db, for no activation,
// relu and gelu (which keeps its pre-activation), with cuBLAS's TF32 off: relative 1e-5.
#define DOCTEST_CONFIG_IMPLEMENT
#include "gpu_support.hpp"

#include <random>

#include "gradient_check.hpp"

namespace rt = graft::runtime;
using graft::gpu_test::Gpu;
using graft::gpu_test::relative_error;

TEST_CASE("linear on the GPU gives the CPU's outputs and gradients") {
  const rt::PluginRecord& record = graft::test::builtin_registry().get(GRAFT_KIND_LAYER, "linear");
  REQUIRE((record.entry->flags & GRAFT_ENTRY_HAS_CUDA) != 0);
  const auto& vt = record.vtable<graft_layer_vtable>();
  for (const char* activation : {"none", "relu", "gelu"}) {
    CAPTURE(activation);
    const std::string options = std::string("units = 48\nactivation = \"") + activation + "\"";
    graft::test::LayerUnderTest cpu(record, options, {33}, 20);
    std::mt19937 rng(5);
    cpu.init_parameters(rng);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (int64_t i = 0; i < cpu.x.numel(); ++i) cpu.x.f()[i] = u(rng);
    for (int64_t i = 0; i < cpu.dy.numel(); ++i) cpu.dy.f()[i] = u(rng);
    cpu.zero_gradients();
    // The device copies first: the CPU backward may write dz over dy.
    Gpu x(cpu.x), y(cpu.y), dy(cpu.dy), dx(cpu.dx), workspace(cpu.workspace);
    std::vector<std::unique_ptr<Gpu>> params, grads;
    std::vector<const DLTensor*> param_ptrs;
    std::vector<DLTensor*> grad_ptrs;
    for (size_t k = 0; k < cpu.params.size(); ++k) {
      params.push_back(std::make_unique<Gpu>(cpu.params[k]));
      grads.push_back(std::make_unique<Gpu>(cpu.grads[k]));
      param_ptrs.push_back(&params.back()->tensor);
      grad_ptrs.push_back(&grads.back()->tensor);
    }
    const graft_exec_ctx cpu_ctx = graft::test::cpu_ctx();
    cpu.forward(cpu_ctx);
    cpu.backward(cpu_ctx);

    const rt::BoundOptions bound = graft::test::options(GRAFT_KIND_LAYER, "linear", options);
    const graft_shape input{1, {33}};
    void* self = nullptr;
    rt::throw_if_failed(vt.create(rt::host_api(), bound.get(), &input, &self), "create");
    graft_layer_desc desc{};
    desc.struct_size = sizeof desc;
    rt::throw_if_failed(vt.describe(self, &desc), "describe");
    const graft_exec_ctx gpu_ctx = graft::gpu_test::gpu_context();
    rt::throw_if_failed(vt.forward(self, &gpu_ctx, param_ptrs.data(), &x.tensor, &y.tensor,
                                   &workspace.tensor),
                        "gpu forward");
    rt::throw_if_failed(vt.backward(self, &gpu_ctx, param_ptrs.data(), &x.tensor, &y.tensor,
                                    &dy.tensor, &dx.tensor, grad_ptrs.data(), &workspace.tensor),
                        "gpu backward");
    CHECK(relative_error(y.host(), cpu.y) <= 1e-5);
    CHECK(relative_error(dx.host(), cpu.dx) <= 1e-5);
    for (size_t k = 0; k < grads.size(); ++k) CHECK(relative_error(grads[k]->host(), cpu.grads[k]) <= 1e-5);
    vt.destroy(self);
  }
}

int main(int argc, char** argv) { return graft::gpu_test::run_or_skip(argc, argv); }
