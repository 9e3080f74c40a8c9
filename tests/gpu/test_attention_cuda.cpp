// attention on the GPU against the CPU path: y, dx and every parameter gradient, causal and
// not, with rope, with dropout (both draw attention_math.hpp's masks), T past a tile and not a
// multiple of one.
#define DOCTEST_CONFIG_IMPLEMENT
#include "layer_on_gpu.hpp"

#include <random>

namespace rt = graft::runtime;
using graft::gpu_test::relative_error;

namespace {

const rt::PluginRecord& attention() {
  const rt::PluginRecord& record =
      graft::test::builtin_registry().get(GRAFT_KIND_LAYER, "attention");
  REQUIRE((record.entry->flags & GRAFT_ENTRY_HAS_CUDA) != 0);
  return record;
}

}  // namespace

TEST_CASE("attention on the GPU gives the CPU's outputs and gradients") {
  const char* variants[] = {"heads = 4", "heads = 2\ncausal = false", "heads = 4\nrope = true",
                            "heads = 2\nrope = true\ndropout = 0.2", "heads = 1\nbias = false"};
  for (const char* options : variants)
    for (const int64_t t : {7, 45}) {
      CAPTURE(options);
      CAPTURE(t);
      graft::test::LayerUnderTest cpu(attention(), options, {t, 16}, 5);
      std::mt19937 rng(5);
      cpu.init_parameters(rng);
      std::uniform_real_distribution<float> u(-1.0f, 1.0f);
      for (auto& p : cpu.params)
        for (int64_t i = 0; i < p.numel(); ++i) p.f()[i] += 0.1f * u(rng);  // biases off zero
      for (int64_t i = 0; i < cpu.x.numel(); ++i) cpu.x.f()[i] = u(rng);
      for (int64_t i = 0; i < cpu.dy.numel(); ++i) cpu.dy.f()[i] = u(rng);
      cpu.zero_gradients();
      graft::gpu_test::LayerOnGpu gpu(attention(), options, {t, 16}, cpu);
      graft_exec_ctx cpu_ctx = graft::test::cpu_ctx();
      graft_exec_ctx gpu_ctx = graft::gpu_test::gpu_context();
      cpu_ctx.global_batch = gpu_ctx.global_batch = 5;
      cpu.forward(cpu_ctx);
      cpu.backward(cpu_ctx);
      gpu.forward(gpu_ctx);
      gpu.backward(gpu_ctx);
      CHECK(relative_error(gpu.y.host(), cpu.y) <= 1e-4);
      CHECK(relative_error(gpu.dx.host(), cpu.dx) <= 1e-4);
      for (size_t k = 0; k < gpu.grads.size(); ++k)
        CHECK(relative_error(gpu.grads[k]->host(), cpu.grads[k]) <= 1e-4);
    }
}

int main(int argc, char** argv) { return graft::gpu_test::run_or_skip(argc, argv); }
