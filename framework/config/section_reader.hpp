// Reads the framework's keys of one table of the config with their type and range checked;
// messages read "file:line:column: [section] key: what is wrong" like bind_options' do.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "config/toml.hpp"

namespace graft::runtime {

class SectionReader {
 public:
  // `table` may be NULL (the section is absent, every key takes its default). `fallback` says
  // where a table with no source is (one made by --set): the main file.
  SectionReader(const toml::table* table, std::string section, std::string fallback);

  // For sections the framework owns entirely: every key must be one of `known`.
  void reject_unknown(const std::vector<std::string>& known) const;

  const toml::table* table() const { return table_; }
  const std::string& section() const { return section_; }
  const toml::node* find(const std::string& key) const;
  // Where the table is, for messages about a key it lacks.
  std::string location() const;

  int64_t integer(const std::string& key, int64_t fallback, int64_t minimum,
                  int64_t maximum = std::numeric_limits<int64_t>::max()) const;
  // Integers are accepted too. minimum_excluded: the value must be greater than minimum.
  double number(const std::string& key, double fallback, double minimum,
                bool minimum_excluded = false) const;
  bool boolean(const std::string& key, bool fallback) const;
  std::string string(const std::string& key, const std::string& fallback,
                     const std::vector<std::string>& choices = {}) const;

  // Throws "where: [section] key: why", at the key's value or, when absent, at the table.
  [[noreturn]] void fail(const std::string& key, const std::string& why) const;
  [[noreturn]] void fail_at(const toml::node& node, const std::string& key,
                            const std::string& why) const;

 private:
  const toml::table* table_;
  std::string section_;
  std::string fallback_;
};

// root[key] as a table, NULL when absent; anything else there is a UserError.
const toml::table* section_table(const toml::table& root, const std::string& key,
                                 const std::string& section);

// Shortest text that reads back as the same double ("0.1", "300"); with `integer`, a whole
// number in digits ("1000000000", not "1e+09"), as an integer option's bounds read.
std::string format_number(double value, bool integer = false);

// "<at>: <what>; add it, e.g.\n<example>" as a UserError.
[[noreturn]] void missing(const std::string& at, const std::string& what,
                          const std::string& example);
// The `type` of a plugin's table, which must be a non-empty string.
std::string plugin_type(const SectionReader& in, const std::string& example);

struct NamedTable;
// [[model.layers]], residual blocks' inner lists and each layer's `tie` (config_layers.cpp).
std::vector<NamedTable> read_layers(const toml::table& root, const std::string& file);

}  // namespace graft::runtime
