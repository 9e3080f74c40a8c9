// Starting the NCCL communicator where it cannot start is a clear error naming the reason and
// the fix: a build without NCCL, a machine without a GPU (this one), a module path that names
// no file or no library, a library that is not the module. Runs without a GPU.
#include <cstdlib>
#include <fstream>

#include "comm/local.hpp"
#include "comm/nccl/nccl_loader.hpp"
#include "test_support.hpp"
#include "util/errors.hpp"

namespace rt = graft::runtime;
namespace fs = std::filesystem;
using graft::test::has;

namespace {

// Sets GRAFT_NCCL_MODULE for one test, restoring what was there.
struct ModulePath {
  explicit ModulePath(const std::string& path) {
    if (const char* old = std::getenv("GRAFT_NCCL_MODULE")) saved = old, had = true;
    setenv("GRAFT_NCCL_MODULE", path.c_str(), 1);
  }
  ~ModulePath() {
    if (had)
      setenv("GRAFT_NCCL_MODULE", saved.c_str(), 1);
    else
      unsetenv("GRAFT_NCCL_MODULE");
  }
  std::string saved;
  bool had = false;
};

// The error start_nccl throws, or "" when it started (a GPU and NCCL are present).
template <typename E = rt::UserError>
std::string start_error() {
  rt::LocalCommunicator host;
  try {
    std::unique_ptr<rt::Communicator> comm = rt::start_nccl(host, rt::NcclOptions{});
  } catch (const E& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("starting NCCL without a GPU or an NCCL build says which, and the fix") {
  const std::string message = start_error();
  if (message.empty()) {
    MESSAGE("a GPU and NCCL are present here (tests/gpu/test_nccl_comm covers them)");
    return;
  }
  INFO(message);
  CHECK(has(message, "[run] device = \"cuda\" on 1 rank(s): the NCCL communicator"));
  CHECK(has(message, "use device = \"cpu\""));
  if (!rt::nccl_built()) {
    CHECK(has(message, "is not in this build of graft"));
    CHECK(has(message, "install NCCL (libnccl-dev) and rebuild graft"));
  } else {
    CHECK((has(message, "did not start: no CUDA device is present") ||
           has(message, "does not load")));
    CHECK(has(message, "run one process per GPU on machines with NCCL"));
  }
}

TEST_CASE("GRAFT_NCCL_MODULE naming no file: the only path tried, and named") {
  if (!rt::nccl_built()) return;  // the build's answer comes first (above)
  const std::string missing = "/nonexistent/graft/libgraft_comm_nccl.so";
  ModulePath path(missing);
  const std::string message = start_error();
  INFO(message);
  CHECK(has(message, "module is missing (looked for " + missing + ")"));
  CHECK(has(message, "set GRAFT_NCCL_MODULE to libgraft_comm_nccl.so"));
}

TEST_CASE("GRAFT_NCCL_MODULE naming a file that is not a library: dlopen's reason") {
  if (!rt::nccl_built()) return;
  const fs::path file = graft::test::temp_dir("nccl_loader") / "libgraft_comm_nccl.so";
  std::ofstream(file) << "not a shared library\n";
  ModulePath path(file.string());
  const std::string message = start_error();
  INFO(message);
  CHECK(has(message, file.string() + " does not load ("));
  CHECK(has(message, "install the CUDA runtime and NCCL (libnccl2)"));
}

TEST_CASE("a library that is not the NCCL module is refused by name") {
  if (!rt::nccl_built()) return;
  // Any built plugin: a real shared library without the module's entry.
  fs::path plugin;
  for (const auto& entry : fs::directory_iterator(GRAFT_TEST_PLUGIN_DIR))
    if (entry.path().extension() == ".so") plugin = entry.path();
  REQUIRE(!plugin.empty());
  ModulePath path(plugin.string());
  const std::string message = start_error<rt::Failure>();
  INFO(message);
  CHECK(has(message, plugin.string() + " lacks graft_comm_nccl_start; rebuild graft"));
}
