// NCCL calls behind the Communicator interface, and the module's one exported entry. Each call
// is queued on its lane's stream after the compute stream's work so far and followed by an
// event that the compute stream (or a request's wait) and the watchdog use.
#include "comm/nccl/nccl_communicator.hpp"

#include <cstdlib>
#include <utility>

#include "comm/mpi/pooled.hpp"

namespace graft::runtime::nccl {
namespace {

bool on_gpu(const DLTensor& t) { return t.device.device_type == kDLCUDA; }

void check_same_side(const DLTensor& in, const DLTensor& out, const char* call, const char* what) {
  if (on_gpu(in) != on_gpu(out))
    throw UserError(comm_call(call, what) +
                    ": `in` and `out` must both be in GPU memory or both "
                    "in host memory (device types " +
                    std::to_string(in.device.device_type) + " and " +
                    std::to_string(out.device.device_type) + ")");
}

bool overlap(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  return a_bytes && b_bytes && pa < pb + b_bytes && pb < pa + a_bytes;
}

ncclRedOp_t nccl_op(graft_reduce_op op) { return op == GRAFT_REDUCE_AVG ? ncclAvg : ncclSum; }

// A started operation. wait() costs the host nothing: the compute stream waits for the event,
// and every reader of the tensor runs on the compute stream.
class NcclRequest final : public CommRequest, public mpi::Pooled<NcclRequest> {
 public:
  NcclRequest(Watchdog& watchdog, cudaStream_t compute, Event* done, const OpRecord& op)
      : watchdog_(watchdog), compute_(compute), done_(done), op_(op) {}
  ~NcclRequest() override {
    try {  // see CommRequest: later kernels must not touch the tensor before NCCL is done
      wait();
    } catch (const std::exception&) {  // a destructor cannot report it
    }
  }
  void wait() override {
    if (!done_) return;
    Event* e = std::exchange(done_, nullptr);
    const cudaError_t r = cudaStreamWaitEvent(compute_, e->event, 0);
    watchdog_.release(e);
    if (r != cudaSuccess)
      cuda_failed(r, "wait " + describe(op_), "cudaStreamWaitEvent", __FILE__, __LINE__);
  }

