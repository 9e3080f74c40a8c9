// What `graft plugins` shows of each loaded plugin (kind, library, version, summary, options
// schema), as JSON, so the command and the plugin-info fuzz target read the same fields.
#pragma once

#include <nlohmann/json.hpp>

#include "plugin/registry.hpp"

namespace graft::runtime {

// One object per plugin, in load order: kind, name, summary, library, library_name, version,
// abi, build, cuda, and options (name, type, default, required, range, doc).
nlohmann::ordered_json describe_plugins(const Registry& registry);

}  // namespace graft::runtime
