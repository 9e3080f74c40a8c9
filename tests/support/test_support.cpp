// Implementation of the shared test helpers.
#include "test_support.hpp"

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstring>

#include "util/errors.hpp"

namespace graft::test {

const runtime::Registry& builtin_registry() {
  static runtime::Registry* registry = [] {
    auto* r = new runtime::Registry(runtime::host_api());
    r->load_directory(GRAFT_TEST_PLUGIN_DIR);
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

graft_exec_ctx cpu_ctx(bool training) {
  graft_exec_ctx ctx{};
  ctx.struct_size = sizeof ctx;
  ctx.host = runtime::host_api();
  ctx.device = DLDevice{kDLCPU, 0};
  ctx.training = training ? 1 : 0;
  ctx.seed = 1234;
  ctx.global_batch = 0;
  ctx.layer_index = -1;
  ctx.world = 1;
  return ctx;
}

Tensor::Tensor(std::vector<int64_t> shape, DLDataType dtype) : shape_(std::move(shape)) {
  t_.dtype = dtype;
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  data_.assign(static_cast<size_t>(n) * (dtype.bits / 8), 0);
  rebind();
}
Tensor::Tensor(const Tensor& o) : shape_(o.shape_), data_(o.data_), t_(o.t_) { rebind(); }
Tensor& Tensor::operator=(const Tensor& o) {
  shape_ = o.shape_;
  data_ = o.data_;
  t_ = o.t_;
  rebind();
  return *this;
}
void Tensor::rebind() {
  t_.data = data_.data();
  t_.device = DLDevice{kDLCPU, 0};
  t_.ndim = static_cast<int>(shape_.size());
  t_.shape = shape_.data();
  t_.strides = nullptr;
  t_.byte_offset = 0;
}
int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

std::filesystem::path temp_dir(const std::string& name) {
  std::filesystem::path p = std::filesystem::path(GRAFT_BINARY_DIR) / "test_tmp" / name;
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

CommandResult run_graft(const std::string& arguments) {
  std::string command = std::string(GRAFT_EXECUTABLE) + " " + arguments + " 2>&1";
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