 private:
  Watchdog& watchdog_;
  cudaStream_t compute_;
  Event* done_;
  OpRecord op_;
};

}  // namespace

void nccl_failed(ncclResult_t code, const std::string& context, const char* call, const char* file,
                 int line) {
  std::string text = context + ": " + call + ": NCCL error: " + ncclGetErrorString(code);
  if (const char* last = ncclGetLastError(nullptr); last && *last)
    text += " (" + std::string(last) + ")";
  text += " (" + std::string(file) + ":" + std::to_string(line) + ")";
  if (code == ncclInvalidArgument || code == ncclInvalidUsage) throw UserError(text);
  throw Failure(text);
}

void cuda_failed(cudaError_t code, const std::string& context, const char* call, const char* file,
                 int line) {
  cudaGetLastError();  // a non-sticky error must not fail the next, unrelated check too
  throw Failure(context + ": " + call + ": CUDA error: " + cudaGetErrorString(code) + " (" + file +
                ":" + std::to_string(line) + ")");
}

NcclCommunicator::NcclCommunicator(Communicator& host, std::string name, const Options& options,
                                   Watchdog* watchdog)
    : host_(host),
      name_(std::move(name)),
      options_(options),
      watchdog_(watchdog),
      compute_(static_cast<cudaStream_t>(options.compute_stream)),
      rank_(host.rank()),
      size_(host.size()) {
  try {
    open(host);
  } catch (...) {
    close();
    throw;
  }
}

NcclCommunicator::~NcclCommunicator() { close(); }

void NcclCommunicator::open(Communicator& host) {
  const std::string context = "starting the NCCL communicator of " + name_;
  CUDA_CHECK(cudaSetDevice(options_.device_index), context);
  if (!watchdog_) {
    own_watchdog_ =
        std::make_unique<Watchdog>(options_.device_index, host.rank(), options_.timeout_s);
    watchdog_ = own_watchdog_.get();
  }
  // Rank 0 says whether it could make the ids, so the others fail with its reason rather
  // than wait for ids that never come.
  struct Ids {
    int32_t ok = 1;
    char error[236] = {};
    ncclUniqueId id[kLanes];
  } ids{};
  if (rank_ == 0)
    for (ncclUniqueId& id : ids.id)
      if (const ncclResult_t r = ncclGetUniqueId(&id); r != ncclSuccess) {
        ids.ok = 0;
        copy_text(ids.error, sizeof ids.error, ncclGetErrorString(r));
        break;
      }
  int64_t bytes = sizeof ids;
  DLTensor t{};
  t.data = &ids;
  t.device = DLDevice{kDLCPU, 0};
  t.ndim = 1;
  t.dtype = DLDataType{kDLUInt, 8, 1};
  t.shape = &bytes;
  host.broadcast(t, 0, "NCCL unique ids");
  if (!ids.ok)
    throw Failure(context +
                  ": rank 0 could not make NCCL's unique id (ncclGetUniqueId: " + ids.error + ")");

  // Communication kernels first when the GPU is full of backward's: they are short, and
  // the other ranks wait for them.
  int least = 0, greatest = 0;
  CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest), context);
  static const char* const kLaneNames[kLanes] = {"collectives", "upward", "downward"};
  for (int i = 0; i < kLanes; ++i) {
    CUDA_CHECK(cudaStreamCreateWithPriority(&lanes_[i].stream, cudaStreamNonBlocking, greatest),
               context);
    lanes_[i].name = name_ + " (" + kLaneNames[i] + ")";
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.commName = lanes_[i].name.c_str();
    // Kept only once made: NCCL leaves it undefined when the init fails.
    ncclComm_t comm = nullptr;
    NCCL_CHECK(ncclCommInitRankConfig(&comm, size_, ids.id[i], rank_, &config),
               context + " (" + kLaneNames[i] + ", rank " + std::to_string(rank_) + " of " +
                   std::to_string(size_) + ", GPU " + std::to_string(options_.device_index) + ")");
    lanes_[i].comm = comm;
    watchdog_->watch(comm, lanes_[i].name);
  }
  CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming), context);
}

void NcclCommunicator::close() noexcept {
  children_.clear();
  // Waits under the watchdog's eye: an operation that never ends is reported, not hung on.
  for (Lane& lane : lanes_)
    if (lane.stream) cudaStreamSynchronize(lane.stream);
  for (Lane& lane : lanes_) {
    if (lane.comm) {
      watchdog_->forget(lane.comm);
      ncclCommDestroy(lane.comm);
    }
    if (lane.stream) cudaStreamDestroy(lane.stream);
    lane.comm = nullptr;
    lane.stream = nullptr;
  }
  if (ready_) cudaEventDestroy(ready_);
  ready_ = nullptr;
}

OpRecord NcclCommunicator::collective(const char* call, const char* what) {
  OpRecord op;
  op.seq = ++collectives_;
  copy_text(op.call, sizeof op.call, call);
  copy_text(op.comm, sizeof op.comm, name_.c_str());
  copy_text(op.what, sizeof op.what, what);
  return op;
}

OpRecord NcclCommunicator::point_to_point(const char* call, int32_t peer, int32_t tag,
                                          const char* what) const {
  check_other_peer(peer, rank_, size_, call, what);
  if (tag < 0)
    throw UserError(comm_call(call, what) + ": tag " + std::to_string(tag) + " is negative");
  OpRecord op;
  op.peer = peer;
  copy_text(op.call, sizeof op.call, call);
  copy_text(op.comm, sizeof op.comm, name_.c_str());
  copy_text(op.what, sizeof op.what, what);
  return op;
}

template <typename F>
Event* NcclCommunicator::enqueue(Lane& lane, const OpRecord& op, int refs, F&& call) {
  CUDA_CHECK(cudaEventRecord(ready_, compute_), describe(op));
  CUDA_CHECK(cudaStreamWaitEvent(lane.stream, ready_, 0), describe(op));
  call(lane.comm, lane.stream);
  Event* done = watchdog_->event(refs);
  if (const cudaError_t r = cudaEventRecord(done->event, lane.stream); r != cudaSuccess) {
    for (int i = 0; i < refs; ++i) watchdog_->release(done);
    cuda_failed(r, describe(op), "cudaEventRecord", __FILE__, __LINE__);
  }
  watchdog_->queued(done, op);
  return done;
}

