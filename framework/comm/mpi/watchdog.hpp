// The watchdog: turns a hang into an error. Each rank records what it waits in; a thread per
// rank answers the other ranks' questions about it and ends the job when a wait outlives
// [parallel] timeout_s, naming the ranks that never joined and where each of them is.
#pragma once

#include <mpi.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace graft::runtime::mpi {

// One operation, as it travels between ranks (plain bytes: every rank runs the same binary).
struct OpRecord {
  int64_t seq = 0;         // collectives: their number on `comm`, 1-based, equal on every rank
  int32_t peer = -1;       // send/recv: the world rank of the other side; else -1
  int32_t collective = 0;  // 1 when every rank of `comm` takes part
  char call[24] = {};      // "all_reduce", "recv", "wait all_reduce_start"
  char comm[48] = {};      // "world", "world/split1[color 0]": equal on every member
  char what[96] = {};      // the caller's description, cut to fit
};

enum class RankState : int32_t { between = 0, waiting = 1, failed = 2 };

// What a rank says about itself when asked.
struct RankStatus {
  int32_t rank = -1;
  RankState state = RankState::between;
  int64_t round = 0;      // echoes the question, so a late answer to an old one is recognised
  double seconds = 0;     // in this state
  int64_t completed = 0;  // operations finished so far
  OpRecord current;       // valid when waiting
  OpRecord last;          // valid when completed > 0
};

class Watchdog {
 public:
  // Collective over MPI_COMM_WORLD (duplicates it for its own messages). `threads_ok`: MPI
  // granted MPI_THREAD_MULTIPLE, so the thread may talk to other ranks; without it the
  // watchdog still ends a stuck job but can only describe this rank.
  Watchdog(double timeout_s, bool threads_ok);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  bool threads_ok() const { return threads_ok_; }
  void set_timeout(double seconds) { timeout_s_.store(seconds); }
  double timeout() const { return timeout_s_.load(); }
  // Job::set_rank_labels: printed beside rank numbers in the report.
  void set_rank_labels(std::vector<std::string> labels);

  // The calling rank starts waiting in `op`; `members` are the world ranks of its communicator
  // (for a send/recv: only the peer matters). end(true) records it as completed.
  void begin(const OpRecord& op, const std::vector<int>* members);
  void end(bool completed);

  // Non-blocking operations in flight on this rank. Open MPI advances a started collective
  // only inside MPI calls, so while any is in flight the thread probes every millisecond and
  // the operation moves on while the caller computes (data-parallel buckets during backward).
  void started() { in_flight_.fetch_add(1); }
  void finished() { in_flight_.fetch_sub(1); }

  // For fail(): tells every rank this one failed, waits up to `grace_s` for each to say the
  // same, and returns whether all did.
  bool agree_failed(double grace_s);

 private:
  using Clock = std::chrono::steady_clock;
  void run();
  void answer_messages();
  RankStatus snapshot(int64_t round);
  // Asks every other rank for its status for up to `seconds`; NULL entries did not answer.
  std::vector<std::unique_ptr<RankStatus>> ask_all(double seconds);
  void report_and_abort(const RankStatus& self);

  MPI_Comm control_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  bool threads_ok_;
  std::atomic<double> timeout_s_;

  std::mutex mutex_;  // guards the fields below, written by the rank's own thread
  RankState state_ = RankState::between;
  Clock::time_point since_ = Clock::now();
  int64_t completed_ = 0;
  OpRecord current_, last_;
  const std::vector<int>* members_ = nullptr;
  std::vector<std::string> labels_;  // by world rank; may be empty

  // The watchdog thread's own (no lock needed after start).
  int64_t round_ = 0;  // the current question; also the payload its sends read
  std::vector<MPI_Request> reply_requests_;
  std::vector<RankStatus> reply_buffers_;
  std::atomic<int> failed_notices_{0};
  std::atomic<int> in_flight_{0};

  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::thread thread_;
};

// "all_reduce #3 'loss sums' on world" / "recv from rank 2 'stage 1 -> 2' on world".
std::string describe(const OpRecord& op);

// Renames op.call "x" to "wait x" (cut to fit), without allocating: a wait on a started call.
void name_wait(OpRecord& op);

}  // namespace graft::runtime::mpi
