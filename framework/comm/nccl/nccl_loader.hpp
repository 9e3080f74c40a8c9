// The NCCL communicator of a distributed CUDA run, opened from libgraft_comm_nccl.so only then:
// CPU runs and single-GPU runs never load NCCL.
#pragma once

#include <memory>

#include "comm/communicator.hpp"
#include "comm/nccl/module.hpp"

namespace graft::runtime {

// device_index and compute_stream: the started CUDA device's (cuda_device()->stream());
// deterministic: [run] deterministic; timeout_s: [parallel] timeout_s.
using NcclOptions = nccl::Options;

// Whether this build made the NCCL module (CUDA and NCCL were found when it was configured).
bool nccl_built();

// Collective over `host_world`, which must outlive the result: every rank calls it. Tensors in
// CUDA memory then go through NCCL, host tensors and all_reduce_f64 to `host_world`. Throws
// UserError naming the reason and the fix: a build without NCCL, a module that does not load,
// no GPU, or NCCL failing to start. GRAFT_NCCL_MODULE, when set, is the only path tried.
std::unique_ptr<Communicator> start_nccl(Communicator& host_world, const NcclOptions& options);

}  // namespace graft::runtime
