// The runtime's two kinds of failure, which the CLI maps to exit codes: a UserError is the
// user's to fix (bad usage, config, plugin, data: exit 2), a Failure happens while running (exit
// 1).
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace graft::runtime {

class UserError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Failure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The candidate closest to `word` by edit distance, or "" when none is close enough to help.
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

// " (did you mean 'x'?)" or "".
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

// "1.5 GiB": bytes in the largest binary unit (B .. PiB) that keeps the number at least 1.
std::string human_bytes(double bytes);

// "a, b, c"
std::string join(const std::vector<std::string>& items, const std::string& separator = ", ");

}  // namespace graft::runtime
