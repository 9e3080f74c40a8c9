// The CUDA device's primitives against the CPU's, through the host API as plugins call them:
// gemm with every transpose (TF32 off: relative 1e-5), axpby, fill, sum_rows and dot (same
// order as the CPU: equal within float rounding), the counter-based fills (the same formula,
// compiled twice: relative 1e-6), copies both ways, and the caching allocator (a second round
// of the same sizes calls cudaMalloc no more). Exits 77 (skipped) without a GPU.
#define DOCTEST_CONFIG_IMPLEMENT
#include "gpu_support.hpp"

#include "graft/random.h"

namespace rt = graft::runtime;
using graft::test::Tensor;
using DeviceTensor = graft::gpu_test::Gpu;

namespace {

Tensor random(std::vector<int64_t> shape, uint64_t stream) {
  Tensor t(std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i)
    t.f()[i] = graft_random_uniform(7, stream, uint64_t(i)) * 2.0f - 1.0f;
  return t;
}

void check_close(const Tensor& gpu, const Tensor& cpu, double relative) {
  REQUIRE(gpu.numel() == cpu.numel());
  CHECK(graft::gpu_test::relative_error(gpu, cpu) <= relative);
}

}  // namespace

TEST_CASE("gemm on the GPU equals OpenBLAS's for every transpose, TF32 off") {
  const graft_host_api* api = rt::host_api();
  const graft_exec_ctx ctx = graft::test::cpu_ctx();
  for (int ta : {0, 1})
    for (int tb : {0, 1}) {
      CAPTURE(ta);
      CAPTURE(tb);
      const int64_t m = 67, n = 129, k = 255;
      Tensor a = random(ta ? std::vector<int64_t>{k, m} : std::vector<int64_t>{m, k}, 1);
      Tensor b = random(tb ? std::vector<int64_t>{n, k} : std::vector<int64_t>{k, n}, 2);
      Tensor c = random({m, n}, 3), expected = c;
      rt::throw_if_failed(api->gemm(&ctx, ta, tb, 0.5f, a.get(), b.get(), 0.25f, expected.get()),
                          "cpu gemm");
      DeviceTensor da(a), db(b), dc(c);
      rt::throw_if_failed(api->gemm(&ctx, ta, tb, 0.5f, &da.tensor, &db.tensor, 0.25f, &dc.tensor),
                          "gpu gemm");
      check_close(dc.host(), expected, 1e-5);
    }
}

TEST_CASE("axpby, fill, sum_rows and dot on the GPU match the CPU") {
  const graft_host_api* api = rt::host_api();
  const graft_exec_ctx ctx = graft::test::cpu_ctx();
  Tensor x = random({300, 70}, 4), y = random({300, 70}, 5), expected = y;
  DeviceTensor dx(x), dy(y);
  rt::throw_if_failed(api->axpby(&ctx, 1.5f, x.get(), -0.5f, expected.get()), "cpu axpby");
  rt::throw_if_failed(api->axpby(&ctx, 1.5f, &dx.tensor, -0.5f, &dy.tensor), "gpu axpby");
  check_close(dy.host(), expected, 1e-7);

  Tensor bias = random({70}, 6), bias_expected = bias;
  DeviceTensor dbias(bias);
  rt::throw_if_failed(api->sum_rows(&ctx, x.get(), 1.0f, bias_expected.get()), "cpu sum_rows");
  rt::throw_if_failed(api->sum_rows(&ctx, &dx.tensor, 1.0f, &dbias.tensor), "gpu sum_rows");
  check_close(dbias.host(), bias_expected, 1e-6);

  double gpu_dot = 0, cpu_sq = 0;
  rt::throw_if_failed(api->dot(&ctx, &dx.tensor, &dx.tensor, &gpu_dot), "gpu dot");
  rt::throw_if_failed(api->dot(&ctx, x.get(), x.get(), &cpu_sq), "cpu dot");
  CHECK(gpu_dot == doctest::Approx(cpu_sq).epsilon(1e-12));

  rt::throw_if_failed(api->fill(&ctx, &dy.tensor, 3.25f), "gpu fill");
  const Tensor filled = dy.host();
  for (int64_t i = 0; i < filled.numel(); ++i) REQUIRE(filled.f()[i] == 3.25f);
}

TEST_CASE("initialisers draw the CPU's numbers on the GPU") {
  const graft_host_api* api = rt::host_api();
  const graft_exec_ctx ctx = graft::test::cpu_ctx();
  Tensor u({10007}), n({10007});
  DeviceTensor du(u), dn(n);
  rt::throw_if_failed(api->fill_uniform(&ctx, u.get(), 42, 3, 1000, -0.1f, 0.1f), "cpu");
  rt::throw_if_failed(api->fill_uniform(&ctx, &du.tensor, 42, 3, 1000, -0.1f, 0.1f), "gpu");
  check_close(du.host(), u, 1e-6);
  rt::throw_if_failed(api->fill_normal(&ctx, n.get(), 42, 3, 1000, 0.0f, 0.02f), "cpu");
  rt::throw_if_failed(api->fill_normal(&ctx, &dn.tensor, 42, 3, 1000, 0.0f, 0.02f), "gpu");
  check_close(dn.host(), n, 1e-5);  // logf and cosf may differ in the last bits on the GPU
}

TEST_CASE("the caching allocator serves a second round of the same sizes without cudaMalloc") {
  rt::cuda::Device* gpu = rt::cuda_device();
  REQUIRE(gpu);
  const graft_host_api* api = rt::host_api();
  auto round = [&] {
    std::vector<void*> blocks;
    for (size_t bytes : {size_t(1000), size_t(1) << 20, size_t(3) << 20, size_t(4096)})
      blocks.push_back(api->alloc(DLDevice{kDLCUDA, 0}, bytes));
    for (void* p : blocks) {
      REQUIRE(p);
      api->free(DLDevice{kDLCUDA, 0}, p);
    }
  };
  round();
  const size_t mallocs = gpu->device_mallocs();
  round();
  round();
  CHECK(gpu->device_mallocs() == mallocs);
  CHECK(gpu->cached_bytes() >= (size_t(4) << 20));
}

int main(int argc, char** argv) { return graft::gpu_test::run_or_skip(argc, argv); }
