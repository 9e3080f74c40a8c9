// linear on the GPU against the CPU: y, dx and the accumulated dW, db, for no activation,
// relu and gelu (which keeps its pre-activation), and with the weight stored transposed (the
// layout a tie to an embedding takes), with cuBLAS's TF32 off: relative 1e-5.
#define DOCTEST_CONFIG_IMPLEMENT
#include "layer_on_gpu.hpp"

#include <random>

namespace rt = graft::runtime;
using graft::gpu_test::relative_error;

TEST_CASE("linear on the GPU gives the CPU's outputs and gradients") {
  const rt::PluginRecord& record = graft::test::builtin_registry().get(GRAFT_KIND_LAYER, "linear");
  REQUIRE((record.entry->flags & GRAFT_ENTRY_HAS_CUDA) != 0);
  for (const char* activation : {"none", "relu", "gelu", "transposed"}) {
    CAPTURE(activation);
    const std::string options =
        std::string(activation) == "transposed"
            ? std::string("units = 48\ntranspose_weight = true")
            : std::string("units = 48\nactivation = \"") + activation + "\"";
    graft::test::LayerUnderTest cpu(record, options, {33}, 20);
    std::mt19937 rng(5);
    cpu.init_parameters(rng);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (int64_t i = 0; i < cpu.x.numel(); ++i) cpu.x.f()[i] = u(rng);
    for (int64_t i = 0; i < cpu.dy.numel(); ++i) cpu.dy.f()[i] = u(rng);
    cpu.zero_gradients();
    // The device copies first: the CPU backward may write dz over dy.
    graft::gpu_test::LayerOnGpu gpu(record, options, {33}, cpu);
    const graft_exec_ctx cpu_ctx = graft::test::cpu_ctx();
    cpu.forward(cpu_ctx);
    cpu.backward(cpu_ctx);
    const graft_exec_ctx gpu_ctx = graft::gpu_test::gpu_context();
    gpu.forward(gpu_ctx);
    gpu.backward(gpu_ctx);
    CHECK(relative_error(gpu.y.host(), cpu.y) <= 1e-5);
    CHECK(relative_error(gpu.dx.host(), cpu.dx) <= 1e-5);
    for (size_t k = 0; k < gpu.grads.size(); ++k)
      CHECK(relative_error(gpu.grads[k]->host(), cpu.grads[k]) <= 1e-5);
  }
}

int main(int argc, char** argv) { return graft::gpu_test::run_or_skip(argc, argv); }
