// Owned-shape DLTensor views over planned buffers: built on the stack inside the training step,
// so a batch of any size views the same memory without allocating.
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>

#include "graft/graft.h"

namespace graft::runtime {

class TensorView {
 public:
  TensorView() : shape_{}, t_{} {}
  // (rows, sample...) over `data`.
  TensorView(void* data, DLDevice device, int64_t rows, const graft_shape& sample,
             DLDataType dtype = DLDataType{kDLFloat, 32, 1})
      : shape_{}, t_{} {
    t_.data = data;
    t_.device = device;
    t_.dtype = dtype;
    shape_[0] = rows;
    for (int i = 0; i < sample.ndim; ++i) shape_[i + 1] = sample.dims[i];
    t_.ndim = sample.ndim + 1;
    t_.shape = shape_;
  }
  // A tensor of exactly `sample` (no batch axis): parameters.
  TensorView(void* data, DLDevice device, const graft_shape& shape) : shape_{}, t_{} {
    t_.data = data;
    t_.device = device;
    t_.dtype = DLDataType{kDLFloat, 32, 1};
    for (int i = 0; i < shape.ndim; ++i) shape_[i] = shape.dims[i];
    t_.ndim = shape.ndim;
    t_.shape = shape_;
  }
  TensorView(const TensorView& o) : TensorView() { *this = o; }
  TensorView& operator=(const TensorView& o) {
    std::memcpy(shape_, o.shape_, sizeof shape_);
    t_ = o.t_;
    t_.shape = shape_;
    return *this;
  }
  DLTensor* get() { return &t_; }
  const DLTensor* get() const { return &t_; }

 private:
  int64_t shape_[GRAFT_MAX_DIMS + 1];
  DLTensor t_;
};

inline int64_t tensor_numel(const DLTensor& t) {
  int64_t n = 1;
  for (int i = 0; i < t.ndim; ++i) n *= t.shape[i];
  return n;
}

// "(64, 784)"
inline std::string shape_string(const graft_shape& s) {
  std::string out = "(";
  for (int i = 0; i < s.ndim; ++i) out += (i ? ", " : "") + std::to_string(s.dims[i]);
  return out + (s.ndim == 1 ? ",)" : ")");
}

}  // namespace graft::runtime
