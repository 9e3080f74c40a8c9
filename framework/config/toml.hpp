// toml++ compiled once (config/toml.cpp) instead of in every file that reads TOML.
#pragma once
#ifndef TOML_HEADER_ONLY
#define TOML_HEADER_ONLY 0
#endif
// A standard library with std::to_chars for doubles (libstdc++ >= 11, for GCC and clang alike)
// prints floats as the shortest text that reads back the same (0.1, not 0.10000000000000001),
// which toml++ 3.3 assumes no GCC-family library has.
#include <version>
#if !defined(TOML_FLOAT_CHARCONV) && defined(__cpp_lib_to_chars) && __cpp_lib_to_chars >= 201611L
#define TOML_FLOAT_CHARCONV 1
#endif
#include <toml++/toml.h>

#include <string>

namespace graft::runtime {
// "file:line:column" of a node, or of its nearest known source.
std::string where(const toml::node& node);
std::string where(const toml::source_region& region);
// "an integer (3)", "a string (\"x\")", "a list", ... for messages about a wrong type.
std::string describe_value(const toml::node& node);
}  // namespace graft::runtime
