// The communicator on host memory over MPI. Blocking calls stay blocking MPI calls (full speed,
// Open MPI's tuned algorithms); the watchdog is told what each one waits in, and its own
// thread ends the job when a wait outlives the timeout.
#pragma once

#include <mpi.h>

#include <string>
#include <vector>

#include "comm/communicator.hpp"
#include "comm/mpi/reducer.hpp"
#include "comm/mpi/watchdog.hpp"

namespace graft::runtime::mpi {

// Throws Failure with the call, file:line and MPI's own message when an MPI call fails.
// `context` says which graft call it served ("all_reduce #3 'loss' on world").
void check(int code, const std::string& context, const char* file, int line);
// `context` is evaluated only on failure: a training step's calls build no strings.
#define MPI_CHECK(call, context)                                                    \
  do {                                                                              \
    if (const int mpi_check_code_ = (call); mpi_check_code_ != MPI_SUCCESS)         \
      ::graft::runtime::mpi::check(mpi_check_code_, (context), __FILE__, __LINE__); \
  } while (0)

class MpiCommunicator final : public Communicator {
 public:
  // Takes ownership of `comm`; `name` is what reports call it ("world", "world/split1[color 0]").
  MpiCommunicator(MPI_Comm comm, std::string name, Watchdog& watchdog);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int32_t rank() const override { return rank_; }
  int32_t size() const override { return size_; }
  void all_reduce(DLTensor& t, graft_reduce_op op, const char* what) override;
  std::unique_ptr<CommRequest> all_reduce_start(DLTensor& t, graft_reduce_op op,
                                                const char* what) override;
  void all_reduce_f64(double* values, int64_t n, graft_reduce_op op, const char* what) override;
  void broadcast(DLTensor& t, int32_t root, const char* what) override;
  void all_gather(const DLTensor& in, DLTensor& out, const char* what) override;
  void reduce_scatter(const DLTensor& in, DLTensor& out, graft_reduce_op op,
                      const char* what) override;
  std::unique_ptr<CommRequest> reduce_scatter_start(const DLTensor& in, DLTensor& out,
                                                    graft_reduce_op op, const char* what) override;
  std::unique_ptr<CommRequest> all_gather_start(const DLTensor& in, DLTensor& out,
                                                const char* what) override;
  void send(const DLTensor& t, int32_t peer, int32_t tag, const char* what) override;
  void recv(DLTensor& t, int32_t peer, int32_t tag, const char* what) override;
  std::unique_ptr<CommRequest> send_start(const DLTensor& t, int32_t peer, int32_t tag,
                                          const char* what) override;
  std::unique_ptr<CommRequest> recv_start(DLTensor& t, int32_t peer, int32_t tag,
                                          const char* what) override;
  void barrier(const char* what) override;
  Communicator& split(int32_t color, int32_t key, const std::string& name = "") override;

  Watchdog& watchdog() { return watchdog_; }
  const std::vector<int>& members() const { return members_; }

 private:
  // The watchdog's record of the next collective (numbered) or point-to-point call.
  OpRecord collective(const char* call, const char* what);
  OpRecord point_to_point(const char* call, int32_t peer, int32_t tag, const char* what);
  void check_tag(int32_t tag, const char* call, const char* what) const;
  std::unique_ptr<CommRequest> post_recv(DLTensor& t, int32_t peer, int32_t tag, const char* what,
                                         bool blocking);

  MPI_Comm comm_;
  std::string name_;
  Watchdog& watchdog_;
  int rank_ = 0, size_ = 1;
  int tag_upper_bound_ = 32767;
  std::vector<int> members_;  // world rank of each rank of this communicator
  int64_t collectives_ = 0;   // started so far: every member counts the same
  int64_t splits_ = 0;
  std::vector<std::unique_ptr<MpiCommunicator>> children_;
  std::unique_ptr<Reducer> reducer_;  // runs all_reduce_start when MPI allows threads
};

}  // namespace graft::runtime::mpi
