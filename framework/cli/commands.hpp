// graft's commands, one file each. Each takes its own arguments (after the command word) and
// returns the process exit code: 0 ok, 2 bad usage or config, 1 failure while running.
#pragma once

#include <string>
#include <vector>

namespace graft::cli {

using Arguments = std::vector<std::string>;

int train(const Arguments& args);
int validate(const Arguments& args);
int evaluate(const Arguments& args);
int plugins(const Arguments& args);
int check_plugin(const Arguments& args);
int verify(const Arguments& args);
int generate(const Arguments& args);
int sweep(const Arguments& args);

}  // namespace graft::cli
