// Shared test helpers: the built-in plugins loaded once, options from TOML text, tensors
// that own their memory, and a temporary folder per test.
#pragma once

#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "config/options.hpp"
#include "device/host_api.hpp"
#include "graft/graft.h"
#include "plugin/registry.hpp"

namespace graft::test {

// The registry with every built-in plugin of this build.
const runtime::Registry& builtin_registry();

// Options for a plugin from TOML text such as "lr = 0.1\nmomentum = 0.9".
runtime::BoundOptions options(graft_kind kind, const std::string& name,
                              const std::string& toml_text = "");

// A CPU execution context for tests (training mode, seed 1234, one rank).
graft_exec_ctx cpu_ctx(bool training = true);

// A float32 (or int32) CPU tensor that owns its data.
class Tensor {
 public:
  Tensor(std::vector<int64_t> shape, DLDataType dtype = DLDataType{kDLFloat, 32, 1});
  Tensor(const Tensor& o);
  Tensor& operator=(const Tensor& o);
  DLTensor* get() { return &t_; }
  const DLTensor* get() const { return &t_; }
  float* f() { return reinterpret_cast<float*>(data_.data()); }
  const float* f() const { return reinterpret_cast<const float*>(data_.data()); }
  int32_t* i() { return reinterpret_cast<int32_t*>(data_.data()); }
  int64_t numel() const;
  const std::vector<int64_t>& shape() const { return shape_; }

 private:
  void rebind();
  std::vector<int64_t> shape_;
  std::vector<char> data_;
  DLTensor t_{};
};

// A fresh empty folder under the build tree, unique to the calling test.
std::filesystem::path temp_dir(const std::string& name);

// Runs the graft executable with arguments; returns its exit code and combined output.
struct CommandResult {
  int exit_code;
  std::string output;
};
CommandResult run_graft(const std::string& arguments);

}  // namespace graft::test
