// Where graft's own modules (libgraft_comm_mpi.so, libgraft_device_cuda.so, ...) are looked for:
// places the environment names first, then beside the executable (build tree), ../lib/graft
// (install) and where this build put it (test executables, whose folder is elsewhere).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace graft::runtime {

std::vector<std::filesystem::path> module_candidates(const char* library, const char* build_path,
                                                     std::vector<std::filesystem::path> first = {});

// The first candidate that exists, or an empty path with `tried` listing them all.
std::filesystem::path find_module(const std::vector<std::filesystem::path>& candidates,
                                  std::string& tried);

}  // namespace graft::runtime
