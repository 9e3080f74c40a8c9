// Owned-shape DLTensor views over planned buffers: built on the stack inside the training step,
// so a batch of any size views the same memory without allocating.
#pragma once

#include <cstdint>
#include <string>

#include "graft/cpp/core.hpp"
#include "graft/graft.h"

namespace graft::runtime {

// The SDK's graft::View (a DLTensor that owns its shape array, what plugins view their own
// memory with), made from the runtime's shapes: a per-sample shape behind a batch axis, or a
// parameter's whole shape.
class TensorView : public graft::View {
 public:
  TensorView() = default;
  // (rows, sample...) over `data`.
  TensorView(void* data, DLDevice device, int64_t rows, const graft_shape& sample,
             DLDataType dtype = DLDataType{kDLFloat, 32, 1})
      : View(data, device, {rows}, dtype) {
    DLTensor& t = **this;
    for (int i = 0; i < sample.ndim; ++i) t.shape[i + 1] = sample.dims[i];
    t.ndim = sample.ndim + 1;
  }
  // A float32 tensor of exactly `shape` (no batch axis): parameters.
  TensorView(void* data, DLDevice device, const graft_shape& shape) : View(data, device, {}) {
    DLTensor& t = **this;
    for (int i = 0; i < shape.ndim; ++i) t.shape[i] = shape.dims[i];
    t.ndim = shape.ndim;
  }
};

inline int64_t tensor_numel(const DLTensor& t) { return graft::numel(t); }

inline bool same_shape(const graft_shape& a, const graft_shape& b) {
  if (a.ndim != b.ndim) return false;
  for (int i = 0; i < a.ndim; ++i)
    if (a.dims[i] != b.dims[i]) return false;
  return true;
}

// "(64, 784)"
inline std::string shape_string(const graft_shape& s) { return graft::Shape(s).str(); }

}  // namespace graft::runtime
