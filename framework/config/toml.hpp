// toml++ compiled once (config/toml.cpp) instead of in every file that reads TOML.
#pragma once
#ifndef TOML_HEADER_ONLY
#define TOML_HEADER_ONLY 0
#endif
#include <toml++/toml.h>

#include <string>

namespace graft::runtime {
// "file:line:column" of a node, or of its nearest known source.
std::string where(const toml::node& node);
std::string where(const toml::source_region& region);
}  // namespace graft::runtime
