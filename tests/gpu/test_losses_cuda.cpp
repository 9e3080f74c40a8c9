// The losses on the GPU against the CPU. cross_entropy: the loss sum and the hits of a batch
// (with label smoothing), the gradient, and a label outside the classes reported as the CPU
// reports it. mse, mae, bce_with_logits: the loss sum (and bce's accuracy) from per-row sums,
// and the gradient, for rows shorter and longer than a block.
#define DOCTEST_CONFIG_IMPLEMENT
#include "gpu_support.hpp"

#include "gradient_check.hpp"
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
  for (int64_t i = 0; i < z.numel(); ++i)
    z.f()[i] = 4.0f * graft_random_uniform(4, 1, uint64_t(i)) - 2.0f;
  for (int64_t i = 0; i < n; ++i) labels.i()[i] = int32_t(i % c);
  Gpu gz(z), glabels(labels), gdz(dz);
  const graft_exec_ctx cpu_ctx = graft::test::cpu_ctx();
  const graft_exec_ctx gpu_ctx = graft::gpu_test::gpu_context();
  double cpu_loss = 0, gpu_loss = 0, cpu_hits = 0, gpu_hits = 0;
  rt::throw_if_failed(vt.forward(self, &cpu_ctx, z.get(), labels.get(), &cpu_loss, &cpu_hits),
                      "cpu");
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

TEST_CASE("mse, mae and bce_with_logits on the GPU give the CPU's sums and gradients") {
  for (const char* name : {"mse", "mae", "bce_with_logits"})
    for (const int64_t e : {1, 7, 300}) {
      CAPTURE(name);
      CAPTURE(e);
      const rt::PluginRecord& record = graft::test::builtin_registry().get(GRAFT_KIND_LOSS, name);
      REQUIRE((record.entry->flags & GRAFT_ENTRY_HAS_CUDA) != 0);
      const bool bce = std::string(name) == "bce_with_logits";
      graft::test::LossUnderTest cpu(record, "", {e}, graft::test::float_targets({e}), 70);
      float* p = cpu.prediction.f();
      for (int64_t i = 0; i < cpu.prediction.numel(); ++i) {
        p[i] = 6.0f * graft_random_uniform(5, 1, uint64_t(i)) - 3.0f;
        const float u = graft_random_uniform(5, 2, uint64_t(i));
        // bce: targets in [0, 1], a third of them exactly 0 or 1; mae: every fifth target equal
        // to its prediction, where the gradient is 0.
        cpu.target.f()[i] =
            bce ? (i % 3 == 0 ? float(i % 2) : u) : (i % 5 == 0 ? p[i] : 4.0f * u - 2.0f);
      }
      Gpu prediction(cpu.prediction), target(cpu.target), dprediction(cpu.dprediction);
      const graft_exec_ctx gpu_ctx = graft::gpu_test::gpu_context();
      const double cpu_loss = cpu.forward(graft::test::cpu_ctx());
      const auto& vt = record.vtable<graft_loss_vtable>();
      const rt::BoundOptions bound = graft::test::options(GRAFT_KIND_LOSS, name);
      const graft_shape prediction_shape{1, {e}};
      const graft_target_info target_info = graft::test::float_targets({e});
      void* self = nullptr;
      rt::throw_if_failed(
          vt.create(rt::host_api(), bound.get(), &prediction_shape, &target_info, &self), "create");
      double gpu_loss = 0, gpu_accuracy = -1;
      rt::throw_if_failed(vt.forward(self, &gpu_ctx, &prediction.tensor, &target.tensor, &gpu_loss,
                                     bce ? &gpu_accuracy : nullptr),
                          "gpu");
      CHECK(gpu_loss == doctest::Approx(cpu_loss).epsilon(1e-6));
      if (bce) CHECK(gpu_accuracy == cpu.metrics.at(0));
      cpu.backward(graft::test::cpu_ctx(), 0.25f);
      rt::throw_if_failed(vt.backward(self, &gpu_ctx, &prediction.tensor, &target.tensor, 0.25f,
                                      &dprediction.tensor),
                          "gpu");
      CHECK(relative_error(dprediction.host(), cpu.dprediction) <= 1e-5);
      vt.destroy(self);
    }
}

int main(int argc, char** argv) { return graft::gpu_test::run_or_skip(argc, argv); }
