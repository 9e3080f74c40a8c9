// The NCCL operations still running on the GPU, as the watchdog sees them: each one's record and
// its completion event, oldest first. Free of CUDA (events are a template parameter) so that
// tests/unit runs it with fake events on a machine without a GPU.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "comm/communicator.hpp"

namespace graft::runtime::nccl {

// One operation, in plain bytes: recording one allocates nothing.
struct OpRecord {
  int64_t seq = 0;     // collectives: their number on `comm`, 1-based, equal on every rank
  int32_t peer = -1;   // send/recv: the other rank of `comm`; else -1
  char call[24] = {};  // "all_reduce", "all_reduce_start", "send"
  char comm[48] = {};  // "world", "data group", "world/split1[color 0]"
  char what[96] = {};  // the caller's description, cut to fit
};

// Cut to fit: reports show the start of a long name.
inline void copy_text(char* out, size_t size, const char* text) {
  const size_t n = text ? std::min(std::strlen(text), size - 1) : 0;
  if (n) std::memcpy(out, text, n);
  out[n] = '\0';
}

// "all_reduce #3 'loss' on world" / "send to rank 1 'stage 0 -> 1' on world", as the MPI
// watchdog says it.
inline std::string describe(const OpRecord& op) {
  std::string out = op.call;
  if (op.peer < 0)
    out += " #" + std::to_string(op.seq);
  else
    out += std::string(std::strncmp(op.call, "send", 4) == 0 ? " to" : " from") + " rank " +
           std::to_string(op.peer);
  if (op.what[0]) out += std::string(" '") + op.what + "'";
  return out + " on " + comm_label(op.comm);
}

template <class Event>
class PendingOps {
 public:
  using Clock = std::chrono::steady_clock;

  struct Overdue {
    OpRecord op;
    double seconds = 0;    // since it was queued
    size_t in_flight = 0;  // operations not completed, this one included
  };

  // Room for `expected` operations in flight: a step that stays under it records without
  // allocating.
  explicit PendingOps(size_t expected = 256) { entries_.reserve(expected); }

  void add(Event* event, const OpRecord& op, Clock::time_point queued) {
    std::lock_guard<std::mutex> lock(mutex_);
    entries_.push_back(Entry{event, op, queued});
  }

  // Drops the operations `done(event)` says completed, handing each event to `release`, and
  // returns the oldest one still running after `timeout_s`, if any. Keeps the order, so the
  // one reported is the first that got stuck (the later ones wait behind it).
  template <class Done, class Release>
  std::optional<Overdue> sweep(Clock::time_point now, double timeout_s, Done&& done,
                               Release&& release) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::optional<Overdue> overdue;
    size_t kept = 0;
    for (size_t i = 0; i < entries_.size(); ++i) {
      Entry& e = entries_[i];
      if (done(e.event)) {
        release(e.event);
        continue;
      }
      const double age = std::chrono::duration<double>(now - e.queued).count();
      if (age > timeout_s && (!overdue || age > overdue->seconds)) overdue = Overdue{e.op, age, 0};
      entries_[kept++] = e;
    }
    entries_.resize(kept);  // shrinking never allocates
    if (overdue) overdue->in_flight = kept;
    return overdue;
  }

  size_t size() {
    std::lock_guard<std::mutex> lock(mutex_);
    return entries_.size();
  }

 private:
  struct Entry {
    Event* event;
    OpRecord op;
    Clock::time_point queued;
  };
  std::mutex mutex_;
  std::vector<Entry> entries_;
};

inline std::string seconds_text(double s) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f s", s);
  return buffer;
}

// What the watchdog prints before it aborts: the stuck operation, or NCCL's asynchronous error
// (a peer died, the network failed), and the fix when the wait was legitimate.
inline std::string overdue_report(int32_t world_rank, const OpRecord& op, double seconds,
                                  size_t in_flight, double timeout_s) {
  std::string text = "graft: NCCL watchdog on rank " + std::to_string(world_rank) + ": " +
                     describe(op) + " has not completed on the GPU after " + seconds_text(seconds) +
                     ", more than [parallel] timeout_s = " + seconds_text(timeout_s) + ".\n";
  if (in_flight > 1)
    text += "  " + std::to_string(in_flight - 1) +
            " later NCCL operation(s) of this rank wait behind it\n";
  text +=
      "  a rank that never joined it has failed, stalled, or called collectives in another "
      "order (a bug in the strategy); its own output says which\n"
      "  aborting the NCCL communicators and ending the job; raise [parallel] timeout_s if "
      "a step may legitimately take longer\n";
  return text;
}

inline std::string async_error_report(int32_t world_rank, const std::string& comm,
                                      const std::string& error) {
  return "graft: NCCL watchdog on rank " + std::to_string(world_rank) +
         ": NCCL reported an "
         "asynchronous error on " +
         comm + ": " + error +
         "\n"
         "  (a peer rank died, or the network between the GPUs failed)\n"
         "  aborting the NCCL communicators and ending the job\n";
}

}  // namespace graft::runtime::nccl
