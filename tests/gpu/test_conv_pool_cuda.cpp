// conv2d, max_pool2d and avg_pool2d on the GPU against the CPU, over stride, padding,
// dilation, groups, odd sizes and batches: y, dx and the accumulated dW, db (TF32 off: 1e-5).
#define DOCTEST_CONFIG_IMPLEMENT
#include "layer_on_gpu.hpp"

#include <random>
#include <string>
#include <vector>

namespace rt = graft::runtime;
using graft::gpu_test::relative_error;
using graft::test::Tensor;

namespace {

struct Case {
  std::string options;
  std::vector<int64_t> input;  // (C, H, W)
  int64_t batch;
};

// Runs forward and then backward twice (grads add up; the GPU's backward rebuilds what its
// first one overwrote) on the CPU and on the GPU from the same x, dy and parameters, and
// compares. `levels` > 0 draws x from that many integers, so that windows hold ties.
void compare_with_cpu(const char* layer, const Case& c, int levels = 0) {
  CAPTURE(layer);
  CAPTURE(c.options);
  CAPTURE(c.batch);
  const rt::PluginRecord& record = graft::test::builtin_registry().get(GRAFT_KIND_LAYER, layer);
  REQUIRE((record.entry->flags & GRAFT_ENTRY_HAS_CUDA) != 0);
  graft::test::LayerUnderTest cpu(record, c.options, c.input, c.batch);
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  // Every parameter random, biases included (they start as zeros).
  for (Tensor& p : cpu.params)
    for (int64_t i = 0; i < p.numel(); ++i) p.f()[i] = 0.5f * u(rng);
  std::uniform_int_distribution<int> level(0, levels > 0 ? levels - 1 : 0);
  for (int64_t i = 0; i < cpu.x.numel(); ++i)
    cpu.x.f()[i] = levels > 0 ? float(level(rng)) : u(rng);
  for (int64_t i = 0; i < cpu.dy.numel(); ++i) cpu.dy.f()[i] = u(rng);
  cpu.zero_gradients();
  // The workspace starts as the CPU's does, NaN: nothing may be read before it is written.
  graft::gpu_test::LayerOnGpu gpu(record, c.options, c.input, cpu);
  const graft_exec_ctx cpu_ctx = graft::test::cpu_ctx();
  cpu.forward(cpu_ctx);
  cpu.backward(cpu_ctx);
  cpu.backward(cpu_ctx);
  const graft_exec_ctx gpu_ctx = graft::gpu_test::gpu_context();
  gpu.forward(gpu_ctx);
  gpu.backward(gpu_ctx);
  gpu.backward(gpu_ctx);
  CHECK(relative_error(gpu.y.host(), cpu.y) <= 1e-5);
  CHECK(relative_error(gpu.dx.host(), cpu.dx) <= 1e-5);
  for (size_t k = 0; k < gpu.grads.size(); ++k) {
    CAPTURE(k);
    CHECK(relative_error(gpu.grads[k]->host(), cpu.grads[k]) <= 1e-5);
  }
  // max_pool2d's workspace is the winners, which must be the CPU's exactly (tie rule).
  if (std::string(layer) == "max_pool2d")
    CHECK(graft::checker::same_bits(gpu.workspace.host(), cpu.workspace));
}

}  // namespace

TEST_CASE("conv2d on the GPU gives the CPU's outputs and gradients") {
  const Case cases[] = {
      // Odd sizes, padding; auto picks im2col (3 channels).
      {"out_channels = 5\npadding = 1", {3, 9, 11}, 4},
      // auto picks Winograd on the CPU (8 channels a group); the GPU always takes im2col.
      {"out_channels = 16\npadding = 1\nactivation = \"relu\"", {8, 12, 12}, 3},
      {"out_channels = 8\ngroups = 2\nactivation = \"leaky_relu\"\nslope = 0.1", {16, 7, 9}, 7},
      // Stride and groups; gelu keeps its pre-activation in the workspace.
      {"out_channels = 6\nkernel_size = 5\nstride = 2\npadding = 2\ngroups = 2\n"
       "activation = \"gelu\"",
       {4, 13, 10},
       5},
      // Dilation, stride larger than the kernel's step, no bias.
      {"out_channels = 9\nstride = 3\ndilation = 2\ngroups = 3\nbias = false\n"
       "activation = \"tanh\"",
       {6, 15, 15},
       2},
      {"out_channels = 4\nkernel_size = 4\nstride = 2\npadding = 3\ndilation = 3\n"
       "activation = \"sigmoid\"",
       {2, 11, 8},
       3},
      // One sample; a 1x1 kernel at stride 2.
      {"out_channels = 8\nkernel_size = 5", {1, 28, 28}, 1},
      {"out_channels = 7\nkernel_size = 1\nstride = 2", {5, 9, 6}, 6},
      // More samples than a block's threads in the bias gradient.
      {"out_channels = 3\nkernel_size = 2", {2, 3, 3}, 300},
  };
  for (const Case& c : cases) compare_with_cpu("conv2d", c);
}

TEST_CASE("max_pool2d on the GPU gives the CPU's outputs, winners and gradients") {
  const Case cases[] = {
      {"", {3, 8, 8}, 4},  // the CPU's 2x2 path
      {"", {2, 9, 7}, 3},  // odd sizes drop the last row and column
      {"kernel_size = 3\nstride = 2\npadding = 1", {2, 9, 7}, 3},  // overlapping windows
      {"kernel_size = 3\nstride = 1\npadding = 1", {4, 10, 11}, 2},
      {"kernel_size = 4\nstride = 3\npadding = 2", {3, 13, 12}, 5},
      {"kernel_size = 5\nstride = 2", {1, 16, 9}, 1},
  };
  // Few levels: windows hold ties, so the first of equal values must win on both.
  for (const Case& c : cases) {
    compare_with_cpu("max_pool2d", c, 3);
    compare_with_cpu("max_pool2d", c);
  }
}

TEST_CASE("avg_pool2d on the GPU gives the CPU's outputs and gradients") {
  const Case cases[] = {
      {"", {3, 8, 8}, 4},
      {"kernel_size = 3\nstride = 2\npadding = 1", {2, 9, 7}, 3},
      {"kernel_size = 3\nstride = 2\npadding = 1\ncount_include_pad = false", {2, 9, 7}, 3},
      {"kernel_size = 4\nstride = 1\npadding = 2\ncount_include_pad = false", {3, 10, 13}, 2},
      {"kernel_size = 5\nstride = 3\npadding = 2", {1, 17, 11}, 1},
  };
  for (const Case& c : cases) compare_with_cpu("avg_pool2d", c);
}

int main(int argc, char** argv) { return graft::gpu_test::run_or_skip(argc, argv); }
