// What the layer and MLP benchmarks share: wall time since a point, the process's peak memory,
// and random buffers with their tensor views.
#pragma once

#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "graft/random.h"
#include "model/tensor_view.hpp"

namespace graft::bench {

inline double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// A line of /proc/self/status ("VmHWM", "VmRSS") in bytes; ru_maxrss where /proc is missing.
inline double status_bytes(const std::string& key) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind(key + ":", 0) == 0) return std::stod(line.substr(key.size() + 1)) * 1024.0;
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_maxrss) * 1024.0;
}

// A float buffer of `rows` x `sample` on the CPU with its view, filled from the counter-based
// normal of `stream`.
struct RandomBuffer {
  std::vector<float> data;
  runtime::TensorView view;
  RandomBuffer(int64_t rows, const graft_shape& sample, uint64_t stream)
      : data(size_t(rows * graft_shape_numel(&sample))) {
    for (size_t i = 0; i < data.size(); ++i) data[i] = 0.1f * graft_random_normal(5, stream, i);
    view = runtime::TensorView(data.data(), DLDevice{kDLCPU, 0}, rows, sample);
  }
};

}  // namespace graft::bench
