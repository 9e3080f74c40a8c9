// The single translation unit holding toml++'s implementation, and source locations.
#define TOML_IMPLEMENTATION
#include "config/toml.hpp"

namespace graft::runtime {

std::string where(const toml::source_region& r) {
  std::string file = r.path ? *r.path : std::string("<config>");
  if (r.begin.line == 0) return file;
  return file + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column);
}

std::string where(const toml::node& node) { return where(node.source()); }

}  // namespace graft::runtime
