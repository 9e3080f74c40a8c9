// The watchdog's thread and the event pool. It polls every 20 ms (an event query costs about a
// microsecond), so it costs nothing measurable and never stands in the way of a step.
#include "comm/nccl/watchdog.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "util/errors.hpp"

namespace graft::runtime::nccl {
namespace {

constexpr auto kPoll = std::chrono::milliseconds(20);
// ncclCommAbort waits for the kernels to see the abort flag; should one never look, the job
// still ends.
constexpr auto kAbortGrace = std::chrono::seconds(10);

std::unique_ptr<Event> new_event() {
  auto e = std::make_unique<Event>();
  if (const cudaError_t r = cudaEventCreateWithFlags(&e->event, cudaEventDisableTiming);
      r != cudaSuccess)
    throw Failure(std::string("NCCL communicator: cudaEventCreateWithFlags: ") +
                  cudaGetErrorString(r));
  return e;
}

bool completed(Event* e) {
  const cudaError_t r = cudaEventQuery(e->event);
  if (r != cudaErrorNotReady) return true;  // done, or failed (the next CUDA call reports it)
  // "Not ready" is stored as this thread's last error; a kernel launch checked after us with
  // cudaGetLastError must not take it for its own failure.
  cudaGetLastError();
  return false;
}

}  // namespace

Watchdog::Watchdog(int32_t device, int32_t world_rank, double timeout_s, size_t events)
    : device_(device), world_rank_(world_rank), timeout_s_(timeout_s) {
  events_.reserve(events);
  free_.reserve(events);
  for (size_t i = 0; i < events; ++i) {
    events_.push_back(new_event());
    free_.push_back(events_.back().get());
  }
  thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(stop_mutex_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  thread_.join();
  for (auto& e : events_) cudaEventDestroy(e->event);
}

void Watchdog::watch(ncclComm_t comm, const std::string& name) {
  std::lock_guard<std::mutex> lock(comms_mutex_);
  comms_.emplace_back(comm, name);
}

void Watchdog::forget(ncclComm_t comm) {
  std::lock_guard<std::mutex> lock(comms_mutex_);
  std::erase_if(comms_, [&](const auto& c) { return c.first == comm; });
}

Event* Watchdog::event(int refs) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    {
      std::lock_guard<std::mutex> lock(pool_mutex_);
      if (!free_.empty()) {
        Event* e = free_.back();
        free_.pop_back();
        e->refs.store(refs);
        return e;
      }
    }
    // Every event is in use: the watchdog may simply not have looked since they completed.
    if (attempt == 0) sweep(std::numeric_limits<double>::infinity());
  }
  // More operations in flight than ever before: a warm-up step, not a steady one.
  std::unique_ptr<Event> made = new_event();
  made->refs.store(refs);
  std::lock_guard<std::mutex> lock(pool_mutex_);
  events_.push_back(std::move(made));
  free_.reserve(events_.size());
  return events_.back().get();
}

void Watchdog::release(Event* e) {
  if (e->refs.fetch_sub(1) != 1) return;
  std::lock_guard<std::mutex> lock(pool_mutex_);
  free_.push_back(e);
}

void Watchdog::queued(Event* done, const OpRecord& op) { pending_.add(done, op, Clock::now()); }

std::optional<PendingOps<Event>::Overdue> Watchdog::sweep(double timeout_s) {
  return pending_.sweep(Clock::now(), timeout_s, completed, [this](Event* e) { release(e); });
}

void Watchdog::run() {
  cudaSetDevice(device_);  // the events and communicators belong to this GPU
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(stop_mutex_);
      if (stop_cv_.wait_for(lock, kPoll, [&] { return stop_; })) return;
    }
    if (const auto overdue = sweep(timeout_s_))
      abort_job(overdue_report(world_rank_, overdue->op, overdue->seconds, overdue->in_flight,
                               timeout_s_));
    std::string report;
    {
      std::lock_guard<std::mutex> lock(comms_mutex_);
      for (const auto& [comm, name] : comms_) {
        ncclResult_t state = ncclSuccess;
        if (ncclCommGetAsyncError(comm, &state) != ncclSuccess || state == ncclSuccess ||
            state == ncclInProgress)
          continue;
        std::string error = ncclGetErrorString(state);
        if (const char* last = ncclGetLastError(nullptr); last && *last)
          error += ": " + std::string(last);
        report = async_error_report(world_rank_, name, error);
        break;
      }
    }
    if (!report.empty()) abort_job(report);
  }
}

void Watchdog::abort_job(const std::string& report) {
  std::fputs(report.c_str(), stderr);
  std::fflush(stderr);
  std::thread([] {
    std::this_thread::sleep_for(kAbortGrace);
    std::_Exit(1);
  }).detach();
  {
    std::lock_guard<std::mutex> lock(comms_mutex_);
    // Stops this rank's NCCL kernels and proxy threads, which would otherwise hold up the
    // exit; under mpirun the exit then ends the other ranks.
    for (const auto& c : comms_) ncclCommAbort(c.first);
  }
  std::_Exit(1);
}

}  // namespace graft::runtime::nccl
