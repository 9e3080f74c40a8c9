// Every built-in optimizer on the GPU against the CPU: three steps on the same parameter,
// gradients and zero states, each configuration's flags (momentum, Nesterov, weight decay,
// AMSGrad, centered), then the parameters and every state compared: relative 1e-6 (the same
// update_math.hpp functions; sqrtf and division are correctly rounded on both).
#define DOCTEST_CONFIG_IMPLEMENT
#include "gpu_support.hpp"

#include "graft/random.h"

namespace rt = graft::runtime;
using graft::gpu_test::Gpu;
using graft::gpu_test::relative_error;
using graft::test::Tensor;

TEST_CASE("optimizers on the GPU take the CPU's steps") {
  const std::pair<const char*, const char*> cases[] = {
      {"sgd", ""},
      {"sgd", "momentum = 0.9\nweight_decay = 0.01"},
      {"sgd", "momentum = 0.9\nnesterov = true"},
      {"adam", "weight_decay = 0.01"},
      {"adam", "amsgrad = true"},
      {"adamw", ""},
      {"rmsprop", "momentum = 0.5\ncentered = true\nweight_decay = 0.01"},
  };
  const graft_exec_ctx cpu_ctx = graft::test::cpu_ctx();
  const graft_exec_ctx gpu_ctx = graft::gpu_test::gpu_context();
  for (const auto& c : cases) {
    const auto& name = c.first;  // not a structured binding: clang 14's CAPTURE rejects those
    const auto& options = c.second;
    CAPTURE(name);
    CAPTURE(options);
    const rt::PluginRecord& record =
        graft::test::builtin_registry().get(GRAFT_KIND_OPTIMIZER, name);
    REQUIRE((record.entry->flags & GRAFT_ENTRY_HAS_CUDA) != 0);
    const auto& vt = record.vtable<graft_optimizer_vtable>();
    const rt::BoundOptions bound = graft::test::options(GRAFT_KIND_OPTIMIZER, name, options);
    void* self = nullptr;
    rt::throw_if_failed(vt.create(rt::host_api(), bound.get(), &self), "create");
    graft_optimizer_desc desc{};
    desc.struct_size = sizeof desc;
    rt::throw_if_failed(vt.describe(self, &desc), "describe");
    const int64_t n = 5003;
    Tensor param({n}), grad({n});
    std::vector<Tensor> state(desc.n_state, Tensor({n}));
    for (int64_t i = 0; i < n; ++i) param.f()[i] = graft_random_uniform(9, 1, uint64_t(i)) - 0.5f;
    Gpu gparam(param), ggrad(grad);
    std::vector<std::unique_ptr<Gpu>> gstate;
    std::vector<DLTensor*> cpu_state, gpu_state;
    for (Tensor& s : state) {
      gstate.push_back(std::make_unique<Gpu>(s));
      cpu_state.push_back(s.get());
      gpu_state.push_back(&gstate.back()->tensor);
    }
    for (int64_t step = 1; step <= 3; ++step) {
      for (int64_t i = 0; i < n; ++i)
        grad.f()[i] = graft_random_uniform(9, uint64_t(1 + step), uint64_t(i)) - 0.5f;
      rt::throw_if_failed(rt::host_api()->copy(nullptr, grad.get(), &ggrad.tensor), "grad");
      graft_param_update cpu_update{
          sizeof(graft_param_update), param.get(), grad.get(), cpu_state.data(), 0.01f, step, 1};
      graft_param_update gpu_update{sizeof(graft_param_update),
                                    &gparam.tensor,
                                    &ggrad.tensor,
                                    gpu_state.data(),
                                    0.01f,
                                    step,
                                    1};
      rt::throw_if_failed(vt.step(self, &cpu_ctx, &cpu_update), "cpu step");
      rt::throw_if_failed(vt.step(self, &gpu_ctx, &gpu_update), "gpu step");
    }
    CHECK(relative_error(gparam.host(), param) <= 1e-6);
    for (size_t k = 0; k < state.size(); ++k) {
      CAPTURE(k);
      CHECK(relative_error(gstate[k]->host(), state[k]) <= 1e-6);
    }
    vt.destroy(self);
  }
}

int main(int argc, char** argv) { return graft::gpu_test::run_or_skip(argc, argv); }
