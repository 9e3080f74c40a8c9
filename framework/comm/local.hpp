// The communicator of a world of one: what `graft train` uses without mpirun, so a strategy
// written for N ranks runs unchanged (and is tested) on one.
#pragma once

#include <vector>

#include "comm/communicator.hpp"

namespace graft::runtime {

// Reductions and broadcasts are no-ops, gathers and scatters copies; send and recv have no peer
// and are errors that say so, since a rank talking to itself would deadlock under MPI too.
class LocalCommunicator final : public Communicator {
 public:
  int32_t rank() const override { return 0; }
  int32_t size() const override { return 1; }
  void all_reduce(DLTensor& t, graft_reduce_op op, const char* what) override;
  std::unique_ptr<CommRequest> all_reduce_start(DLTensor& t, graft_reduce_op op,
                                                const char* what) override;
  void all_reduce_f64(double* values, int64_t n, graft_reduce_op op, const char* what) override;
  void broadcast(DLTensor& t, int32_t root, const char* what) override;
  void all_gather(const DLTensor& in, DLTensor& out, const char* what) override;
  std::unique_ptr<CommRequest> reduce_scatter_start(const DLTensor& in, DLTensor& out,
                                                    graft_reduce_op op, const char* what) override;
  std::unique_ptr<CommRequest> all_gather_start(const DLTensor& in, DLTensor& out,
                                                const char* what) override;
  void reduce_scatter(const DLTensor& in, DLTensor& out, graft_reduce_op op,
                      const char* what) override;
  void send(const DLTensor& t, int32_t peer, int32_t tag, const char* what) override;
  void recv(DLTensor& t, int32_t peer, int32_t tag, const char* what) override;
  std::unique_ptr<CommRequest> send_start(const DLTensor& t, int32_t peer, int32_t tag,
                                          const char* what) override;
  std::unique_ptr<CommRequest> recv_start(DLTensor& t, int32_t peer, int32_t tag,
                                          const char* what) override;
  void barrier(const char*) override {}
  Communicator& split(int32_t color, int32_t key, const std::string& name = "") override;

 private:
  std::vector<std::unique_ptr<LocalCommunicator>> children_;
};

}  // namespace graft::runtime