void NcclCommunicator::compute_waits(Event* done, const OpRecord& op) {
  const cudaError_t r = cudaStreamWaitEvent(compute_, done->event, 0);
  watchdog_->release(done);
  if (r != cudaSuccess) cuda_failed(r, describe(op), "cudaStreamWaitEvent", __FILE__, __LINE__);
}

std::unique_ptr<CommRequest> NcclCommunicator::request(Event* done, const OpRecord& op) {
  return std::make_unique<NcclRequest>(*watchdog_, compute_, done, op);
}

void NcclCommunicator::all_reduce(DLTensor& t, graft_reduce_op op, const char* what) {
  if (!on_gpu(t)) return host_.all_reduce(t, op, what);
  const size_t n = size_t(float32_elements(t, "all_reduce", what));
  void* data = tensor_bytes_at(t);
  const OpRecord record = collective("all_reduce", what);
  compute_waits(enqueue(collectives(), record, 1,
                        [&](ncclComm_t c, cudaStream_t s) {
                          NCCL_CHECK(ncclAllReduce(data, data, n, ncclFloat, nccl_op(op), c, s),
                                     describe(record));
                        }),
                record);
}

std::unique_ptr<CommRequest> NcclCommunicator::all_reduce_start(DLTensor& t, graft_reduce_op op,
                                                                const char* what) {
  if (!on_gpu(t)) return host_.all_reduce_start(t, op, what);
  const size_t n = size_t(float32_elements(t, "all_reduce_start", what));
  void* data = tensor_bytes_at(t);
  const OpRecord record = collective("all_reduce_start", what);
  return request(enqueue(collectives(), record, 2,
                         [&](ncclComm_t c, cudaStream_t s) {
                           NCCL_CHECK(ncclAllReduce(data, data, n, ncclFloat, nccl_op(op), c, s),
                                      describe(record));
                         }),
                 record);
}

void NcclCommunicator::all_reduce_f64(double* values, int64_t n, graft_reduce_op op,
                                      const char* what) {
  host_.all_reduce_f64(values, n, op, what);  // losses and metric sums live on the host
}

void NcclCommunicator::broadcast(DLTensor& t, int32_t root, const char* what) {
  if (!on_gpu(t)) return host_.broadcast(t, root, what);
  check_peer(root, size_, "broadcast", what);
  const size_t bytes = dense_bytes(t, "broadcast", what);
  void* data = tensor_bytes_at(t);
  const OpRecord record = collective("broadcast", what);
  compute_waits(enqueue(collectives(), record, 1,
                        [&](ncclComm_t c, cudaStream_t s) {
                          NCCL_CHECK(ncclBroadcast(data, data, bytes, ncclUint8, root, c, s),
                                     describe(record));
                        }),
                record);
}

void NcclCommunicator::all_gather(const DLTensor& in, DLTensor& out, const char* what) {
  gather(in, out, "all_gather", what, false);
}
std::unique_ptr<CommRequest> NcclCommunicator::all_gather_start(const DLTensor& in, DLTensor& out,
                                                                const char* what) {
  return gather(in, out, "all_gather_start", what, true);
}
void NcclCommunicator::reduce_scatter(const DLTensor& in, DLTensor& out, graft_reduce_op op,
                                      const char* what) {
  scatter(in, out, op, "reduce_scatter", what, false);
}
std::unique_ptr<CommRequest> NcclCommunicator::reduce_scatter_start(const DLTensor& in,
                                                                    DLTensor& out,
                                                                    graft_reduce_op op,
                                                                    const char* what) {
  return scatter(in, out, op, "reduce_scatter_start", what, true);
}

