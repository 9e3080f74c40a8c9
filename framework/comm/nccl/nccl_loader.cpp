// Opening the NCCL communicator module: from GRAFT_NCCL_MODULE, beside the CUDA device module
// of a build carried to a GPU machine (GRAFT_CUDA_MODULE), beside the executable (build tree),
// in ../lib/graft (install) or where this build put it (test executables).
#include "comm/nccl/nccl_loader.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

#include "util/errors.hpp"
#include "util/modules.hpp"

namespace fs = std::filesystem;

namespace graft::runtime {
namespace {

const char* const kFix = "run one process per GPU on machines with NCCL, or use device = \"cpu\"";

std::vector<fs::path> candidates() {
  if (const char* path = std::getenv("GRAFT_NCCL_MODULE"); path && *path) return {path};
  std::vector<fs::path> first;
  if (const char* cuda = std::getenv("GRAFT_CUDA_MODULE"); cuda && *cuda)
    first.push_back(fs::path(cuda).parent_path() / GRAFT_COMM_NCCL_LIBRARY);
  return module_candidates(GRAFT_COMM_NCCL_LIBRARY, GRAFT_COMM_NCCL_BUILD_PATH, std::move(first));
}

}  // namespace

bool nccl_built() { return *GRAFT_COMM_NCCL_BUILD_PATH != '\0'; }

std::unique_ptr<Communicator> start_nccl(Communicator& host_world, const NcclOptions& options) {
  const std::string at = "[run] device = \"cuda\" on " + std::to_string(host_world.size()) +
                         " rank(s): the NCCL communicator";
  if (!nccl_built())
    throw UserError(at +
                    " is not in this build of graft (nccl.h and libnccl were not found "
                    "under the CUDA toolkit or /usr/local when it was configured); install "
                    "NCCL (libnccl-dev) and rebuild graft, or use device = \"cpu\"");
  std::string tried;
  if (const fs::path path = find_module(candidates(), tried); !path.empty()) {
    // Never closed, like every module: objects it made may live until the process ends.
    void* library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!library)
      throw UserError(at + " " + path.string() + " does not load (" + dlerror() +
                      "); install the CUDA runtime and NCCL (libnccl2), or use device = \"cpu\"");
    auto start = reinterpret_cast<graft_comm_nccl_start_fn>(dlsym(library, GRAFT_COMM_NCCL_ENTRY));
    if (!start) throw Failure(path.string() + " lacks " GRAFT_COMM_NCCL_ENTRY "; rebuild graft");
    std::string error;
    Communicator* comm = start(GRAFT_COMM_NCCL_MODULE_VERSION, &host_world, &options, &error);
    if (!comm) throw UserError(at + " did not start: " + error + "; " + kFix);
    return std::unique_ptr<Communicator>(comm);
  }
  throw UserError(at + " module is missing (looked for " + tried +
                  "); reinstall graft, set "
                  "GRAFT_NCCL_MODULE to " GRAFT_COMM_NCCL_LIBRARY ", or use device = \"cpu\"");
}

}  // namespace graft::runtime
