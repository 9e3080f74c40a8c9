// Starting an MPI job from a test: mpirun as a subprocess under a time limit, so a job that
// hangs fails the test instead of hanging CI. Defined by graft_dist_test (CMakeLists.txt):
// GRAFT_MPIEXEC (mpirun's path) and GRAFT_MPIEXEC_FLAGS (--oversubscribe ... for Open MPI).
#pragma once

#include <sys/wait.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <string>

#include "test_support.hpp"

namespace graft::test {

struct MpiRun {
  int exit_code;       // mpirun's; 124 when the time limit killed it
  std::string output;  // stdout and stderr of every rank and of mpirun
  double seconds;
};

// Runs `command` (a program and its arguments) on `ranks` ranks, for at most `limit_s` seconds.
inline MpiRun mpirun(int ranks, const std::string& command, int limit_s = 120) {
  const std::string line = "timeout -k 5 " + std::to_string(limit_s) + " " GRAFT_MPIEXEC " " +
                           GRAFT_MPIEXEC_FLAGS + " -np " + std::to_string(ranks) + " " + command +
                           " 2>&1";
  const auto start = std::chrono::steady_clock::now();
  FILE* pipe = popen(line.c_str(), "r");
  if (!pipe) return {-1, "popen failed: " + line, 0};
  std::string output;
  std::array<char, 4096> buffer{};
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  const int status = pclose(pipe);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return {code, output, seconds};
}

}  // namespace graft::test
