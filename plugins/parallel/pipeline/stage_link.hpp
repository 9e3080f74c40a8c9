// A pipeline stage's connection to its neighbours: send/recv of activations and their
// gradients through the host's communicator, timing every wait (the stage's idle time), and
// receive buffers that are allocated once and only grow (a larger evaluation batch).
#pragma once

#include <chrono>
#include <vector>

#include <graft/cpp/core.hpp>

namespace graft::pipeline {

using Clock = std::chrono::steady_clock;

// A dense float32 (rows, shape...) view of memory this stage owns or was handed.
struct Activation {
  int64_t shape[GRAFT_MAX_DIMS + 1] = {};
  DLTensor tensor{};
  Activation() = default;
  Activation(const Activation&) = delete;
  Activation& operator=(const Activation&) = delete;
  void view(void* data, DLDevice device, int64_t rows, const graft_shape& per_row) {
    tensor = DLTensor{};
    tensor.data = data;
    tensor.device = device;
    tensor.dtype = DLDataType{kDLFloat, 32, 1};
    tensor.ndim = per_row.ndim + 1;
    shape[0] = rows;
    for (int i = 0; i < per_row.ndim; ++i) shape[i + 1] = per_row.dims[i];
    tensor.shape = shape;
  }
};

// Memory from host->alloc (accounted by the host), freed with it.
class HostBuffer {
 public:
  HostBuffer() = default;
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  ~HostBuffer() { release(); }
  void bind(const graft_host_api* host) { host_ = host; }
  // At least `bytes`; reallocates (losing the contents) only when it must grow.
  void* reserve(DLDevice device, size_t bytes);
  void release();
  void* data() const { return data_; }

 private:
  const graft_host_api* host_ = nullptr;
  DLDevice device_{kDLCPU, 0};
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

class StageLink {
 public:
  // comm may be NULL for a one-stage pipeline (nothing to exchange).
  StageLink(graft_comm* comm, const graft_comm_api* api) : comm_(comm), api_(api) {}
  bool connected() const { return comm_ != nullptr && api_ != nullptr; }

  void send_start(const DLTensor& t, int32_t peer, int32_t tag, const char* what,
                  graft_request** request);
  void recv(DLTensor& t, int32_t peer, int32_t tag, const char* what);
  // Waits for a send to finish (its buffer may then change); NULL is already finished.
  void finish(graft_request*& request);
  void all_reduce_sum(double* values, int64_t n, const char* what);

  // Seconds spent blocked in recv, finish and all_reduce_sum since the last take_idle().
  double take_idle() {
    const double s = idle_;
    idle_ = 0.0;
    return s;
  }

 private:
  void add_idle(Clock::time_point since) {
    idle_ += std::chrono::duration<double>(Clock::now() - since).count();
  }
  graft_comm* comm_;
  const graft_comm_api* api_;
  double idle_ = 0.0;
};

}  // namespace graft::pipeline
