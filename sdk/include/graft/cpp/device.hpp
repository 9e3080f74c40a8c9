// Where a plugin's work runs, without build-flag #if in plugin sources: one constant says
// whether this plugin was built with its CUDA kernels, and the dispatch reads as ordinary code,
//     graft::require_device(x, "linear");
//     if (graft::on_cuda(x)) return graft::check_launch("linear", linear_cuda::f(...));
// When CUDA is off, graft_add_plugin compiles the plugin's CUDA_STUBS file instead of its .cu
// kernels (each stub returns graft::kNoCudaKernels), so the calls still link and never run:
// require_device has already refused a CUDA tensor. Also the owning type for host->alloc memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "graft/cpp/core.hpp"

// Set to 1 by graft_add_plugin for a plugin built with its CUDA_SOURCES; a plugin built
// another way has no kernels.
#ifndef GRAFT_PLUGIN_WITH_CUDA
#define GRAFT_PLUGIN_WITH_CUDA 0
#endif

namespace graft {

inline constexpr bool kPluginHasCuda = GRAFT_PLUGIN_WITH_CUDA != 0;
// The entry flag that tells the host this plugin runs on CUDA tensors (0 without kernels).
inline constexpr uint32_t kCudaEntry = kPluginHasCuda ? GRAFT_ENTRY_HAS_CUDA : 0u;
// What a stub kernel returns; never seen by a user, since require_device refuses first.
inline constexpr const char* kNoCudaKernels = "this plugin was built without CUDA kernels";

inline bool on_cuda(const DLTensor& t) { return t.device.device_type == kDLCUDA; }

// Throws GRAFT_ERR_UNSUPPORTED unless this build of the plugin runs on t's device.
inline void require_device(const DLTensor& t, const char* plugin) {
  if (on_cpu(t) || (kPluginHasCuda && on_cuda(t))) return;
  throw Error(GRAFT_ERR_UNSUPPORTED,
              std::string(plugin) + (on_cuda(t) ? ": this build has no CUDA kernels"
                                                : ": tensors on this device are not supported"));
}

// A kernel launch's result (NULL, or CUDA's error text) as an exception naming the plugin.
inline void check_launch(const char* plugin, const char* error) {
  if (error) throw Error(GRAFT_ERR_RUNTIME, std::string(plugin) + ": CUDA: " + error);
}

// Memory from host->alloc (which the host counts in its accounting), freed with this object;
// move-only. Empty (data() NULL) until given a size.
class DeviceMemory {
 public:
  DeviceMemory() = default;
  // `who` names the plugin in the out-of-memory message; memory off the CPU is a GPU's in graft.
  DeviceMemory(const graft_host_api* host, DLDevice device, size_t bytes, const char* who)
      : host_(host), device_(device), bytes_(bytes) {
    ptr_ = host->alloc(device, bytes ? bytes : 1);
    if (!ptr_)
      throw Error(GRAFT_ERR_OUT_OF_MEMORY, std::string(who) + ": out of " +
                                               (device.device_type == kDLCPU ? "host" : "GPU") +
                                               " memory for " + std::to_string(bytes) + " bytes");
  }
  ~DeviceMemory() { reset(); }
  DeviceMemory(DeviceMemory&& o) noexcept { *this = std::move(o); }
  DeviceMemory& operator=(DeviceMemory&& o) noexcept {
    if (this != &o) {
      reset();
      host_ = std::exchange(o.host_, nullptr);
      device_ = o.device_;
      bytes_ = std::exchange(o.bytes_, 0);
      ptr_ = std::exchange(o.ptr_, nullptr);
    }
    return *this;
  }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;

  void* data() const { return ptr_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }
  DLDevice device() const { return device_; }
  explicit operator bool() const { return ptr_ != nullptr; }
  void reset() {
    if (ptr_) host_->free(device_, ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }

 private:
  const graft_host_api* host_ = nullptr;
  DLDevice device_{kDLCPU, 0};
  size_t bytes_ = 0;
  void* ptr_ = nullptr;
};

}  // namespace graft
