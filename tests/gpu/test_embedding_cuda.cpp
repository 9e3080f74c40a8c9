// embedding on the GPU against the CPU: the lookup and the weight gradient, which gathers each
// row's positions in the CPU's order and so gives its bits (repeated ids, several tiles of ids,
// vectors shorter and longer than a block), and a bad id reported with the CPU's message.
#define DOCTEST_CONFIG_IMPLEMENT
#include "layer_on_gpu.hpp"

#include <random>

namespace rt = graft::runtime;
using graft::checker::same_bits;
using graft::gpu_test::LayerOnGpu;
using graft::gpu_test::upload;
using graft::test::LayerUnderTest;
using graft::test::Tensor;

namespace {

const rt::PluginRecord& embedding() {
  const rt::PluginRecord& record =
      graft::test::builtin_registry().get(GRAFT_KIND_LAYER, "embedding");
  REQUIRE((record.entry->flags & GRAFT_ENTRY_HAS_CUDA) != 0);
  return record;
}

void fill(Tensor& t, std::mt19937& rng, float low, float high) {
  std::uniform_real_distribution<float> u(low, high);
  for (int64_t i = 0; i < t.numel(); ++i) t.f()[i] = u(rng);
}

}  // namespace

TEST_CASE("embedding on the GPU looks up and accumulates as the CPU, bit for bit") {
  const rt::PluginRecord& record = embedding();
  // 40 samples of 7 ids: 280 positions (two tiles of 256) over 50 rows, so rows repeat.
  for (const int64_t dim : {5, 37, 300}) {
    CAPTURE(dim);
    const std::string options = "num_embeddings = 50\nembedding_dim = " + std::to_string(dim);
    LayerUnderTest cpu(record, options, {7}, 40);
    std::mt19937 rng(13);
    fill(cpu.params[0], rng, -1.0f, 1.0f);
    std::uniform_int_distribution<int> id(0, 49);
    for (int64_t i = 0; i < cpu.x.numel(); ++i) cpu.x.f()[i] = float(id(rng));
    cpu.x.f()[3] = 49.0f;  // the last row
    fill(cpu.dy, rng, -1.0f, 1.0f);
    fill(cpu.dx, rng, -1.0f, 1.0f);  // must come back zero
    cpu.zero_gradients();
    fill(cpu.grads[0], rng, -0.5f, 0.5f);  // gradients accumulate
    LayerOnGpu gpu(record, options, {7}, cpu);
    const graft_exec_ctx cpu_ctx = graft::test::cpu_ctx();
    const graft_exec_ctx gpu_ctx = graft::gpu_test::gpu_context();
    for (int step = 0; step < 2; ++step) {
      CAPTURE(step);
      cpu.forward(cpu_ctx);
      gpu.forward(gpu_ctx);
      CHECK(same_bits(gpu.y.host(), cpu.y));
      cpu.backward(cpu_ctx);
      gpu.backward(gpu_ctx);
      CHECK(same_bits(gpu.dx.host(), cpu.dx));
      CHECK(same_bits(gpu.grads[0]->host(), cpu.grads[0]));
    }
  }
}

TEST_CASE("embedding on the GPU reports the first bad id as the CPU does") {
  const rt::PluginRecord& record = embedding();
  const std::string options = "num_embeddings = 50\nembedding_dim = 4";
  LayerUnderTest cpu(record, options, {7}, 40);
  for (int64_t i = 0; i < cpu.x.numel(); ++i) cpu.x.f()[i] = float(i % 50);
  cpu.x.f()[100] = 50.0f;  // outside the table
  cpu.x.f()[30] = 2.5f;    // not an integer, and first: sample 4, position 2
  const char* expected = "embedding: id 2.5 (sample 4, position 2) is not an integer in [0, 50)";
  CHECK_THROWS_WITH_AS(cpu.forward(graft::test::cpu_ctx()), doctest::Contains(expected),
                       rt::UserError);
  LayerOnGpu gpu(record, options, {7}, cpu);
  graft_status* status = gpu.try_forward(graft::gpu_test::gpu_context());
  REQUIRE(status != nullptr);
  const rt::StatusPtr owned = rt::take(status);
  CHECK(owned->code == GRAFT_ERR_INVALID_ARGUMENT);
  CHECK(owned->message.find(expected) != std::string::npos);

  cpu.x.f()[30] = 30.0f;  // only the id past the table is left
  upload(cpu.x, gpu.x);
  status = gpu.try_forward(graft::gpu_test::gpu_context());
  REQUIRE(status != nullptr);
  const rt::StatusPtr second = rt::take(status);
  CHECK(second->message.find("id 50 (sample 14, position 2)") != std::string::npos);
}

int main(int argc, char** argv) { return graft::gpu_test::run_or_skip(argc, argv); }
