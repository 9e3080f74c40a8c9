// Binds a plugin's TOML table to its options schema: every key checked (unknown keys get a
// did-you-mean, wrong types and out-of-range values name file:line:column), defaults filled in,
// and the result laid out as the graft_options the plugin's create() receives.
#pragma once

#include <deque>
#include <string>
#include <vector>

#include "config/toml.hpp"
#include "graft/graft.h"

namespace graft::runtime {

class BoundOptions {
 public:
  BoundOptions() = default;
  BoundOptions(const BoundOptions&) = delete;
  BoundOptions& operator=(const BoundOptions&) = delete;
  BoundOptions(BoundOptions&&) = default;
  BoundOptions& operator=(BoundOptions&&) = default;

  const graft_options* get() const { return &c_; }
  // The resolved values, defaults included, for the saved config.
  const toml::table& resolved() const { return resolved_; }

  // Storage the C view points into; filled by bind_options. Deques keep addresses stable.
  std::deque<std::string> strings_;
  std::deque<std::vector<int64_t>> ints_;
  std::deque<std::vector<double>> floats_;
  std::deque<std::vector<const char*>> string_lists_;
  std::vector<graft_option_value> values_;
  graft_options c_{sizeof(graft_options), 0, nullptr};
  toml::table resolved_;
};

// table may be NULL (all defaults). `section` names the table in messages ("[optimizer]").
// Keys in `reserved` belong to the framework (e.g. "type") and are skipped. Throws UserError.
BoundOptions bind_options(const graft_plugin_entry& entry, const toml::table* table,
                          const std::string& section, const std::vector<std::string>& reserved);

// "float", "list of integers", ...
std::string option_type_name(graft_option_type type);

}  // namespace graft::runtime
