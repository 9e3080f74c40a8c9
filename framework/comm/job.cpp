// Choosing the job's communicator: the one place that knows `local` from `mpi`. The MPI side
// lives in a module opened here only under a launcher, found beside the executable (build
// tree), in ../lib/graft (install) or where this build put it (test executables).
#include "comm/job.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <vector>

#include "comm/local.hpp"
#include "comm/mpi/module.hpp"
#include "util/modules.hpp"

namespace fs = std::filesystem;

namespace graft::runtime {
namespace {

class LocalJob final : public Job {
 public:
  explicit LocalJob(double timeout_s) : timeout_(timeout_s) {}
  Communicator& world() override { return world_; }
  bool distributed() const override { return false; }
  // Nothing can wait on another rank here, so the timeout is only remembered (strategies
  // read it from graft_world).
  void set_timeout(double seconds) override { timeout_ = seconds; }
  double timeout() const override { return timeout_; }
  // A world of one has no watchdog report to name ranks in.
  void set_rank_labels(std::vector<std::string>) override {}
  int fail(int exit_code) override { return exit_code; }

 private:
  LocalCommunicator world_;
  double timeout_;
};

std::unique_ptr<Job> start_mpi_job(double timeout_s) {
  std::string tried;
  const fs::path path =
      find_module(module_candidates(GRAFT_COMM_MPI_LIBRARY, GRAFT_COMM_MPI_BUILD_PATH), tried);
  if (!path.empty()) {
    // RTLD_GLOBAL: Open MPI dlopens its own components, which expect libmpi's symbols to be
    // global. The module exports nothing but its entry, so nothing else leaks.
    void* library = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (!library)
      throw Failure("started by mpirun, but the MPI communicator " + path.string() +
                    " does not load: " + dlerror());
    auto start = reinterpret_cast<graft_comm_mpi_start_fn>(dlsym(library, GRAFT_COMM_MPI_ENTRY));
    if (!start) throw Failure(path.string() + " lacks " GRAFT_COMM_MPI_ENTRY "; rebuild graft");
    std::string error;
    Job* job = start(GRAFT_COMM_MPI_MODULE_VERSION, timeout_s, &error);
    if (!job) throw Failure(path.string() + ": " + error);
    // The module stays loaded for the life of the process, like plugins: MPI cannot be
    // unloaded and re-initialised.
    return std::unique_ptr<Job>(job);
  }
  throw UserError(
      "graft was started by mpirun, but this build has no MPI communicator (looked "
      "for " +
      tried +
      "); install Open MPI (libopenmpi-dev) and rebuild graft, or "
      "run without mpirun");
}

}  // namespace

bool launched_by_mpi() {
  // Open MPI's mpirun, any PMIx launcher (srun --mpi=pmix, prterun), MPICH's hydra.
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(name)) return true;
  return false;
}

std::unique_ptr<Job> start_job(double timeout_s) {
  if (launched_by_mpi()) return start_mpi_job(timeout_s);
  return std::make_unique<LocalJob>(timeout_s);
}

}  // namespace graft::runtime
