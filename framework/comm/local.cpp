// The world-of-one communicator. It still checks every argument the MPI one checks, so a
// strategy's misuse shows up in a plain single-process test, not first under mpirun.
#include "comm/local.hpp"

#include <cstring>

namespace graft::runtime {
namespace {

class DoneRequest final : public CommRequest {
 public:
  void wait() override {}
};

[[noreturn]] void no_peer(const char* call, int32_t peer, const char* what) {
  throw UserError(comm_call(call, what) + " with rank " + std::to_string(peer) +
                  ": this is a world of one rank (graft was not started by mpirun), and a rank "
                  "cannot exchange messages with itself; run the job with mpirun -np N (N > 1)");
}

void copy_parts(const DLTensor& in, DLTensor& out, const char* call, const char* what) {
  const size_t in_bytes = dense_host_bytes(in, call, what);
  const size_t out_bytes = dense_host_bytes(out, call, what);
  if (in_bytes != out_bytes)
    throw UserError(comm_call(call, what) + ": `out` holds " + std::to_string(out_bytes) +
                    " bytes, expected " + std::to_string(in_bytes) + " (size() = 1 part of " +
                    std::to_string(in_bytes) + ")");
  if (in_bytes && tensor_bytes_at(in) != tensor_bytes_at(out))
    std::memmove(tensor_bytes_at(out), tensor_bytes_at(in), in_bytes);
}

}  // namespace

// One rank: a sum or an average of one part is that part, whichever the op (checked where
// it crossed the C table).
void LocalCommunicator::all_reduce(DLTensor& t, graft_reduce_op, const char* what) {
  float32_count(t, "all_reduce", what);
}

std::unique_ptr<CommRequest> LocalCommunicator::all_reduce_start(DLTensor& t, graft_reduce_op op,
                                                                 const char* what) {
  all_reduce(t, op, what);
  return std::make_unique<DoneRequest>();
}

void LocalCommunicator::all_reduce_f64(double*, int64_t n, graft_reduce_op, const char* what) {
  if (n < 0) throw UserError(comm_call("all_reduce_f64", what) + ": negative count");
}

void LocalCommunicator::broadcast(DLTensor& t, int32_t root, const char* what) {
  check_peer(root, 1, "broadcast", what);
  dense_host_bytes(t, "broadcast", what);
}

void LocalCommunicator::all_gather(const DLTensor& in, DLTensor& out, const char* what) {
  copy_parts(in, out, "all_gather", what);
}

void LocalCommunicator::reduce_scatter(const DLTensor& in, DLTensor& out, graft_reduce_op,
                                       const char* what) {
  float32_count(in, "reduce_scatter", what);
  float32_count(out, "reduce_scatter", what);
  copy_parts(in, out, "reduce_scatter", what);
}

std::unique_ptr<CommRequest> LocalCommunicator::reduce_scatter_start(const DLTensor& in,
                                                                     DLTensor& out,
                                                                     graft_reduce_op op,
                                                                     const char* what) {
  reduce_scatter(in, out, op, what);
  return std::make_unique<DoneRequest>();
}

std::unique_ptr<CommRequest> LocalCommunicator::all_gather_start(const DLTensor& in, DLTensor& out,
                                                                 const char* what) {
  all_gather(in, out, what);
  return std::make_unique<DoneRequest>();
}

void LocalCommunicator::send(const DLTensor&, int32_t peer, int32_t, const char* what) {
  no_peer("send", peer, what);
}
void LocalCommunicator::recv(DLTensor&, int32_t peer, int32_t, const char* what) {
  no_peer("recv", peer, what);
}
std::unique_ptr<CommRequest> LocalCommunicator::send_start(const DLTensor&, int32_t peer, int32_t,
                                                           const char* what) {
  no_peer("send_start", peer, what);
}
std::unique_ptr<CommRequest> LocalCommunicator::recv_start(DLTensor&, int32_t peer, int32_t,
                                                           const char* what) {
  no_peer("recv_start", peer, what);
}

Communicator& LocalCommunicator::split(int32_t, int32_t, const std::string&) {
  children_.push_back(std::make_unique<LocalCommunicator>());
  return *children_.back();
}

}  // namespace graft::runtime
