// Opening the CUDA device module: beside the executable (build tree), in ../lib/graft (install)
// or where this build put it (test executables), as for the MPI communicator.
#include "device/cuda_loader.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <vector>

#include "device/host_api.hpp"
#include "util/errors.hpp"
#include "util/modules.hpp"

namespace fs = std::filesystem;

namespace graft::runtime {
namespace {

std::mutex g_mutex;
cuda::Device* g_device = nullptr;  // lives for the process, as the module does

std::vector<fs::path> candidates() {
  std::vector<fs::path> first;
  // A build folder carried to another machine (tests/gpu/run_on_gpu.sh) names it.
  if (const char* path = std::getenv("GRAFT_CUDA_MODULE"); path && *path) first.emplace_back(path);
  return module_candidates(GRAFT_DEVICE_CUDA_LIBRARY, GRAFT_DEVICE_CUDA_BUILD_PATH,
                           std::move(first));
}

}  // namespace

bool cuda_built() { return *GRAFT_DEVICE_CUDA_BUILD_PATH != '\0'; }

cuda::Device* cuda_device() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_device;
}

cuda::Device& start_cuda(const cuda::Options& options) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_device) return *g_device;
  if (!cuda_built())
    throw UserError(
        "[run] device = \"cuda\": this build of graft has no CUDA device (nvcc was "
        "not found when it was configured, or -DGRAFT_CUDA=OFF); rebuild with the "
        "CUDA toolkit installed (-DGRAFT_CUDA=ON), or use device = \"cpu\"");
  std::string tried;
  if (const fs::path path = find_module(candidates(), tried); !path.empty()) {
    void* library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!library)
      throw UserError("[run] device = \"cuda\": " + path.string() + " does not load (" + dlerror() +
                      "); install the CUDA runtime and driver, or use device = "
                      "\"cpu\"");
    auto start =
        reinterpret_cast<graft_device_cuda_start_fn>(dlsym(library, GRAFT_DEVICE_CUDA_ENTRY));
    if (!start) throw Failure(path.string() + " lacks " GRAFT_DEVICE_CUDA_ENTRY "; rebuild graft");
    std::string error;
    cuda::Device* device =
        start(GRAFT_DEVICE_CUDA_MODULE_VERSION, &options, host_api()->make_status, &error);
    if (!device)
      throw UserError("[run] device = \"cuda\": " + error +
                      "; run on a machine with a GPU, or "
                      "use device = \"cpu\"");
    g_device = device;
    return *g_device;
  }
  throw UserError("[run] device = \"cuda\": the CUDA device module is missing (looked for " +
                  tried + "); reinstall graft, or use device = \"cpu\"");
}

}  // namespace graft::runtime
