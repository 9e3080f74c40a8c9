// Building the merged TOML tree of a run: files with their includes, merged so that every node
// keeps the file and line it came from (toml++ copies drop sources, so nodes are moved).
#pragma once

#include <filesystem>

#include "config/toml.hpp"

namespace graft::runtime {

// Parses `file` and the files its top-level `include = [...]` names (relative to it, nested),
// merged in order with the including file on top. Throws UserError for a missing file, a TOML
// syntax error, or an include cycle, naming the chain of includes.
toml::table load_tree(const std::filesystem::path& file);

// Moves every entry of `top` into `base`: tables merge key by key, anything else replaces.
void merge_into(toml::table& base, toml::table&& top);

}  // namespace graft::runtime
