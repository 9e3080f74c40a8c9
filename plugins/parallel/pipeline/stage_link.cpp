// StageLink and HostBuffer: the pipeline's only contact with the communicator and the allocator.
#include "stage_link.hpp"

namespace graft::pipeline {

void* HostBuffer::reserve(DLDevice device, size_t bytes) {
  if (data_ && bytes <= bytes_ && device.device_type == device_.device_type &&
      device.device_id == device_.device_id)
    return data_;
  release();
  data_ = host_->alloc(device, bytes ? bytes : 1);
  if (!data_)
    throw Error(GRAFT_ERR_OUT_OF_MEMORY,
                "pipeline: out of memory for a stage buffer of " + std::to_string(bytes) +
                    " bytes");
  device_ = device;
  bytes_ = bytes;
  return data_;
}

void HostBuffer::release() {
  if (data_) host_->free(device_, data_);
  data_ = nullptr;
  bytes_ = 0;
}

void StageLink::send_start(const DLTensor& t, int32_t peer, int32_t tag, const char* what,
                           graft_request** request) {
  check(api_->send_start(comm_, &t, peer, tag, what, request));
}

void StageLink::recv(DLTensor& t, int32_t peer, int32_t tag, const char* what) {
  const auto start = Clock::now();
  check(api_->recv(comm_, &t, peer, tag, what));
  add_idle(start);
}

void StageLink::finish(graft_request*& request) {
  if (!request) return;
  const auto start = Clock::now();
  graft_request* r = request;
  request = nullptr;  // wait() frees it, even when it fails
  check(api_->wait(comm_, r));
  add_idle(start);
}

void StageLink::all_reduce_sum(double* values, int64_t n, const char* what) {
  const auto start = Clock::now();
  check(api_->all_reduce_f64(comm_, values, n, GRAFT_REDUCE_SUM, what));
  add_idle(start);
}

}  // namespace graft::pipeline
