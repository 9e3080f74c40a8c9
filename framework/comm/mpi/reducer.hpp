// Started all-reduces run as blocking MPI_Allreduce calls on a thread of their own, in the order
// they were started (ZeRO's reduce-scatters as a ring of blocking sends and receives: reducer.cpp
// says why). Open MPI's non-blocking MPI_Iallreduce (libnbc) moved 7.45 MB at less than half the
// rate of its tuned blocking one here (1.1 vs 2.6 GB/s) and advances only inside MPI calls; a
// thread gets the blocking rate and moves while the caller computes, as PyTorch's MPI process
// group and Horovod do. It needs MPI_THREAD_MULTIPLE; without it the communicator keeps the
// non-blocking calls.
#pragma once

#include <mpi.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "comm/communicator.hpp"
#include "comm/mpi/watchdog.hpp"

namespace graft::runtime::mpi {

class Reducer {
 public:
  // Collective over `parent` (duplicates it: the thread's collectives are matched apart from
  // the caller's, so a blocking call made meanwhile cannot cross them).
  Reducer(MPI_Comm parent, Watchdog& watchdog, const std::vector<int>* members);
  ~Reducer();  // finishes what was started, then stops the thread
  Reducer(const Reducer&) = delete;
  Reducer& operator=(const Reducer&) = delete;

  // Queues the sum (divided by the communicator's size when `average`) of `n` floats at `data`;
  // the returned request's wait() blocks, watched as `record`, until it is done.
  std::unique_ptr<CommRequest> start(float* data, int n, bool average, const OpRecord& record);
  // ZeRO's two (the same thread, so they overlap backward and the update as all-reduces do):
  // the reduction of this rank's `part` floats of `in` into `out` (which may be this rank's
  // own part of `in`: the rest of `in` then becomes scratch), and the gather of every rank's
  // `part_bytes` into `out` from `in` (which may be this rank's own part of `out`).
  std::unique_ptr<CommRequest> start_reduce_scatter(float* in, float* out, int part, bool average,
                                                    const OpRecord& record);
  std::unique_ptr<CommRequest> start_all_gather(const void* in, void* out, int part_bytes,
                                                const OpRecord& record);

 private:
  class Request;
  enum class Kind { all_reduce, reduce_scatter, all_gather };
  struct Job {
    Kind kind = Kind::all_reduce;
    float* data = nullptr;     // all_reduce: the tensor; reduce_scatter: `in`
    void* out = nullptr;       // reduce_scatter, all_gather
    const void* in = nullptr;  // all_gather
    int n = 0;                 // floats (all_reduce), floats per part, or bytes per part
    bool average = false;
    OpRecord record;  // described only for an MPI error: no string per start
  };
  std::unique_ptr<CommRequest> queue(const Job& job);
  void run_job(const Job& job);
  // The thread's reduce-scatter (and all-reduce, with gather) over its own ring (reducer.cpp).
  void ring(float* data, int64_t n, bool gather, const OpRecord& record);
  void run();
  // Blocks until job `seq` is done; throws the MPI error that ended it (or an earlier one).
  void wait_done(int64_t seq);
  void wait_done(int64_t seq, std::chrono::milliseconds at_most);  // gives up after that

  MPI_Comm comm_ = MPI_COMM_NULL;
  int size_ = 1, rank_ = 0;
  std::vector<float> scratch_;  // the thread's: one chunk of the ring
  Watchdog& watchdog_;
  const std::vector<int>* members_;

  std::mutex mutex_;
  std::condition_variable work_, done_;
  // A ring of queued jobs: fixed, so a training step allocates no queue nodes. A full ring
  // makes start() wait for room.
  std::array<Job, 64> ring_;
  int64_t queued_ = 0, completed_ = 0;  // jobs ever queued / finished; the ring holds the rest
  int64_t failed_at_ = -1;              // the first job MPI failed; it and later ones throw
  std::string error_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace graft::runtime::mpi
