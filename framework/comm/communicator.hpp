// How the ranks of a job exchange tensors: the C++ side of graft_comm_api (graft/comm.h).
// Implementations: `local` (a world of one) and `mpi` (host memory, a module loaded under mpirun).
#pragma once

#include <climits>
#include <cstdint>
#include <memory>
#include <string>

#include "graft/comm.h"
#include "util/errors.hpp"

namespace graft::runtime {

// An operation started by a *_start call; wait() ends it. Destroying one that was never waited
// for waits for it, since MPI may still write into (or read from) the caller's tensor.
class CommRequest {
 public:
  virtual ~CommRequest() = default;
  virtual void wait() = 0;
};

// Every method but send/recv is collective: all ranks of the communicator call it in the same
// order with matching sizes. Misuse (a wrong dtype, a peer out of range, mismatched buffer
// sizes) throws UserError naming the call and `what`; a failure of the transport throws Failure.
// A call waiting longer than the job's timeout does not return: the watchdog ends the job.
// One thread drives a communicator: collectives are matched by the order they are called in.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int32_t rank() const = 0;
  virtual int32_t size() const = 0;

  // float32, in place.
  virtual void all_reduce(DLTensor& t, graft_reduce_op op, const char* what) = 0;
  virtual std::unique_ptr<CommRequest> all_reduce_start(DLTensor& t, graft_reduce_op op,
                                                        const char* what) = 0;
  virtual void all_reduce_f64(double* values, int64_t n, graft_reduce_op op, const char* what) = 0;
  // Any dtype: these move bytes.
  virtual void broadcast(DLTensor& t, int32_t root, const char* what) = 0;
  virtual void all_gather(const DLTensor& in, DLTensor& out, const char* what) = 0;
  // float32: `in` holds size() equal parts, `out` one part.
  virtual void reduce_scatter(const DLTensor& in, DLTensor& out, graft_reduce_op op,
                              const char* what) = 0;
  // Started forms of the two above (ZeRO). reduce_scatter_start's `out` may be this rank's own
  // part of `in` (the rest of `in` is then left as it was or scratch, never read again), and
  // all_gather_start's `in` this rank's own part of `out`.
  virtual std::unique_ptr<CommRequest> reduce_scatter_start(const DLTensor& in, DLTensor& out,
                                                            graft_reduce_op op,
                                                            const char* what) = 0;
  virtual std::unique_ptr<CommRequest> all_gather_start(const DLTensor& in, DLTensor& out,
                                                        const char* what) = 0;
  virtual void send(const DLTensor& t, int32_t peer, int32_t tag, const char* what) = 0;
  virtual void recv(DLTensor& t, int32_t peer, int32_t tag, const char* what) = 0;
  virtual std::unique_ptr<CommRequest> send_start(const DLTensor& t, int32_t peer, int32_t tag,
                                                  const char* what) = 0;
  virtual std::unique_ptr<CommRequest> recv_start(DLTensor& t, int32_t peer, int32_t tag,
                                                  const char* what) = 0;
  virtual void barrier(const char* what) = 0;
  // Ranks passing the same color form a new communicator ordered by key. The parent owns it
  // (the C API promises strategies that the host frees it), so it lives as long as the parent.
  // `name` is what the watchdog calls it ("data group"; the same on every member); empty:
  // "<parent>/split<n>[color c]".
  virtual Communicator& split(int32_t color, int32_t key, const std::string& name = "") = 0;
};

// The C table lent to strategies, and the handles it passes around. graft_comm and
// graft_request are never defined: a handle is the object's address.
const graft_comm_api* comm_api();
inline graft_comm* comm_handle(Communicator& c) { return reinterpret_cast<graft_comm*>(&c); }
inline Communicator& from_handle(graft_comm* c) { return *reinterpret_cast<Communicator*>(c); }

// --- Checks shared by every implementation (inline: the MPI module links no runtime code) ---

// How reports name a communicator after "on": "world", or "the data group" for a group.
inline std::string comm_label(const std::string& name) {
  const std::string group = " group";
  const bool is_group = name.size() > group.size() &&
                        name.compare(name.size() - group.size(), group.size(), group) == 0;
  return is_group ? "the " + name : name;
}

