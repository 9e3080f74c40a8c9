// The process's CUDA device, opened from libgraft_device_cuda.so when a config asks for
// [run] device = "cuda". The host API sends tensors in CUDA memory to it.
#pragma once

#include <string>

#include "device/cuda/module.hpp"

namespace graft::runtime {

// Whether this build made the CUDA module (nvcc was found, GRAFT_CUDA not OFF) and where.
bool cuda_built();

// Starts the device once per process (later calls return it, whatever their options). Throws
// UserError naming the reason and the fix: a build without CUDA, a module that does not load
// (no CUDA runtime or driver library), no GPU present.
cuda::Device& start_cuda(const cuda::Options& options);

// The started device, or NULL.
cuda::Device* cuda_device();

}  // namespace graft::runtime
