// A block of float32 memory from the host allocator, planned when the model is built and freed
// with it: the training step itself never allocates.
#pragma once

#include <cstddef>
#include <cstring>
#include <utility>

#include "device/host_api.hpp"
#include "util/errors.hpp"

namespace graft::runtime {

class Buffer {
 public:
  Buffer() = default;
  Buffer(DLDevice device, size_t floats) : device_(device), floats_(floats) {
    if (floats == 0) return;
    data_ = static_cast<float*>(host_api()->alloc(device, floats * sizeof(float)));
    if (!data_)
      throw Failure("out of memory allocating " + std::to_string(floats * sizeof(float)) +
                    " bytes; lower data.batch_size or the model size");
    // Zeroed, because gradients accumulate and optimizer state starts at zero.
    if (device.device_type == kDLCPU) {
      std::memset(data_, 0, floats * sizeof(float));
      return;
    }
    int64_t n = static_cast<int64_t>(floats);
    DLTensor all{};
    all.data = data_;
    all.device = device;
    all.ndim = 1;
    all.dtype = DLDataType{kDLFloat, 32, 1};
    all.shape = &n;
    throw_if_failed(host_api()->fill(nullptr, &all, 0.0f), "zeroing a new buffer");
  }
  ~Buffer() { release(); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept { *this = std::move(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      release();
      device_ = o.device_;
      data_ = std::exchange(o.data_, nullptr);
      floats_ = std::exchange(o.floats_, 0);
    }
    return *this;
  }
  float* data() const { return data_; }
  size_t size() const { return floats_; }
  size_t bytes() const { return floats_ * sizeof(float); }
  DLDevice device() const { return device_; }

 private:
  void release() {
    if (data_) host_api()->free(device_, data_);
    data_ = nullptr;
  }
  DLDevice device_{kDLCPU, 0};
  float* data_ = nullptr;
  size_t floats_ = 0;
};

}  // namespace graft::runtime
