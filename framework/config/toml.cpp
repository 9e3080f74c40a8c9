// The single translation unit holding toml++'s implementation, and source locations.
#define TOML_IMPLEMENTATION
#include "config/toml.hpp"

#include <sstream>

namespace graft::runtime {

std::string where(const toml::source_region& r) {
  std::string file = r.path ? *r.path : std::string("<config>");
  // A --set value's line and column are those of the one-line document it was parsed from.
  if (r.begin.line == 0 || file.rfind("--set ", 0) == 0) return file;
  return file + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column);
}

std::string where(const toml::node& node) { return where(node.source()); }

std::string describe_value(const toml::node& n) {
  std::ostringstream os;
  if (n.is_string())
    os << "a string (\"" << *n.value<std::string>() << "\")";
  else if (n.is_integer())
    os << "an integer (" << *n.value<int64_t>() << ")";
  else if (n.is_floating_point())
    os << "a float (" << *n.value<double>() << ")";
  else if (n.is_boolean())
    os << "a boolean";
  else if (n.is_array())
    os << "a list";
  else if (n.is_table())
    os << "a table";
  else
    os << "a date or time";
  return os.str();
}

}  // namespace graft::runtime
