// The contract between the runtime and libgraft_comm_nccl.so, the NCCL communicator built as a
// module and opened only when a CUDA run is distributed: CPU runs never load NCCL.
#pragma once

#include <cstdint>
#include <string>

#include "comm/communicator.hpp"

// Bumped whenever Communicator, Options or this entry change, so a stale module is refused
// instead of called through a different vtable.
#define GRAFT_COMM_NCCL_MODULE_VERSION 2u
#define GRAFT_COMM_NCCL_ENTRY "graft_comm_nccl_start"
#define GRAFT_COMM_NCCL_LIBRARY "libgraft_comm_nccl.so"

namespace graft::runtime::nccl {

struct Options {
  int32_t device_index = 0;        // the GPU the CUDA device was started on
  void* compute_stream = nullptr;  // cudaStream_t of that device: kernels and copies run on it
  bool deterministic = false;      // [run] deterministic: NCCL's ring algorithm (NCCL_ALGO=Ring)
  double timeout_s = 300;          // [parallel] timeout_s: an operation still running ends the job
};

}  // namespace graft::runtime::nccl

extern "C" {
// Collective over `host` (every rank calls it): returns the communicator (owned by the caller,
// and outlived by `host`), or NULL with *error set. Tensors in CUDA memory go through NCCL,
// everything else to `host`.
typedef graft::runtime::Communicator* (*graft_comm_nccl_start_fn)(
    uint32_t version, graft::runtime::Communicator* host,
    const graft::runtime::nccl::Options* options, std::string* error);
}
