// [run] device = "cuda" is checked before anything is built on it: every plugin the model uses
// must ship CUDA kernels, and this process must get a GPU.
#pragma once

#include <vector>

#include "config/config.hpp"
#include "model/model.hpp"

namespace graft::runtime {

// Starts this process's GPU (under mpirun, the one of its rank on the node) and returns its
// index. Throws UserError naming the config file, the plugins without CUDA kernels (and their
// libraries), or why no GPU can be used, each with the fix.
int32_t check_cuda_run(const Config& config, const std::vector<PluginChoice>& layers,
                       const PluginChoice& loss, const PluginChoice& optimizer);

}  // namespace graft::runtime
