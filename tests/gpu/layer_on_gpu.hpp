// A layer plugin's second instance driven on the GPU beside a CPU LayerUnderTest: the same
// options and input shape, and device copies of its tensors, so a test runs both and compares.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "gpu_support.hpp"
#include "gradient_check.hpp"

namespace graft::gpu_test {

// Copies a CPU tensor's contents into a device tensor of the same size.
inline void upload(const Tensor& from, Gpu& to) {
  runtime::throw_if_failed(runtime::host_api()->copy(nullptr, from.get(), &to.tensor), "upload");
}

class LayerOnGpu {
 public:
  // Device copies of cpu's parameters, gradients, workspace and x, y, dy, dx as they are now.
  LayerOnGpu(const runtime::PluginRecord& record, const std::string& options_toml,
             const std::vector<int64_t>& input_shape, const test::LayerUnderTest& cpu)
      : x(cpu.x),
        y(cpu.y),
        dy(cpu.dy),
        dx(cpu.dx),
        workspace(cpu.workspace),
        vtable_(record.vtable<graft_layer_vtable>()) {
    graft_shape input{};
    for (const int64_t d : input_shape) input.dims[input.ndim++] = d;
    const runtime::BoundOptions bound = test::bind_text(record, options_toml);
    runtime::throw_if_failed(vtable_.create(runtime::host_api(), bound.get(), &input, &self_),
                             "create on the GPU");
    for (size_t k = 0; k < cpu.params.size(); ++k) {
      params.push_back(std::make_unique<Gpu>(cpu.params[k]));
      grads.push_back(std::make_unique<Gpu>(cpu.grads[k]));
      param_ptrs_.push_back(&params.back()->tensor);
      grad_ptrs_.push_back(&grads.back()->tensor);
    }
  }
  ~LayerOnGpu() { vtable_.destroy(self_); }
  LayerOnGpu(const LayerOnGpu&) = delete;
  LayerOnGpu& operator=(const LayerOnGpu&) = delete;

  // The plugin's status, NULL on success (the caller owns it).
  graft_status* try_forward(const graft_exec_ctx& ctx) {
    return vtable_.forward(self_, &ctx, param_ptrs_.data(), &x.tensor, &y.tensor,
                           &workspace.tensor);
  }
  void forward(const graft_exec_ctx& ctx) {
    runtime::throw_if_failed(try_forward(ctx), "forward on the GPU");
  }
  void backward(const graft_exec_ctx& ctx, bool want_dx = true) {
    runtime::throw_if_failed(
        vtable_.backward(self_, &ctx, param_ptrs_.data(), &x.tensor, &y.tensor, &dy.tensor,
                         want_dx ? &dx.tensor : nullptr, grad_ptrs_.data(), &workspace.tensor),
        "backward on the GPU");
  }

  std::vector<std::unique_ptr<Gpu>> params, grads;
  Gpu x, y, dy, dx, workspace;

 private:
  const graft_layer_vtable& vtable_;
  void* self_ = nullptr;
  std::vector<const DLTensor*> param_ptrs_;
  std::vector<DLTensor*> grad_ptrs_;
};

}  // namespace graft::gpu_test
