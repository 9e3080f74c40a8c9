// The MPI job and the module's one exported entry: MPI_Init_thread when graft starts under
// mpirun, the end-of-job barrier and MPI_Finalize when it ends, MPI_Abort when a rank fails alone.
#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "comm/mpi/module.hpp"
#include "comm/mpi/mpi_communicator.hpp"

namespace graft::runtime::mpi {
namespace {

// How long a failed rank waits to hear that the others failed too before aborting the job.
// Ranks given the same bad config fail within milliseconds of each other.
constexpr double kFailureGraceSeconds = 2.0;

// The live job's world rank and size, for the exit hook; -1 once the job ended properly.
// Process-wide because exit() is: MPI itself is initialised once per process.
std::atomic<int> live_rank{-1};
std::atomic<int> live_size{0};

// A rank that calls exit() mid-job (a plugin, a library) never reaches MPI_Finalize; mpirun
// then stops the others, but its own message names no cause. This says which rank and why.
void on_exit_during_job() {
  const int rank = live_rank.load();
  if (rank < 0) return;
  std::fprintf(stderr,
               "graft: rank %d of %d is exiting while the job runs (exit() was called "
               "before the job ended); mpirun stops the other ranks\n",
               rank, live_size.load());
  std::fflush(stderr);
}

class MpiJob final : public Job {
 public:
  MpiJob(double timeout_s, bool threads_ok)
      : watchdog_(std::make_unique<Watchdog>(timeout_s, threads_ok)) {
    // Strategies get their own duplicate of the world: the watchdog's messages and any a
    // library might send on MPI_COMM_WORLD never match theirs.
    MPI_Comm comm = MPI_COMM_NULL;
    MPI_Comm_dup(MPI_COMM_WORLD, &comm);
    world_ = std::make_unique<MpiCommunicator>(comm, "world", *watchdog_);
    live_size = world_->size();
    live_rank = world_->rank();
    static const bool hooked = std::atexit(on_exit_during_job) == 0;
    (void)hooked;
  }

  ~MpiJob() override {
    // A rank that finishes first waits here, watched, for the others: one that dies or stalls
    // in its last steps is reported instead of leaving this rank inside MPI_Finalize forever.
    try {
      world_->barrier("end of job");
    } catch (const std::exception& e) {
      std::fprintf(stderr, "graft: rank %d: %s\n", world_->rank(), e.what());
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    world_.reset();
    watchdog_.reset();
    MPI_Finalize();
    live_rank = -1;
  }

  Communicator& world() override { return *world_; }
  bool distributed() const override { return true; }
  void set_timeout(double seconds) override { watchdog_->set_timeout(seconds); }
  double timeout() const override { return watchdog_->timeout(); }
  void set_rank_labels(std::vector<std::string> labels) override {
    watchdog_->set_rank_labels(std::move(labels));
  }

  int fail(int exit_code) override {
    std::fflush(stdout);
    std::fflush(stderr);
    // When every rank failed (each printed its error), the job ends cleanly with the code;
    // otherwise the others may be waiting for this rank, and only an abort frees them.
    if (watchdog_->agree_failed(kFailureGraceSeconds)) return exit_code;
    MPI_Abort(MPI_COMM_WORLD, exit_code);
    return exit_code;  // not reached
  }

 private:
  std::unique_ptr<Watchdog> watchdog_;
  std::unique_ptr<MpiCommunicator> world_;
};

}  // namespace
}  // namespace graft::runtime::mpi

extern "C" __attribute__((visibility("default"))) graft::runtime::Job* graft_comm_mpi_start(
    uint32_t version, double timeout_s, std::string* error) {
  if (version != GRAFT_COMM_MPI_MODULE_VERSION) {
    *error = "built for another graft (module version " +
             std::to_string(GRAFT_COMM_MPI_MODULE_VERSION) + ", graft expects " +
             std::to_string(version) + "); rebuild graft";
    return nullptr;
  }
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) {
    *error = "MPI is already initialised in this process (start_job is once per process)";
    return nullptr;
  }
  int provided = MPI_THREAD_SINGLE;
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS) {
    *error = "MPI_Init_thread failed";
    return nullptr;
  }
  const bool threads_ok = provided >= MPI_THREAD_MULTIPLE;
  if (!threads_ok) {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0)
      std::fprintf(stderr,
                   "graft: warning: this MPI does not grant MPI_THREAD_MULTIPLE; the "
                   "watchdog can still end a stuck job but cannot ask the other ranks "
                   "where they are\n");
  }
  try {
    return new graft::runtime::mpi::MpiJob(timeout_s, threads_ok);
  } catch (const std::exception& e) {
    *error = e.what();
    return nullptr;
  }
}
