// Plugin loading and lookup: opens graft_*.so files with Boost.DLL, checks the ABI, and keeps
// every entry by kind and name. Libraries are never unloaded (vtables must outlive objects).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "graft/graft.h"

namespace graft::runtime {

struct PluginRecord {
  graft_kind kind;
  std::string name;
  std::filesystem::path library;
  const graft_plugin_info* info;
  const graft_plugin_entry* entry;
  template <class VTable>
  const VTable& vtable() const {
    return *static_cast<const VTable*>(entry->vtable);
  }
};

// "layer", "activation", ...; and back (false for an unknown word).
std::string kind_name(graft_kind kind);
bool parse_kind(const std::string& word, graft_kind* out);
// "layer 'linear'": how messages name a plugin when no config section is at hand.
std::string plugin_who(const PluginRecord& record);

class Registry {
 public:
  explicit Registry(const graft_host_api* host);

  // Loads one library. Throws UserError naming the file and the reason: not a shared library,
  // no entry symbol, ABI mismatch, or a plugin name another library already has.
  void load_library(const std::filesystem::path& file);
  // Checks what a library describes (ABI version, entries, vtable sizes, options schemas) and
  // records its entries under `library`. load_library calls it once the file is open; the
  // fuzz target tests/fuzz/fuzz_plugin_info.cpp calls it with descriptions made from bytes.
  // Throws UserError naming the library and the field; `info` must outlive the registry.
  void add(const std::filesystem::path& library, const graft_plugin_info* info);
  // Loads every graft_*.so directly in `dir`, in name order; a missing folder is skipped.
  void load_directory(const std::filesystem::path& dir);

  const PluginRecord* find(graft_kind kind, const std::string& name) const;
  // Like find, but a missing name is a UserError listing the known names of that kind.
  const PluginRecord& get(graft_kind kind, const std::string& name) const;
  std::vector<std::string> names(graft_kind kind) const;
  const std::vector<PluginRecord>& all() const { return records_; }
  const std::vector<std::filesystem::path>& libraries() const { return libraries_; }

 private:
  const graft_host_api* host_;
  std::vector<PluginRecord> records_;
  std::vector<std::filesystem::path> libraries_;
};

// A plugin folder the user named, and where: "--plugin-dir", "run.toml:14:10: [plugins] paths".
struct PluginFolder {
  std::string path;
  std::string given;
};
// --plugin-dir's folders, then the config's [plugins] paths (`places` saying where each was).
std::vector<PluginFolder> plugin_folders(const std::vector<std::string>& command_line,
                                         const std::vector<std::string>& config_paths = {},
                                         const std::vector<std::string>& places = {});

// Where plugins are searched, in order: the given folders, GRAFT_PLUGIN_PATH (colon-separated),
// then the folders beside the executable. A given folder or GRAFT_PLUGIN_PATH entry that is
// missing, a file, or holds no graft_*.so library is a UserError naming where it was given and
// the fix (a wrong folder would otherwise surface only as "unknown layer"); the executable's
// own folders may be absent.
std::vector<std::filesystem::path> plugin_search_path(const std::vector<PluginFolder>& given);

// Loads every folder of plugin_search_path(given).
void load_plugins(Registry& registry, const std::vector<PluginFolder>& given);

}  // namespace graft::runtime