// Either form: `start` returns the request, else the compute stream waits and NULL returns.
std::unique_ptr<CommRequest> NcclCommunicator::gather(const DLTensor& in, DLTensor& out,
                                                      const char* call, const char* what,
                                                      bool start) {
  check_same_side(in, out, call, what);
  if (!on_gpu(in)) {
    if (start) return host_.all_gather_start(in, out, what);
    host_.all_gather(in, out, what);
    return nullptr;
  }
  const size_t part = dense_bytes(in, call, what);
  const size_t total = dense_bytes(out, call, what);
  if (total != part * size_t(size_))
    throw UserError(comm_call(call, what) + ": `out` holds " + std::to_string(total) +
                    " bytes, expected size() x `in` = " + std::to_string(size_) + " x " +
                    std::to_string(part));
  char* out_data = static_cast<char*>(tensor_bytes_at(out));
  const void* in_data = tensor_bytes_at(in);
  // NCCL gathers in place when `in` is this rank's part of `out`; other overlaps would be
  // read while written.
  if (in_data != out_data + part * size_t(rank_) && overlap(in_data, part, out_data, total))
    throw UserError(comm_call(call, what) + ": `in` overlaps `out` but is not this rank's part");
  const OpRecord record = collective(call, what);
  Event* done = enqueue(collectives(), record, start ? 2 : 1, [&](ncclComm_t c, cudaStream_t s) {
    NCCL_CHECK(ncclAllGather(in_data, out_data, part, ncclUint8, c, s), describe(record));
  });
  if (start) return request(done, record);
  compute_waits(done, record);
  return nullptr;
}

std::unique_ptr<CommRequest> NcclCommunicator::scatter(const DLTensor& in, DLTensor& out,
                                                       graft_reduce_op op, const char* call,
                                                       const char* what, bool start) {
  check_same_side(in, out, call, what);
  if (!on_gpu(in)) {
    if (start) return host_.reduce_scatter_start(in, out, op, what);
    host_.reduce_scatter(in, out, op, what);
    return nullptr;
  }
  const int64_t in_n = float32_elements(in, call, what);
  const int64_t out_n = float32_elements(out, call, what);
  if (in_n != out_n * size_)
    throw UserError(comm_call(call, what) + ": `in` holds " + std::to_string(in_n) +
                    " floats, expected size() x `out` = " + std::to_string(size_) + " x " +
                    std::to_string(out_n));
  float* out_data = static_cast<float*>(tensor_bytes_at(out));
  const float* in_data = static_cast<const float*>(tensor_bytes_at(in));
  // In place when `out` is this rank's part of `in` (NCCL's own in-place layout).
  if (out_data != in_data + out_n * rank_ &&
      overlap(in_data, size_t(in_n) * 4, out_data, size_t(out_n) * 4))
    throw UserError(comm_call(call, what) + ": `out` overlaps `in` but is not this rank's part");
  const OpRecord record = collective(call, what);
  Event* done = enqueue(collectives(), record, start ? 2 : 1, [&](ncclComm_t c, cudaStream_t s) {
    NCCL_CHECK(ncclReduceScatter(in_data, out_data, size_t(out_n), ncclFloat, nccl_op(op), c, s),
               describe(record));
  });
  if (start) return request(done, record);
  compute_waits(done, record);
  return nullptr;
}

void NcclCommunicator::send(const DLTensor& t, int32_t peer, int32_t tag, const char* what) {
  if (!on_gpu(t)) return host_.send(t, peer, tag, what);
  const OpRecord record = point_to_point("send", peer, tag, what);
  const size_t bytes = dense_bytes(t, "send", what);
  const void* data = tensor_bytes_at(t);
  // The compute stream waits, so a later kernel does not rewrite the buffer while it is sent.
  compute_waits(enqueue(lane_for(peer, true), record, 1,
                        [&](ncclComm_t c, cudaStream_t s) {
                          NCCL_CHECK(ncclSend(data, bytes, ncclUint8, peer, c, s),
                                     describe(record));
                        }),
                record);
}

void NcclCommunicator::recv(DLTensor& t, int32_t peer, int32_t tag, const char* what) {
  if (!on_gpu(t)) return host_.recv(t, peer, tag, what);
  const OpRecord record = point_to_point("recv", peer, tag, what);
  const size_t bytes = dense_bytes(t, "recv", what);
  void* data = tensor_bytes_at(t);
  compute_waits(enqueue(lane_for(peer, false), record, 1,
                        [&](ncclComm_t c, cudaStream_t s) {
                          NCCL_CHECK(ncclRecv(data, bytes, ncclUint8, peer, c, s),
                                     describe(record));
                        }),
                record);
}

