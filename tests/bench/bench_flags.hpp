// The command lines of the benchmarks: `--flag value` pairs and bare switches, each stored
// through a target of the benchmark's own; a bad number or an unknown flag is a UserError
// that ends with the usage text, and --help prints it.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "util/errors.hpp"

namespace graft::bench {

// A number from the command line, or a UserError naming the flag.
inline double number(const std::string& flag, const std::string& text) {
  size_t used = 0;
  double value = 0.0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size())
    throw runtime::UserError(flag + " expects a number, got '" + text + "'");
  return value;
}

// --layers 784,1024,10: the widths D0, H0, ..., classes (at least input and classes).
inline std::vector<int64_t> widths(const std::string& flag, const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream list(text);
  for (std::string item; std::getline(list, item, ',');) out.push_back(int64_t(number(flag, item)));
  if (out.size() < 2) throw runtime::UserError(flag + " needs at least input,classes");
  return out;
}

using FlagSetter = std::function<void(const std::string& flag, const std::string& value)>;

// Stores a flag's value into `target`: a number (int, int64_t, double), a string or a list
// of widths.
template <class T>
FlagSetter into(T& target) {
  return [&target](const std::string& flag, const std::string& value) {
    if constexpr (std::is_same_v<T, std::string>)
      target = value;
    else if constexpr (std::is_same_v<T, std::vector<int64_t>>)
      target = widths(flag, value);
    else
      target = T(number(flag, value));
  };
}

inline void parse_flags(int argc, char** argv, const std::string& usage,
                        const std::map<std::string, FlagSetter>& valued,
                        const std::map<std::string, bool*>& switches = {}) {
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::cout << usage << "\n";
      std::exit(0);
    }
    if (auto s = switches.find(flag); s != switches.end()) {
      *s->second = true;
      continue;
    }
    auto v = valued.find(flag);
    if (v == valued.end()) throw runtime::UserError("unknown flag " + flag + "\n" + usage);
    if (i + 1 >= argc) throw runtime::UserError(flag + " needs a value\n" + usage);
    v->second(flag, argv[++i]);
  }
}

}  // namespace graft::bench
