// cross_entropy on the GPU against the CPU: the loss sum and the hits of a batch (with label
// smoothing), the gradient, and a label outside the classes reported as the CPU reports it.
#define DOCTEST_CONFIG_IMPLEMENT
#include "gpu_support.hpp"

#include "graft/random.h"

namespace rt = graft::runtime;
using graft::gpu_test::Gpu;
using graft::gpu_test::relative_error;
using graft::test::Tensor;

TEST_CASE("cross_entropy on the GPU gives the CPU's sums and gradients") {
  const rt::PluginRecord& record =
      graft::test::builtin_registry().get(GRAFT_KIND_LOSS, "cross_entropy");
  REQUIRE((record.entry->flags & GRAFT_ENTRY_HAS_CUDA) != 0);
  const auto& vt = record.vtable<graft_loss_vtable>();
  const rt::BoundOptions bound =
      graft::test::options(GRAFT_KIND_LOSS, "cross_entropy", "label_smoothing = 0.1");
  const int64_t n = 300, c = 10;
  const graft_shape prediction_shape{1, {c}};
  graft_target_info target{};
  target.struct_size = sizeof target;
  target.dtype = DLDataType{kDLInt, 32, 1};
  target.shape = graft_shape{0, {}};
  target.classes = c;
  void* self = nullptr;
  rt::throw_if_failed(vt.create(rt::host_api(), bound.get(), &prediction_shape, &target, &self),
                      "create");
  Tensor z({n, c}), labels({n}, DLDataType{kDLInt, 32, 1}), dz({n, c});
  for (int64_t i = 0; i < z.numel(); ++i) z.f()[i] = 4.0f * graft_random_uniform(4, 1, uint64_t(i)) - 2.0f;
  for (int64_t i = 0; i < n; ++i) labels.i()[i] = int32_t(i % c);
  Gpu gz(z), glabels(labels), gdz(dz);
  const graft_exec_ctx cpu_ctx = graft::test::cpu_ctx();
  const graft_exec_ctx gpu_ctx = graft::gpu_test::gpu_context();
  double cpu_loss = 0, gpu_loss = 0, cpu_hits = 0, gpu_hits = 0;
  rt::throw_if_failed(vt.forward(self, &cpu_ctx, z.get(), labels.get(), &cpu_loss, &cpu_hits), "cpu");
  rt::throw_if_failed(vt.forward(self, &gpu_ctx, &gz.tensor, &glabels.tensor, &gpu_loss, &gpu_hits),
                      "gpu");
  CHECK(gpu_loss == doctest::Approx(cpu_loss).epsilon(1e-6));
  CHECK(gpu_hits == cpu_hits);
  rt::throw_if_failed(vt.backward(self, &cpu_ctx, z.get(), labels.get(), 0.5f, dz.get()), "cpu");
  rt::throw_if_failed(vt.backward(self, &gpu_ctx, &gz.tensor, &glabels.tensor, 0.5f, &gdz.tensor),
                      "gpu");
  CHECK(relative_error(gdz.host(), dz) <= 1e-5);

  labels.i()[7] = int32_t(c);  // outside 0..c-1
  Gpu bad(labels);
  graft_status* status = vt.forward(self, &gpu_ctx, &gz.tensor, &bad.tensor, &gpu_loss, &gpu_hits);
  REQUIRE(status != nullptr);
  const rt::StatusPtr owned = rt::take(status);
  CHECK(owned->code == GRAFT_ERR_CORRUPT_DATA);
  CHECK(owned->message.find("row 7 has label 10, outside the classes 0..9") != std::string::npos);
  vt.destroy(self);
}

int main(int argc, char** argv) { return graft::gpu_test::run_or_skip(argc, argv); }
