// A pipeline stage's connection to its neighbours: send/recv of activations and their
// gradients through the host's communicator, timing every wait (the stage's idle time), and
// receive buffers that are allocated once and only grow (a larger evaluation batch).
#pragma once

#include <chrono>
#include <cstddef>

#include <graft/cpp/device.hpp>
#include <graft/cpp/strategy.hpp>

namespace graft::pipeline {

using Clock = std::chrono::steady_clock;

// At least `bytes` of memory on `device` in `buffer`, which keeps what it holds when that is
// enough: reallocated (losing the contents) only to grow or to move to another device.
void* reserve(DeviceMemory& buffer, const graft_host_api* host, DLDevice device, size_t bytes);

class StageLink {
 public:
  // comm may be empty for a one-stage pipeline (nothing to exchange).
  explicit StageLink(Comm comm) : comm_(comm) {}
  bool connected() const { return bool(comm_); }
  const Comm& comm() const { return comm_; }

  graft_request* send_start(const DLTensor& t, int32_t peer, int32_t tag, const char* what) {
    return comm_.send_start(t, peer, tag, what);
  }
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
  Comm comm_;
  double idle_ = 0.0;
};

}  // namespace graft::pipeline
