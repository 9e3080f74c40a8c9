// Shared by the GPU tests: device copies of CPU tensors, the comparison, and a main that
// starts the device or exits 77 (skipped) with the reason.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "device/cuda_loader.hpp"
#include "test_support.hpp"
#include "util/errors.hpp"

namespace graft::gpu_test {

using graft::test::Tensor;

// A tensor in GPU memory with the shape and contents of a CPU one.
struct Gpu {
  explicit Gpu(const Tensor& host) : shape(host.shape()) {
    tensor.data =
        runtime::host_api()->alloc(DLDevice{kDLCUDA, 0}, std::max<size_t>(host.bytes(), 4));
    REQUIRE(tensor.data);
    tensor.device = DLDevice{kDLCUDA, 0};
    tensor.ndim = int32_t(shape.size());
    tensor.dtype = host.get()->dtype;
    tensor.shape = shape.data();
    runtime::throw_if_failed(runtime::host_api()->copy(nullptr, host.get(), &tensor), "to device");
  }
  ~Gpu() { runtime::host_api()->free(DLDevice{kDLCUDA, 0}, tensor.data); }
  Gpu(const Gpu&) = delete;
  Gpu& operator=(const Gpu&) = delete;
  Tensor host() const {
    Tensor out(shape, tensor.dtype);
    runtime::throw_if_failed(runtime::host_api()->copy(nullptr, &tensor, out.get()), "to host");
    return out;
  }
  std::vector<int64_t> shape;
  DLTensor tensor{};
};

// Largest absolute difference over the largest magnitude of `want`.
inline double relative_error(const Tensor& got, const Tensor& want) {
  double worst = 0, scale = 1e-30;
  for (int64_t i = 0; i < want.numel(); ++i) {
    worst = std::max(worst, std::fabs(double(got.f()[i]) - want.f()[i]));
    scale = std::max(scale, std::fabs(double(want.f()[i])));
  }
  return worst / scale;
}

// A tensor of n values value(r, i): rank r's contribution in the communicator tests.
inline Tensor filled(int64_t n, float (*value)(int r, int64_t i), int r) {
  Tensor t({n});
  for (int64_t i = 0; i < n; ++i) t.f()[i] = value(r, i);
  return t;
}

// Every element equal, bit for bit.
inline void check_equal(const Tensor& got, const Tensor& want) {
  REQUIRE(got.numel() == want.numel());
  int64_t wrong = 0;
  for (int64_t i = 0; i < want.numel(); ++i) wrong += got.f()[i] != want.f()[i];
  CHECK(wrong == 0);
}

// The CPU test context, pointed at the GPU and its stream.
inline graft_exec_ctx gpu_context(bool training = true) {
  graft_exec_ctx ctx = graft::test::cpu_ctx(training);
  ctx.device = DLDevice{kDLCUDA, 0};
  ctx.stream = runtime::cuda_device()->stream();
  return ctx;
}

inline int run_or_skip(int argc, char** argv) {
  try {
    const runtime::cuda::Device& gpu = runtime::start_cuda(runtime::cuda::Options{});
    std::printf("GPU: %s\n", gpu.describe().c_str());
  } catch (const runtime::UserError& e) {
    std::printf("skipped: %s\n", e.what());
    return 77;
  }
  doctest::Context context(argc, argv);
  return context.run();
}

}  // namespace graft::gpu_test
