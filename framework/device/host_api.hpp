// The host API the runtime lends to plugins (graft_host_api), the owner of graft_status
// objects, and the memory accounting behind host->alloc.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "graft/graft.h"

struct graft_status {
  int32_t code;
  std::string message;
};

namespace graft::runtime {

// The process's host API. CPU today; device-dispatched primitives look at each tensor's device.
const graft_host_api* host_api();

// Takes ownership of a status returned by a plugin or host call.
using StatusPtr = std::unique_ptr<graft_status>;
inline StatusPtr take(graft_status* s) { return StatusPtr(s); }

// Throws UserError (invalid argument, corrupt data, unsupported, IO) or Failure (the rest)
// with "who: message" when s is not NULL; frees s.
void throw_if_failed(graft_status* s, const std::string& who);

// Bytes currently allocated through host->alloc, and the peak since start.
size_t allocated_bytes();
size_t peak_allocated_bytes();

// Threads the CPU primitives (OpenBLAS, and host->parallel_for) may use; 0 means all cores.
void set_cpu_threads(int threads);
int cpu_threads();

// Log threshold for host->log.
void set_log_level(int level);

// The kernel OpenBLAS chose for this CPU ("Haswell", "SkylakeX", ...), for benchmark reports.
std::string blas_core_name();

}  // namespace graft::runtime
