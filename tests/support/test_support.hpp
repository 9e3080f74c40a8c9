// Shared test helpers: the built-in plugins loaded once, options from TOML text, tensors
// that own their memory, and a temporary folder per test.
#pragma once

#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "check/tensor.hpp"
#include "config/options.hpp"
#include "device/host_api.hpp"
#include "graft/graft.h"
#include "plugin/registry.hpp"
#include "util/errors.hpp"

namespace graft::test {

// The registry with every built-in plugin of this build.
const runtime::Registry& builtin_registry();

// Options for a plugin from TOML text such as "lr = 0.1\nmomentum = 0.9".
runtime::BoundOptions options(graft_kind kind, const std::string& name,
                              const std::string& toml_text = "");

// A CPU execution context for tests (training mode, seed 1234, one rank).
graft_exec_ctx cpu_ctx(bool training = true);

// A float32 (or int32) CPU tensor that owns its data (framework/check/tensor.hpp).
using Tensor = checker::Tensor;

// A fresh empty folder under the build tree, unique to the calling test.
std::filesystem::path temp_dir(const std::string& name);
// The source tree (configs/): GRAFT_SOURCE_DIR, or $GRAFT_TEST_SOURCE_DIR for a carried build.
std::filesystem::path source_dir();

// Runs the graft executable with arguments; returns its exit code and combined output.
struct CommandResult {
  int exit_code;
  std::string output;
};
CommandResult run_graft(const std::string& arguments);

// The message of the runtime::UserError that f throws; fails the test when it throws none.
template <class F>
std::string user_error(F&& f) {
  try {
    f();
  } catch (const runtime::UserError& e) {
    return e.what();
  }
  FAIL("expected a UserError");
  return "";
}

// Whether `text` contains `part`.
inline bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// How many times `needle` occurs in `text`.
inline int occurrences(const std::string& text, const std::string& needle) {
  int count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
    ++count;
  return count;
}

}  // namespace graft::test
