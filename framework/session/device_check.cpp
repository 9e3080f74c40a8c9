// The checks of [run] device = "cuda" before anything is built: which plugins of the model lack
// CUDA kernels (named, with the fix), and whether this process gets a GPU.
#include "session/device_check.hpp"

#include <cstdlib>
#include <string>

#include "device/cuda_loader.hpp"
#include "model/model_parts.hpp"
#include "util/errors.hpp"

namespace graft::runtime {
namespace {

void without_cuda(const PluginChoice& c, std::vector<std::string>& out) {
  if (c.residual) {
    for (const PluginChoice& inner : c.inner) without_cuda(inner, out);
    return;
  }
  if (c.record && !(c.record->entry->flags & GRAFT_ENTRY_HAS_CUDA)) out.push_back(model_who(c));
}

// One process per GPU: under mpirun the rank's place on its node picks the GPU.
int32_t local_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"})
    if (const char* v = std::getenv(name)) return int32_t(std::atoi(v));
  return 0;
}

}  // namespace

int32_t check_cuda_run(const Config& config, const std::vector<PluginChoice>& layers,
                       const PluginChoice& loss, const PluginChoice& optimizer) {
  const std::string at = config.file.string() + ": [run] device = \"cuda\": ";
  std::vector<std::string> missing;
  for (const PluginChoice& layer : layers) without_cuda(layer, missing);
  without_cuda(loss, missing);
  without_cuda(optimizer, missing);
  if (!missing.empty()) {
    std::string list;
    for (const std::string& m : missing) list += "\n  " + m;
    throw UserError(at +
                    "these plugins have no CUDA kernels (`graft plugins` shows which do):" + list +
                    "\nuse device = \"cpu\", or plugins built with CUDA_SOURCES "
                    "(sdk/README.md, \"CUDA kernels in a plugin\")");
  }
  cuda::Options options;
  options.device_index = local_rank();
  options.tf32 = config.run.tf32;
  options.deterministic = config.run.deterministic;
  start_cuda(options);
  return options.device_index;
}

}  // namespace graft::runtime
