// The NCCL watchdog and the completion events it watches. NCCL calls return as soon as the work
// is queued, so a hang shows on the GPU, not in a call: a thread polls the event recorded after
// each operation and NCCL's asynchronous errors, and ends the job with a report instead.
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "comm/nccl/pending_ops.hpp"

namespace graft::runtime::nccl {

// An event recorded after one NCCL operation. Shared by the watchdog and, for a started
// operation, its request: back in the pool when both let go.
struct Event {
  cudaEvent_t event = nullptr;
  std::atomic<int> refs{0};
};

class Watchdog {
 public:
  // Creates `events` events up front, so the first steps need no cudaEventCreate either.
  Watchdog(int32_t device, int32_t world_rank, double timeout_s, size_t events = 64);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Communicators whose asynchronous errors it polls and which it aborts; `name` says which
  // in the report ("world (collectives)").
  void watch(ncclComm_t comm, const std::string& name);
  void forget(ncclComm_t comm);

  // An event with `refs` references: from the free list, or (when every event is still in
  // use) after taking back those of completed operations, or a new one.
  Event* event(int refs);
  void release(Event* e);  // drops one reference
  // `done` was recorded after `op` on the GPU; the watchdog takes over one of its references.
  void queued(Event* done, const OpRecord& op);

  double timeout() const { return timeout_s_; }

 private:
  using Clock = PendingOps<Event>::Clock;
  void run();
  // Takes back the events of completed operations; returns the oldest overdue one, if any.
  std::optional<PendingOps<Event>::Overdue> sweep(double timeout_s);
  [[noreturn]] void abort_job(const std::string& report);

  int32_t device_, world_rank_;
  double timeout_s_;
  PendingOps<Event> pending_;

  std::mutex pool_mutex_;
  std::vector<std::unique_ptr<Event>> events_;  // all of them, for destruction
  std::vector<Event*> free_;  // capacity >= events_.size(), so release never allocates

  std::mutex comms_mutex_;
  std::vector<std::pair<ncclComm_t, std::string>> comms_;

  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace graft::runtime::nccl
