// batch_norm and layer_norm on the GPU against the CPU: y, dx and the accumulated parameter
// gradients over a few training steps (batch_norm's running statistics after each), then in
// evaluation, with and without affine parameters: relative 1e-5.
#define DOCTEST_CONFIG_IMPLEMENT
#include "layer_on_gpu.hpp"

#include <random>

namespace rt = graft::runtime;
using graft::gpu_test::LayerOnGpu;
using graft::gpu_test::relative_error;
using graft::gpu_test::upload;
using graft::test::LayerUnderTest;
using graft::test::Tensor;

namespace {

const rt::PluginRecord& layer(const char* name) {
  const rt::PluginRecord& record = graft::test::builtin_registry().get(GRAFT_KIND_LAYER, name);
  REQUIRE((record.entry->flags & GRAFT_ENTRY_HAS_CUDA) != 0);
  return record;
}

void fill(Tensor& t, std::mt19937& rng, float low, float high) {
  std::uniform_real_distribution<float> u(low, high);
  for (int64_t i = 0; i < t.numel(); ++i) t.f()[i] = u(rng);
}

// Every output, input gradient, parameter and parameter gradient of the two layers.
void compare(LayerOnGpu& gpu, const LayerUnderTest& cpu, bool with_dx = true) {
  CHECK(relative_error(gpu.y.host(), cpu.y) <= 1e-5);
  if (with_dx) CHECK(relative_error(gpu.dx.host(), cpu.dx) <= 1e-5);
  for (size_t k = 0; k < cpu.params.size(); ++k) {
    CAPTURE(k);
    CHECK(relative_error(gpu.params[k]->host(), cpu.params[k]) <= 1e-5);
    CHECK(relative_error(gpu.grads[k]->host(), cpu.grads[k]) <= 1e-5);
  }
}

}  // namespace

TEST_CASE("batch_norm on the GPU: training steps, running statistics, evaluation") {
  const rt::PluginRecord& record = layer("batch_norm");
  // (C, H, W) with 12 values per channel and sample, and a flat (D,) where C = D; 300 channels
  // of 9 samples leave most threads of a channel's block idle, 2 x 150 fills several strides.
  const std::vector<std::vector<int64_t>> shapes{{4, 3, 4}, {300}, {2, 150}};
  for (const std::vector<int64_t>& shape : shapes)
    for (const bool affine : {true, false}) {
      CAPTURE(shape.size());
      CAPTURE(shape[0]);
      CAPTURE(affine);
      const std::string options = affine ? "momentum = 0.3" : "affine = false";
      LayerUnderTest cpu(record, options, shape, 9);
      std::mt19937 rng(11);
      if (affine) {
        fill(cpu.params[0], rng, 0.5f, 1.5f);
        fill(cpu.params[1], rng, -0.5f, 0.5f);
      }
      cpu.zero_gradients();
      LayerOnGpu gpu(record, options, shape, cpu);
      const graft_exec_ctx cpu_train = graft::test::cpu_ctx();
      const graft_exec_ctx cpu_eval = graft::test::cpu_ctx(false);
      const graft_exec_ctx gpu_train = graft::gpu_test::gpu_context();
      const graft_exec_ctx gpu_eval = graft::gpu_test::gpu_context(false);
      for (int step = 0; step < 3; ++step) {
        CAPTURE(step);
        fill(cpu.x, rng, -1.0f, 3.0f);  // a mean away from 0
        fill(cpu.dy, rng, -1.0f, 1.0f);
        upload(cpu.x, gpu.x);
        upload(cpu.dy, gpu.dy);
        cpu.forward(cpu_train);
        gpu.forward(gpu_train);
        cpu.backward(cpu_train);
        gpu.backward(gpu_train);
        compare(gpu, cpu);
      }
      // Without dx only the parameter gradients move.
      cpu.backward(cpu_train, false);
      gpu.backward(gpu_train, false);
      compare(gpu, cpu, false);

      fill(cpu.x, rng, -1.0f, 3.0f);
      upload(cpu.x, gpu.x);
      cpu.forward(cpu_eval);
      gpu.forward(gpu_eval);
      cpu.backward(cpu_eval);
      gpu.backward(gpu_eval);
      compare(gpu, cpu);
    }
}

TEST_CASE("layer_norm on the GPU gives the CPU's outputs, statistics and gradients") {
  const rt::PluginRecord& record = layer("layer_norm");
  struct Case {
    std::vector<int64_t> shape;
    const char* options;
  };
  // Rows of 6 (4 per sample), of 300 (longer than a block), of 35 (two axes) without affine.
  const Case cases[] = {{{4, 6}, "normalized_dims = 1"},
                        {{300}, "eps = 1e-3"},
                        {{3, 5, 7}, "normalized_dims = 2\nelementwise_affine = false"}};
  for (const Case& c : cases) {
    CAPTURE(c.options);
    LayerUnderTest cpu(record, c.options, c.shape, 5);
    std::mt19937 rng(12);
    for (Tensor& p : cpu.params) fill(p, rng, -1.5f, 1.5f);
    fill(cpu.x, rng, -1.0f, 3.0f);
    fill(cpu.dy, rng, -1.0f, 1.0f);
    cpu.zero_gradients();
    for (Tensor& g : cpu.grads) fill(g, rng, -0.5f, 0.5f);  // gradients accumulate
    LayerOnGpu gpu(record, c.options, c.shape, cpu);
    const graft_exec_ctx cpu_ctx = graft::test::cpu_ctx();
    const graft_exec_ctx gpu_ctx = graft::gpu_test::gpu_context();
    cpu.forward(cpu_ctx);
    gpu.forward(gpu_ctx);
    CHECK(relative_error(gpu.workspace.host(), cpu.workspace) <= 1e-5);  // means, inverse stds
    cpu.backward(cpu_ctx);
    gpu.backward(gpu_ctx);
    compare(gpu, cpu);
    cpu.backward(cpu_ctx, false);
    gpu.backward(gpu_ctx, false);
    compare(gpu, cpu, false);
  }
}

int main(int argc, char** argv) { return graft::gpu_test::run_or_skip(argc, argv); }
