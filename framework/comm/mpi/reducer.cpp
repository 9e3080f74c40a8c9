// The reducer thread: runs started all-reduces (and ZeRO's reduce-scatters and all-gathers) as
// blocking MPI calls in start order,
// and the requests the communicator hands back for them (why a thread: reducer.hpp).
#include "comm/mpi/reducer.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>

#include "comm/mpi/mpi_communicator.hpp"
#include "comm/mpi/pooled.hpp"

namespace graft::runtime::mpi {

class Reducer::Request final : public CommRequest, public Pooled<Reducer::Request> {
 public:
  Request(Reducer& reducer, int64_t seq, const OpRecord& record)
      : reducer_(reducer), seq_(seq), record_(record) {}
  // The thread may still be writing into the caller's tensor.
  ~Request() override {
    if (waited_) return;
    try {
      // Unwinding after an error on this rank: the others may never join, and this rank must
      // get to print its error and end the job (Job::fail), so it waits a moment, then leaves
      // the thread to it, as MpiRequest leaves MPI its buffer.
      if (std::uncaught_exceptions() > 0)
        reducer_.wait_done(seq_, std::chrono::milliseconds(500));
      else
        reducer_.wait_done(seq_);
    } catch (const std::exception&) {  // a destructor cannot report it; wait() would have
    }
  }
  void wait() override {
    if (waited_) return;
    waited_ = true;
    watchdog_begin();
    try {
      reducer_.wait_done(seq_);
    } catch (...) {
      reducer_.watchdog_.end(false);
      throw;
    }
    reducer_.watchdog_.end(true);
  }

 private:
  void watchdog_begin() {
    OpRecord op = record_;
    name_wait(op);
    reducer_.watchdog_.begin(op, reducer_.members_);
  }

  Reducer& reducer_;
  int64_t seq_;
  OpRecord record_;
  bool waited_ = false;
};

Reducer::Reducer(MPI_Comm parent, Watchdog& watchdog, const std::vector<int>* members)
    : watchdog_(watchdog), members_(members) {
  MPI_CHECK(MPI_Comm_dup(parent, &comm_), "all_reduce_start: duplicating the communicator");
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  MPI_Comm_size(comm_, &size_);
  MPI_Comm_rank(comm_, &rank_);
  thread_ = std::thread([this] { run(); });
}

Reducer::~Reducer() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_.notify_all();
  thread_.join();
  MPI_Comm_free(&comm_);
}

std::unique_ptr<CommRequest> Reducer::start(float* data, int n, bool average,
                                            const OpRecord& record) {
  Job job;
  job.data = data;
  job.n = n;
  job.average = average;
  job.record = record;
  return queue(job);
}

std::unique_ptr<CommRequest> Reducer::start_reduce_scatter(float* in, float* out, int part,
                                                           bool average, const OpRecord& record) {
  Job job;
  job.kind = Kind::reduce_scatter;
  job.data = in;
  job.out = out;
  job.n = part;
  job.average = average;
  job.record = record;
  return queue(job);
}

std::unique_ptr<CommRequest> Reducer::start_all_gather(const void* in, void* out, int part_bytes,
                                                       const OpRecord& record) {
  Job job;
  job.kind = Kind::all_gather;
  job.in = in;
  job.out = out;
  job.n = part_bytes;
  job.record = record;
  return queue(job);
}

std::unique_ptr<CommRequest> Reducer::queue(const Job& job) {
  int64_t seq = 0;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return queued_ - completed_ < int64_t(ring_.size()); });
    seq = queued_++;
    ring_[size_t(seq % int64_t(ring_.size()))] = job;
  }
  work_.notify_one();
  return std::make_unique<Request>(*this, seq, job.record);
}

