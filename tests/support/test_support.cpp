// Implementation of the shared test helpers.
#include "test_support.hpp"

#include <cstdlib>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstring>

#include "util/errors.hpp"

namespace graft::test {

namespace {
// A build carried to another machine (tests/gpu/run_on_gpu.sh) names its own places.
std::string moved_or(const char* variable, const char* built) {
  const char* moved = std::getenv(variable);
  return moved && *moved ? moved : built;
}
}  // namespace

const runtime::Registry& builtin_registry() {
  static runtime::Registry* registry = [] {
    auto* r = new runtime::Registry(runtime::host_api());
    r->load_directory(moved_or("GRAFT_TEST_PLUGIN_DIR", GRAFT_TEST_PLUGIN_DIR));
    return r;
  }();
  return *registry;
}

runtime::BoundOptions options(graft_kind kind, const std::string& name,
                              const std::string& toml_text) {
  const runtime::PluginRecord& record = builtin_registry().get(kind, name);
  toml::table table = toml::parse(toml_text, std::string("test options"));
  return runtime::bind_options(*record.entry, &table, "[" + name + "]", {"type"});
}

graft_exec_ctx cpu_ctx(bool training) { return checker::cpu_context(training); }

std::filesystem::path source_dir() { return moved_or("GRAFT_TEST_SOURCE_DIR", GRAFT_SOURCE_DIR); }

std::filesystem::path temp_dir(const std::string& name) {
  std::filesystem::path p =
      std::filesystem::path(moved_or("GRAFT_TEST_TMP", GRAFT_BINARY_DIR "/test_tmp")) / name;
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

CommandResult run_graft(const std::string& arguments) {
  std::string command =
      moved_or("GRAFT_TEST_EXECUTABLE", GRAFT_EXECUTABLE) + " " + arguments + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  std::array<char, 4096> buffer{};
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  int status = pclose(pipe);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return {code, output};
}

}  // namespace graft::test
