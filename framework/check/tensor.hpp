// Owned CPU tensors and a CPU execution context for driving plugins outside a model: what
// `graft check-plugin` and the plugin tests hand to a vtable in place of the model's buffers.
#pragma once

#include <cstdint>
#include <vector>

#include "graft/graft.h"

namespace graft::checker {

// A float32 (or int32) CPU tensor that owns its data; copies copy the data.
class Tensor {
 public:
  Tensor(std::vector<int64_t> shape, DLDataType dtype = DLDataType{kDLFloat, 32, 1});
  Tensor(const Tensor& o);
  Tensor& operator=(const Tensor& o);
  DLTensor* get() { return &t_; }
  const DLTensor* get() const { return &t_; }
  float* f() { return reinterpret_cast<float*>(data_.data()); }
  const float* f() const { return reinterpret_cast<const float*>(data_.data()); }
  int32_t* i() { return reinterpret_cast<int32_t*>(data_.data()); }
  const int32_t* i() const { return reinterpret_cast<const int32_t*>(data_.data()); }
  int64_t numel() const;
  size_t bytes() const { return data_.size(); }
  const std::vector<int64_t>& shape() const { return shape_; }

 private:
  void rebind();
  std::vector<int64_t> shape_;
  std::vector<char> data_;
  DLTensor t_{};
};

// True when both hold the same bytes (bit-identical values, NaNs included).
bool same_bits(const Tensor& a, const Tensor& b);

// A CPU execution context: training or evaluation, seed 1234, one rank, no layer.
graft_exec_ctx cpu_context(bool training = true);

}  // namespace graft::checker
