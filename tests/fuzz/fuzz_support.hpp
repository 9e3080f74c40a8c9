// What every fuzz target shares: a scratch folder for the files a reader opens, the built-in
// plugins loaded once, and the rule of a finding. Each target's LLVMFuzzerTestOneInput runs
// the input through graft's real code; a UserError (the clear message a user gets) is the
// expected end of a bad input, and anything else escaping (a Failure, a library's exception,
// a crash, a sanitizer report, a hang, memory past -rss_limit_mb) is a finding. What the code
// promises about an input it accepts is checked with GRAFT_FUZZ_REQUIRE.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "device/host_api.hpp"
#include "graft/graft.h"
#include "plugin/registry.hpp"
#include "util/errors.hpp"

// A promise the code under test broke on an input it accepted: printed, then abort(), which
// libFuzzer reports as a crash and saves the input.
#define GRAFT_FUZZ_REQUIRE(condition, what)                     \
  do {                                                          \
    if (!(condition)) {                                         \
      std::fprintf(stderr, "fuzz: broken promise: %s\n", what); \
      std::abort();                                             \
    }                                                           \
  } while (0)

namespace graft::fuzz {

namespace fs = std::filesystem;

// A folder of this process's own (fuzzers may run side by side), made once.
inline const fs::path& scratch_dir() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("graft-fuzz-" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

inline void write_file(const fs::path& path, const uint8_t* data, size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw std::runtime_error("fuzz: cannot write " + path.string());
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
}

// The build's plugins (GRAFT_FUZZ_PLUGIN_DIR), loaded on the first call.
inline const runtime::Registry& builtin_registry() {
  static const runtime::Registry* registry = [] {
    auto* r = new runtime::Registry(runtime::host_api());
    r->load_directory(GRAFT_FUZZ_PLUGIN_DIR);
    return r;
  }();
  return *registry;
}

// A float32 or int32 tensor on the CPU over `storage`.
struct HostTensor {
  std::vector<int64_t> shape;
  std::vector<uint8_t> storage;
  DLTensor tensor{};
  HostTensor(std::vector<int64_t> dims, DLDataType dtype) : shape(std::move(dims)) {
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    storage.resize(n * dtype.bits / 8);
    tensor = DLTensor{storage.data(),
                      DLDevice{kDLCPU, 0},
                      static_cast<int32_t>(shape.size()),
                      dtype,
                      shape.data(),
                      nullptr,
                      0};
  }
};

}  // namespace graft::fuzz
