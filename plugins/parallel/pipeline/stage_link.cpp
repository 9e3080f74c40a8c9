// StageLink and the stage buffers: the pipeline's only contact with the communicator and the
// allocator.
#include "stage_link.hpp"

namespace graft::pipeline {

void* reserve(DeviceMemory& buffer, const graft_host_api* host, DLDevice device, size_t bytes) {
  const DLDevice held = buffer.device();
  if (buffer && bytes <= buffer.bytes() && device.device_type == held.device_type &&
      device.device_id == held.device_id)
    return buffer.data();
  buffer.reset();  // first, so the old and the new buffer are never held at once
  buffer = DeviceMemory(host, device, bytes, "pipeline");
  return buffer.data();
}

void StageLink::recv(DLTensor& t, int32_t peer, int32_t tag, const char* what) {
  const auto start = Clock::now();
  comm_.recv(t, peer, tag, what);
  add_idle(start);
}

void StageLink::finish(graft_request*& request) {
  if (!request) return;
  const auto start = Clock::now();
  graft_request* r = request;
  request = nullptr;  // wait() frees it, even when it fails
  comm_.wait(r);
  add_idle(start);
}

void StageLink::all_reduce_sum(double* values, int64_t n, const char* what) {
  const auto start = Clock::now();
  comm_.all_reduce_f64(values, n, GRAFT_REDUCE_SUM, what);
  add_idle(start);
}

}  // namespace graft::pipeline
