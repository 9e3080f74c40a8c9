// Owned CPU tensors and the CPU context used to drive plugins directly.
#include "check/tensor.hpp"

#include <cstring>

#include "device/host_api.hpp"

namespace graft::checker {

Tensor::Tensor(std::vector<int64_t> shape, DLDataType dtype) : shape_(std::move(shape)) {
  t_.dtype = dtype;
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  data_.assign(static_cast<size_t>(n) * (dtype.bits / 8), 0);
  rebind();
}
Tensor::Tensor(const Tensor& o) : shape_(o.shape_), data_(o.data_), t_(o.t_) { rebind(); }
Tensor& Tensor::operator=(const Tensor& o) {
  shape_ = o.shape_;
  data_ = o.data_;
  t_ = o.t_;
  rebind();
  return *this;
}
void Tensor::rebind() {
  t_.data = data_.data();
  t_.device = DLDevice{kDLCPU, 0};
  t_.ndim = static_cast<int>(shape_.size());
  t_.shape = shape_.data();
  t_.strides = nullptr;
  t_.byte_offset = 0;
}
int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.bytes() == b.bytes() &&
         std::memcmp(a.get()->data, b.get()->data, a.bytes()) == 0;
}

graft_exec_ctx cpu_context(bool training) {
  graft_exec_ctx ctx{};
  ctx.struct_size = sizeof ctx;
  ctx.host = runtime::host_api();
  ctx.device = DLDevice{kDLCPU, 0};
  ctx.training = training ? 1 : 0;
  ctx.seed = 1234;
  ctx.global_batch = 0;
  ctx.layer_index = -1;
  ctx.world = 1;
  return ctx;
}

}  // namespace graft::checker
