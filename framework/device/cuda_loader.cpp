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

namespace fs = std::filesystem;

namespace graft::runtime {
namespace {

std::mutex g_mutex;
cuda::Device* g_device = nullptr;  // lives for the process, as the module does

std::vector<fs::path> candidates() {
  std::vector<fs::path> out;
  // A build folder carried to another machine (tests/gpu/run_on_gpu.sh) names it.
  if (const char* path = std::getenv("GRAFT_CUDA_MODULE"); path && *path) out.emplace_back(path);
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    out.push_back(exe.parent_path() / GRAFT_DEVICE_CUDA_LIBRARY);
    out.push_back(exe.parent_path() / ".." / "lib" / "graft" / GRAFT_DEVICE_CUDA_LIBRARY);
  }
  if (*GRAFT_DEVICE_CUDA_BUILD_PATH) out.emplace_back(GRAFT_DEVICE_CUDA_BUILD_PATH);
  return out;
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
    throw UserError("[run] device = \"cuda\": this build of graft has no CUDA device (nvcc was "
                    "not found when it was configured, or -DGRAFT_CUDA=OFF); rebuild with the "
                    "CUDA toolkit installed (-DGRAFT_CUDA=ON), or use device = \"cpu\"");
  std::string tried;
  for (const fs::path& path : candidates()) {
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      tried += (tried.empty() ? "" : ", ") + path.string();
      continue;
    }
    void* library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!library)
      throw UserError("[run] device = \"cuda\": " + path.string() + " does not load (" +
                      dlerror() + "); install the CUDA runtime and driver, or use device = "
                      "\"cpu\"");
    auto start = reinterpret_cast<graft_device_cuda_start_fn>(
        dlsym(library, GRAFT_DEVICE_CUDA_ENTRY));
    if (!start) throw Failure(path.string() + " lacks " GRAFT_DEVICE_CUDA_ENTRY "; rebuild graft");
    std::string error;
    cuda::Device* device = start(GRAFT_DEVICE_CUDA_MODULE_VERSION, &options,
                                 host_api()->make_status, &error);
    if (!device)
      throw UserError("[run] device = \"cuda\": " + error + "; run on a machine with a GPU, or "
                      "use device = \"cpu\"");
    g_device = device;
    return *g_device;
  }
  throw UserError("[run] device = \"cuda\": the CUDA device module is missing (looked for " +
                  tried + "); reinstall graft, or use device = \"cpu\"");
}

}  // namespace graft::runtime
