// The communicator on GPU memory: NCCL for tensors in CUDA memory, the job's host communicator
// (MPI, or the local world of one) for everything else. Its work runs on streams of its own,
// ordered against the compute stream by events, so a started all-reduce of gradient buckets
// runs while backward goes on computing.
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.hpp"
#include "comm/nccl/module.hpp"
#include "comm/nccl/watchdog.hpp"

namespace graft::runtime::nccl {

// Throw with the call, `context` ("all_reduce #3 'loss' on world"), the library's message and
// file:line: UserError for NCCL's invalid argument / usage, Failure otherwise.
[[noreturn]] void nccl_failed(ncclResult_t code, const std::string& context, const char* call,
                              const char* file, int line);
[[noreturn]] void cuda_failed(cudaError_t code, const std::string& context, const char* call,
                              const char* file, int line);
// `context` is evaluated only on failure: a training step's calls build no strings.
#define NCCL_CHECK(call, context)                                                                  \
  do {                                                                                             \
    if (const ncclResult_t nccl_check_code_ = (call); nccl_check_code_ != ncclSuccess)             \
      ::graft::runtime::nccl::nccl_failed(nccl_check_code_, (context), #call, __FILE__, __LINE__); \
  } while (0)
#define CUDA_CHECK(call, context)                                                                  \
  do {                                                                                             \
    if (const cudaError_t cuda_check_code_ = (call); cuda_check_code_ != cudaSuccess)              \
      ::graft::runtime::nccl::cuda_failed(cuda_check_code_, (context), #call, __FILE__, __LINE__); \
  } while (0)

// NCCL has no tags: messages between two ranks match in the order they are sent, which is how
// graft's strategies use them (tags are still checked to be >= 0). NCCL cannot check that a
// receive is as long as its send either; the strategies size both from the same plan.
class NcclCommunicator final : public Communicator {
 public:
  // Collective over `host` (the group's host communicator, which outlives this one): rank 0
  // makes the NCCL unique ids and broadcasts them over it. `watchdog` NULL: this is the world,
  // which makes and owns the watchdog its splits share.
  NcclCommunicator(Communicator& host, std::string name, const Options& options,
                   Watchdog* watchdog);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int32_t rank() const override { return rank_; }
  int32_t size() const override { return size_; }
  void all_reduce(DLTensor& t, graft_reduce_op op, const char* what) override;
  std::unique_ptr<CommRequest> all_reduce_start(DLTensor& t, graft_reduce_op op,
                                                const char* what) override;
  void all_reduce_f64(double* values, int64_t n, graft_reduce_op op, const char* what) override;
  void broadcast(DLTensor& t, int32_t root, const char* what) override;
  void all_gather(const DLTensor& in, DLTensor& out, const char* what) override;
  std::unique_ptr<CommRequest> all_gather_start(const DLTensor& in, DLTensor& out,
                                                const char* what) override;
  std::unique_ptr<CommRequest> reduce_scatter_start(const DLTensor& in, DLTensor& out,
                                                    graft_reduce_op op, const char* what) override;
  void reduce_scatter(const DLTensor& in, DLTensor& out, graft_reduce_op op,
                      const char* what) override;
  void send(const DLTensor& t, int32_t peer, int32_t tag, const char* what) override;
  void recv(DLTensor& t, int32_t peer, int32_t tag, const char* what) override;
  std::unique_ptr<CommRequest> send_start(const DLTensor& t, int32_t peer, int32_t tag,
                                          const char* what) override;
  std::unique_ptr<CommRequest> recv_start(DLTensor& t, int32_t peer, int32_t tag,
                                          const char* what) override;
  void barrier(const char* what) override;
  Communicator& split(int32_t color, int32_t key, const std::string& name = "") override;

 private:
  // An NCCL communicator and the stream its kernels run on.
  struct Lane {
    ncclComm_t comm = nullptr;
    cudaStream_t stream = nullptr;
    std::string name;  // "world (upward)": NCCL's logs and the watchdog's reports
  };
  // NCCL runs one communicator's kernels one after another, and a send's kernel ends only
  // when its receive ran. Were sends and receives one queue, two stages exchanging
  // activations and gradients (1F1B) would each wait in a send for a receive queued behind
  // the other's send. So point-to-point traffic has two lanes by direction, `upward` (sends
  // to higher ranks, receives from lower) and `downward`, and collectives a third: between
  // two ranks a lane carries messages one way only, in order, and the kernels of different
  // lanes run side by side (each takes a few SMs).
  static constexpr int kLanes = 3;
  Lane& collectives() { return lanes_[0]; }
  Lane& lane_for(int32_t peer, bool sending) {
    return lanes_[(sending ? peer > rank_ : peer < rank_) ? 1 : 2];
  }

  void open(Communicator& host);
  void close() noexcept;
  OpRecord collective(const char* call, const char* what);
  OpRecord point_to_point(const char* call, int32_t peer, int32_t tag, const char* what) const;
  // Queues `call(comm, stream)` on `lane` after the compute stream's work so far, records its
  // completion event (with `refs` references: the watchdog's, and a request's when started).
  template <typename F>
  Event* enqueue(Lane& lane, const OpRecord& op, int refs, F&& call);
  // The compute stream's later work waits for `done` (a blocking call's end).
  void compute_waits(Event* done, const OpRecord& op);
  std::unique_ptr<CommRequest> request(Event* done, const OpRecord& op);
  std::unique_ptr<CommRequest> gather(const DLTensor& in, DLTensor& out, const char* call,
                                      const char* what, bool start);
  std::unique_ptr<CommRequest> scatter(const DLTensor& in, DLTensor& out, graft_reduce_op op,
                                       const char* call, const char* what, bool start);

  std::unique_ptr<Watchdog> own_watchdog_;  // the world's; declared first, so destroyed last
  Communicator& host_;
  std::string name_;
  Options options_;
  Watchdog* watchdog_;
  cudaStream_t compute_;
  int32_t rank_ = 0, size_ = 1;
  Lane lanes_[kLanes];
  cudaEvent_t ready_ = nullptr;  // recorded on the compute stream before each operation
  int64_t collectives_ = 0, splits_ = 0;
  std::vector<std::unique_ptr<NcclCommunicator>> children_;
};

}  // namespace graft::runtime::nccl