inline std::string comm_call(const char* call, const char* what) {
  return what && *what ? std::string(call) + " '" + what + "'" : std::string(call);
}

// The bytes of a dense tensor, in whatever memory; throws naming the call otherwise. Strided
// views are refused rather than packed: a strategy that passes one has a bug we should show it.
inline size_t dense_bytes(const DLTensor& t, const char* call, const char* what) {
  if (t.dtype.lanes != 1 || t.dtype.bits % 8 != 0)
    throw UserError(comm_call(call, what) + ": unsupported dtype (bits " +
                    std::to_string(t.dtype.bits) + ", lanes " + std::to_string(t.dtype.lanes) +
                    ")");
  int64_t n = 1, expected_stride = 1;
  for (int i = t.ndim - 1; i >= 0; --i) {
    if (t.shape[i] < 0) throw UserError(comm_call(call, what) + ": negative dimension");
    if (t.strides && t.shape[i] > 1 && t.strides[i] != expected_stride)
      throw UserError(comm_call(call, what) + ": the tensor is not contiguous");
    expected_stride *= t.shape[i];
    n *= t.shape[i];
  }
  if (n > 0 && !t.data) throw UserError(comm_call(call, what) + ": the tensor has no data");
  return static_cast<size_t>(n) * (t.dtype.bits / 8);
}

// The MPI and local communicators move host memory only.
inline void require_host(const DLTensor& t, const char* call, const char* what) {
  if (t.device.device_type != kDLCPU && t.device.device_type != kDLCUDAHost)
    throw UserError(comm_call(call, what) + ": the tensor is not in host memory (device type " +
                    std::to_string(t.device.device_type) +
                    "); this communicator moves host memory only");
}

inline size_t dense_host_bytes(const DLTensor& t, const char* call, const char* what) {
  require_host(t, call, what);
  return dense_bytes(t, call, what);
}

inline void* tensor_bytes_at(const DLTensor& t) {
  return static_cast<char*>(t.data) + t.byte_offset;
}

// Element count of a dense float32 tensor in any memory, for reductions.
inline int64_t float32_elements(const DLTensor& t, const char* call, const char* what) {
  const size_t bytes = dense_bytes(t, call, what);
  if (t.dtype.code != kDLFloat || t.dtype.bits != 32)
    throw UserError(comm_call(call, what) + ": reductions take float32 tensors (got code " +
                    std::to_string(t.dtype.code) + ", bits " + std::to_string(t.dtype.bits) + ")");
  return static_cast<int64_t>(bytes / 4);
}

inline int64_t float32_count(const DLTensor& t, const char* call, const char* what) {
  require_host(t, call, what);
  return float32_elements(t, call, what);
}

// A reduce op as it crosses the C table (an int32_t from a plugin): checked there, since a
// graft_reduce_op holding any other value would be undefined behaviour in C++.
inline graft_reduce_op checked_reduce_op(int32_t op, const char* call, const char* what) {
  if (op != GRAFT_REDUCE_SUM && op != GRAFT_REDUCE_AVG)
    throw UserError(comm_call(call, what) + ": unknown reduce op " + std::to_string(op) +
                    " (GRAFT_REDUCE_SUM or GRAFT_REDUCE_AVG)");
  return static_cast<graft_reduce_op>(op);
}

inline void check_peer(int32_t peer, int32_t size, const char* call, const char* what) {
  if (peer < 0 || peer >= size)
    throw UserError(comm_call(call, what) + ": rank " + std::to_string(peer) +
                    " is outside this communicator of " + std::to_string(size) + " rank(s)");
}

// Send and recv name another rank: to itself a rank would wait for its own message forever.
inline void check_other_peer(int32_t peer, int32_t rank, int32_t size, const char* call,
                             const char* what) {
  check_peer(peer, size, call, what);
  if (peer == rank)
    throw UserError(comm_call(call, what) + ": rank " + std::to_string(peer) +
                    " is this rank itself; send and recv exchange data with another rank");
}

}  // namespace graft::runtime