// In place, as a ring over `size` chunks of `data` (the last may be shorter): at step s each rank
// sends the chunk it has summed so far to the next and adds the one arriving from the previous,
// so after size - 1 steps chunk r holds every rank's sum; with `gather` the summed chunks then
// travel round the ring once more (an all-reduce). One chunk of scratch: Open MPI's in-place
// reduce-scatters held a copy of the whole tensor (rank 0 of MPI_Reduce_scatter_block, every
// rank of MPI_Reduce_scatter: +130 MiB per step for 784-4096-4096-10 under ZeRO-1), memory the
// plan of `graft validate` cannot know and ZeRO is there to save.
void Reducer::ring(float* data, int64_t n, bool gather, const OpRecord& record) {
  const int64_t chunk = (n + size_ - 1) / size_;
  const auto begin = [&](int c) { return std::min<int64_t>(int64_t(c) * chunk, n); };
  const auto count = [&](int c) { return int(begin(c + 1 == size_ ? size_ : c + 1) - begin(c)); };
  const auto mod = [&](int c) { return ((c % size_) + size_) % size_; };
  scratch_.resize(size_t(chunk));
  const int next = mod(rank_ + 1), previous = mod(rank_ - 1);
  for (int step = 0; step + 1 < size_; ++step) {
    const int send = mod(rank_ - step - 1), receive = mod(rank_ - step - 2);
    MPI_CHECK(MPI_Sendrecv(data + begin(send), count(send), MPI_FLOAT, next, 0, scratch_.data(),
                           count(receive), MPI_FLOAT, previous, 0, comm_, MPI_STATUS_IGNORE),
              describe(record));
    float* sum = data + begin(receive);
    for (int i = 0; i < count(receive); ++i) sum[i] += scratch_[size_t(i)];
  }
  if (!gather) return;
  for (int step = 0; step + 1 < size_; ++step) {
    const int send = mod(rank_ - step), receive = mod(rank_ - step - 1);
    MPI_CHECK(
        MPI_Sendrecv(data + begin(send), count(send), MPI_FLOAT, next, 1, data + begin(receive),
                     count(receive), MPI_FLOAT, previous, 1, comm_, MPI_STATUS_IGNORE),
        describe(record));
  }
}

void Reducer::run_job(const Job& job) {
  switch (job.kind) {
    case Kind::all_reduce:
      // Open MPI's tuned blocking call: the ring below (with gather) measured 0.87-1.01x its
      // rate for 7.45 MB on 2 ranks, this 0.96-1.01x; it holds a copy of the tensor meanwhile.
      MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, job.data, job.n, MPI_FLOAT, MPI_SUM, comm_),
                describe(job.record));
      if (job.average)
        for (int i = 0; i < job.n; ++i) job.data[i] /= float(size_);
      return;
    case Kind::reduce_scatter: {
      auto* out = static_cast<float*>(job.out);
      if (out == job.data + size_t(job.n) * size_t(rank_))
        ring(job.data, int64_t(job.n) * size_, /*gather=*/false, job.record);
      else
        MPI_CHECK(MPI_Reduce_scatter_block(job.data, out, job.n, MPI_FLOAT, MPI_SUM, comm_),
                  describe(job.record));
      if (job.average)
        for (int i = 0; i < job.n; ++i) out[i] /= float(size_);
      return;
    }
    case Kind::all_gather: {
      auto* out = static_cast<char*>(job.out);
      const bool in_place = job.in == out + size_t(job.n) * size_t(rank_);
      MPI_CHECK(MPI_Allgather(in_place ? MPI_IN_PLACE : job.in, job.n, MPI_BYTE, out, job.n,
                              MPI_BYTE, comm_),
                describe(job.record));
      return;
    }
  }
}

void Reducer::wait_done(int64_t seq) {
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [&] { return completed_ > seq; });
  if (failed_at_ >= 0 && failed_at_ <= seq) throw Failure(error_);
}

void Reducer::wait_done(int64_t seq, std::chrono::milliseconds at_most) {
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait_for(lock, at_most, [&] { return completed_ > seq; });
  if (failed_at_ >= 0 && failed_at_ <= seq) throw Failure(error_);
}

void Reducer::run() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_.wait(lock, [&] { return stop_ || queued_ > completed_; });
      if (queued_ == completed_) return;  // stopping with nothing left
      job = ring_[size_t(completed_ % int64_t(ring_.size()))];
    }
    std::string error;
    if (failed_at_ < 0) {  // after a failure the ranks no longer agree on what comes next
      try {
        run_job(job);
      } catch (const std::exception& e) {
        error = e.what();
      }
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error.empty() && failed_at_ < 0) {
        failed_at_ = completed_;
        error_ = error;
      }
      ++completed_;
      done_.notify_all();  // under the lock: a waiter may free its request once it wakes
    }
  }
}

}  // namespace graft::runtime::mpi