std::unique_ptr<CommRequest> NcclCommunicator::send_start(const DLTensor& t, int32_t peer,
                                                          int32_t tag, const char* what) {
  if (!on_gpu(t)) return host_.send_start(t, peer, tag, what);
  const OpRecord record = point_to_point("send_start", peer, tag, what);
  const size_t bytes = dense_bytes(t, "send_start", what);
  const void* data = tensor_bytes_at(t);
  return request(enqueue(lane_for(peer, true), record, 2,
                         [&](ncclComm_t c, cudaStream_t s) {
                           NCCL_CHECK(ncclSend(data, bytes, ncclUint8, peer, c, s),
                                      describe(record));
                         }),
                 record);
}

std::unique_ptr<CommRequest> NcclCommunicator::recv_start(DLTensor& t, int32_t peer, int32_t tag,
                                                          const char* what) {
  if (!on_gpu(t)) return host_.recv_start(t, peer, tag, what);
  const OpRecord record = point_to_point("recv_start", peer, tag, what);
  const size_t bytes = dense_bytes(t, "recv_start", what);
  void* data = tensor_bytes_at(t);
  return request(enqueue(lane_for(peer, false), record, 2,
                         [&](ncclComm_t c, cudaStream_t s) {
                           NCCL_CHECK(ncclRecv(data, bytes, ncclUint8, peer, c, s),
                                      describe(record));
                         }),
                 record);
}

// Every rank's host reaching a point; the GPU work queued before it is ordered by events,
// which a host barrier would not add to.
void NcclCommunicator::barrier(const char* what) { host_.barrier(what); }

Communicator& NcclCommunicator::split(int32_t color, int32_t key, const std::string& name) {
  Communicator& child_host = host_.split(color, key, name);
  ++splits_;
  const std::string child_name = !name.empty() ? name
                                               : name_ + "/split" + std::to_string(splits_) +
                                                     "[color " + std::to_string(color) + "]";
  children_.push_back(
      std::make_unique<NcclCommunicator>(child_host, child_name, options_, watchdog_));
  return *children_.back();
}

}  // namespace graft::runtime::nccl

extern "C" __attribute__((visibility("default"))) graft::runtime::Communicator*
graft_comm_nccl_start(uint32_t version, graft::runtime::Communicator* host,
                      const graft::runtime::nccl::Options* options, std::string* error) {
  if (version != GRAFT_COMM_NCCL_MODULE_VERSION) {
    *error = "built for another graft (module version " +
             std::to_string(GRAFT_COMM_NCCL_MODULE_VERSION) + ", graft expects " +
             std::to_string(version) + "); rebuild graft";
    return nullptr;
  }
  int count = 0;
  if (const cudaError_t r = cudaGetDeviceCount(&count); r != cudaSuccess || count == 0) {
    *error = std::string("no CUDA device is present (cudaGetDeviceCount: ") +
             (r != cudaSuccess ? cudaGetErrorString(r) : "the driver sees 0 GPUs") + ")";
    cudaGetLastError();
    return nullptr;
  }
  if (!host || !options || !options->compute_stream) {
    *error = "no host communicator or compute stream was given (start the CUDA device first)";
    return nullptr;
  }
  // [run] deterministic. NCCL picks among its algorithms (ring, tree, NVLS in the NVSwitch,
  // CollNet in the network) by message size and topology, and each adds the ranks' values in
  // its own order: another bucket size or another machine's tuning would change the bits of a
  // sum. The ring adds each element in one fixed order for a given world and machine, so runs
  // repeat bit for bit. NCCL reads the variable once, when the process's first communicator
  // starts; a value the user set wins.
  if (options->deterministic && !std::getenv("NCCL_ALGO")) setenv("NCCL_ALGO", "Ring", 1);
  try {
    return new graft::runtime::nccl::NcclCommunicator(*host, "world", *options, nullptr);
  } catch (const std::exception& e) {
    *error = e.what();
    return nullptr;
  }
}
