// The plugin loader: Boost.DLL for opening, dlerror() for saying why an open failed (Boost
// 1.74's own message is vague), and explicit checks of the ABI before any vtable is touched.
#include "plugin/registry.hpp"

#include <dlfcn.h>
#include <elf.h>
#include <unistd.h>

#include <algorithm>
#include <boost/dll/shared_library.hpp>
#include <cctype>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>

#include "config/options.hpp"
#include "util/errors.hpp"

namespace fs = std::filesystem;

namespace graft::runtime {

namespace {

const char* const kKindNames[] = {"",          "layer",   "activation", "loss",
                                  "optimizer", "dataset", "strategy"};

// Loaded libraries stay loaded for the life of the process, whoever loaded them.
std::vector<boost::dll::shared_library>& kept_libraries() {
  static auto* kept = new std::vector<boost::dll::shared_library>();
  return *kept;
}

bool has_elf_header(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && magic[0] == 0x7f && magic[1] == 'E' && magic[2] == 'L' &&
         magic[3] == 'F';
}

// dlopen maps segments without checking the file is long enough, and touching a page past
// the end of a truncated file kills the process with SIGBUS. Check the layout first.
// Returns "" when the file is a complete shared library for this machine.
std::string elf_problem(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  const uint64_t size = fs::file_size(file);
  Elf64_Ehdr header{};
  if (!in.read(reinterpret_cast<char*>(&header), sizeof header))
    return "truncated: shorter than an ELF header";
  if (header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_machine != EM_X86_64)
    return "built for another architecture (this graft is x86-64)";
  if (header.e_type != ET_DYN) return "an ELF file but not a shared library";
  const uint64_t headers_end = header.e_phoff + uint64_t(header.e_phnum) * header.e_phentsize;
  if (header.e_phentsize != sizeof(Elf64_Phdr) || headers_end > size)
    return "truncated or damaged: its program headers run past the end of the file";
  for (uint16_t i = 0; i < header.e_phnum; ++i) {
    Elf64_Phdr ph{};
    in.seekg(static_cast<std::streamoff>(header.e_phoff + uint64_t(i) * sizeof ph));
    if (!in.read(reinterpret_cast<char*>(&ph), sizeof ph)) return "truncated or damaged";
    if (ph.p_type == PT_LOAD && ph.p_offset + ph.p_filesz > size)
      return "truncated: the file has " + std::to_string(size) + " bytes but its segments need " +
             std::to_string(ph.p_offset + ph.p_filesz);
  }
  return "";
}

// The loader's own words for why dlopen fails; Boost 1.74 reports only "bad file descriptor".
std::string dlopen_reason(const fs::path& file) {
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle) {
    dlclose(handle);
    return "unknown reason";
  }
  const char* e = dlerror();
  return e ? e : "unknown reason";
}

// The smallest vtable each kind had at ABI 1.0: a 1.0 plugin loads in every 1.x host, which
// reads a later field only when the plugin's struct_size reaches it.

size_t vtable_size(graft_kind kind) {
  switch (kind) {
    case GRAFT_KIND_LAYER: return offsetof(graft_layer_vtable, backward) + sizeof(void*);
    case GRAFT_KIND_ACTIVATION: return sizeof(graft_activation_vtable);
    case GRAFT_KIND_LOSS: return sizeof(graft_loss_vtable);
    case GRAFT_KIND_OPTIMIZER: return sizeof(graft_optimizer_vtable);
    case GRAFT_KIND_DATASET: return sizeof(graft_dataset_vtable);
    case GRAFT_KIND_STRATEGY: return offsetof(graft_strategy_vtable, eval_step) + sizeof(void*);
  }
  return 0;
}

// "layers", ..., "strategies": for messages listing the known names of a kind.
std::string kind_plural(graft_kind kind) {
  return kind == GRAFT_KIND_STRATEGY ? "strategies" : kind_name(kind) + "s";
}

// An enum read from a plugin's memory may hold any bits; reading it as the enum type would be
// undefined behaviour for a value the enum cannot represent, so it is read as the integer it is.
template <class Enum>
int32_t raw_value(const Enum& field) {
  static_assert(sizeof(Enum) == sizeof(int32_t));
  int32_t value;
  std::memcpy(&value, &field, sizeof value);
  return value;
}

// A plugin's and an option's name is what a config writes (`type = "..."`, a bare key), so it
// is a word of letters, digits, '_', '-' and '.'.
bool is_name(const std::string& text) {
  if (text.empty()) return false;
  for (char c : text)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.')
      return false;
  return true;
}

// Text a plugin gives (summaries, docs, versions) is printed and written as JSON, so it must be
// UTF-8: well-formed sequences of 1 to 4 bytes, no overlong forms, surrogates or values past
// U+10FFFF.
bool is_utf8(const char* text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text);
  while (*p) {
    int extra = 0;
    uint32_t code = *p;
    if (code < 0x80)
      extra = 0;
    else if ((code & 0xE0) == 0xC0)
      extra = 1, code &= 0x1F;
    else if ((code & 0xF0) == 0xE0)
      extra = 2, code &= 0x0F;
    else if ((code & 0xF8) == 0xF0)
      extra = 3, code &= 0x07;
    else
      return false;
    for (int i = 1; i <= extra; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;  // also stops at the terminating 0
      code = (code << 6) | (p[i] & 0x3F);
    }
    static constexpr uint32_t kSmallest[] = {0, 0x80, 0x800, 0x10000};
    if (code < kSmallest[extra] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF))
      return false;
    p += extra + 1;
  }
  return true;
}

// The options schema of one entry, checked once at load so that binding a table and
// `graft plugins` can trust it: names, types, docs, ranges, choices, and defaults that bind.
void check_options(const graft_plugin_entry& e, const std::string& who) {
  if (e.n_options > 0 && !e.options)
    throw UserError(who + " lists " + std::to_string(e.n_options) + " options but gives none");
  std::vector<std::string> seen;
  for (size_t i = 0; i < e.n_options; ++i) {
    const graft_option_spec& s = e.options[i];
    const std::string option = s.name ? s.name : "";
    const std::string at =
        who + ": option " + std::to_string(i) + (option.empty() ? "" : " '" + option + "'");
    if (option.empty()) throw UserError(at + " has no name");
    if (!is_name(option))
      throw UserError(who + ": option " + std::to_string(i) +
                      " has a name that is not a word of "
                      "letters, digits, '_', '-' or '.', which a config could not write");
    if (std::find(seen.begin(), seen.end(), option) != seen.end())
      throw UserError(at + " is declared twice");
    seen.push_back(option);
    const int32_t type = raw_value(s.type);
    if (type < GRAFT_OPT_BOOL || type > GRAFT_OPT_STRING_LIST)
      throw UserError(at + " has an unknown type " + std::to_string(type));
    if (!s.doc) throw UserError(at + " has no doc line");
    for (const char* text : {s.doc, s.default_value, s.choices})
      if (text && !is_utf8(text))
        throw UserError(at + " has a doc, default or choices that is not UTF-8 text");
    if (!(s.min <= s.max))
      throw UserError(at + " has an empty or NaN range [" + std::to_string(s.min) + ", " +
                      std::to_string(s.max) + "]");
    const bool strings = type == GRAFT_OPT_STRING || type == GRAFT_OPT_STRING_LIST;
    if (s.choices && (!strings || !*s.choices))
      throw UserError(at + " has choices but is not a string option, or an empty choice list");
    if (!s.default_value) continue;
    graft_plugin_entry alone = e;  // the default binds as a table without the key would
    alone.n_options = 1;
    alone.options = &s;
    try {
      bind_options(alone, nullptr, "", {});
    } catch (const std::exception& error) {
      throw UserError(at + ": its default does not fit its own schema: " + error.what());
    }
  }
}

}  // namespace

std::string kind_name(graft_kind kind) {
  int k = static_cast<int>(kind);
  return (k >= 1 && k <= 6) ? kKindNames[k] : "kind " + std::to_string(k);
}

std::string plugin_who(const PluginRecord& record) {
  return kind_name(record.kind) + " '" + record.name + "'";
}

bool parse_kind(const std::string& word, graft_kind* out) {
  for (int k = 1; k <= 6; ++k)
    if (word == kKindNames[k]) {
      *out = static_cast<graft_kind>(k);
      return true;
    }
  return false;
}

Registry::Registry(const graft_host_api* host) : host_(host) {}

void Registry::load_library(const fs::path& file) {
  std::error_code ec;
  fs::path path = fs::weakly_canonical(file, ec);
  if (ec) path = file;
  if (std::find(libraries_.begin(), libraries_.end(), path) != libraries_.end()) return;
  const std::string where = "plugin library " + path.string();
  if (!fs::exists(path)) throw UserError(where + ": no such file");
  if (!has_elf_header(path))
    throw UserError(where +
                    ": not a shared library (no ELF header); remove it from the plugin "
                    "folder or rename it so it does not match graft_*.so");

  if (std::string problem = elf_problem(path); !problem.empty())
    throw UserError(where + ": cannot be loaded: " + problem + "; rebuild or reinstall it");
  boost::dll::shared_library lib;
  try {
    lib.load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception&) {
    throw UserError(where + ": cannot be loaded: " + dlopen_reason(path));
  }
  if (!lib.has(GRAFT_ENTRY_SYMBOL))
    throw UserError(where + ": not a graft plugin (it does not export '" GRAFT_ENTRY_SYMBOL
                            "'); build it with graft_add_plugin() and GRAFT_PLUGIN_LIBRARY(...)");
  auto entry = lib.get<const graft_plugin_info*(const graft_host_api*)>(GRAFT_ENTRY_SYMBOL);
  add(path, entry(host_));
  kept_libraries().push_back(std::move(lib));
}

void Registry::add(const fs::path& path, const graft_plugin_info* info) {
  const std::string where = "plugin library " + path.string();
  if (!info) throw UserError(where + ": " GRAFT_ENTRY_SYMBOL " returned nothing");
  const std::string host_abi =
      std::to_string(GRAFT_ABI_MAJOR) + "." + std::to_string(GRAFT_ABI_MINOR);
  if (info->struct_size < sizeof(uint32_t) * 2 + sizeof(size_t))
    throw UserError(where + ": plugin info is truncated (struct_size " +
                    std::to_string(info->struct_size) + ")");
  const std::string plugin_abi =
      std::to_string(info->abi_major) + "." + std::to_string(info->abi_minor);
  if (info->abi_major != GRAFT_ABI_MAJOR)
    throw UserError(where + ": built against graft SDK ABI " + plugin_abi +
                    ", but this graft has ABI " + host_abi +
                    "; rebuild the plugin against this graft's SDK");
  if (info->abi_minor > GRAFT_ABI_MINOR)
    throw UserError(where + ": needs graft ABI " + plugin_abi + ", newer than this graft's " +
                    host_abi + "; upgrade graft or rebuild the plugin against this SDK");
  if (info->struct_size < sizeof(graft_plugin_info))
    throw UserError(where + ": plugin info is smaller than ABI " + plugin_abi + " defines");

  if (!info->library_name || !info->library_version || !info->build_info)
    throw UserError(where +
                    ": plugin info lacks its library name, version or build info; "
                    "build it with GRAFT_PLUGIN_LIBRARY(...)");
  for (const char* text : {info->library_name, info->library_version, info->build_info})
    if (!is_utf8(text))
      throw UserError(where +
                      ": plugin info's library name, version or build info is not "
                      "UTF-8 text");
  if (info->n_entries > 0 && !info->entries)
    throw UserError(where + ": plugin info lists " + std::to_string(info->n_entries) +
                    " entries but gives none");
  std::vector<PluginRecord> added;
  for (size_t i = 0; i < info->n_entries; ++i) {
    const graft_plugin_entry* e = &info->entries[i];
    const std::string name = e->name ? e->name : "";
    const int32_t kind = raw_value(e->kind);
    if (name.empty() || !e->vtable || kind < GRAFT_KIND_LAYER || kind > GRAFT_KIND_STRATEGY ||
        !e->summary)
      throw UserError(where + ": entry " + std::to_string(i) +
                      " is malformed (no name, summary, vtable or kind)");
    if (!is_name(name))
      throw UserError(where + ": entry " + std::to_string(i) +
                      " has a name that is not a word "
                      "of letters, digits, '_', '-' or '.', which a config could not write");
    if (!is_utf8(e->summary))
      throw UserError(where + ": " + kind_name(e->kind) + " '" + name +
                      "' has a summary that "
                      "is not UTF-8 text");
    check_options(*e, where + ": " + kind_name(e->kind) + " '" + name + "'");
    if (*static_cast<const size_t*>(e->vtable) < vtable_size(e->kind))
      throw UserError(where + ": " + kind_name(e->kind) + " '" + name +
                      "' has a vtable smaller than ABI " + host_abi + " defines");
    auto same = [&](const PluginRecord& r) { return r.kind == e->kind && r.name == name; };
    auto existing = std::find_if(records_.begin(), records_.end(), same);
    if (existing != records_.end())
      throw UserError("two plugins are named " + kind_name(e->kind) + " '" + name + "': one in " +
                      existing->library.string() + " and one in " + path.string() +
                      "; remove one of the libraries or rename one plugin");
    if (std::find_if(added.begin(), added.end(), same) != added.end())
      throw UserError(where + ": defines " + kind_name(e->kind) + " '" + name + "' twice");
    added.push_back(PluginRecord{e->kind, name, path, info, e});
  }
  records_.insert(records_.end(), added.begin(), added.end());
  libraries_.push_back(path);
}

void Registry::load_directory(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return;
  std::vector<fs::path> files;
  for (const auto& item : fs::directory_iterator(dir, ec)) {
    const std::string name = item.path().filename().string();
    if (name.rfind("graft_", 0) == 0 && item.path().extension() == ".so")
      files.push_back(item.path());
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& f : files) load_library(f);
}

const PluginRecord* Registry::find(graft_kind kind, const std::string& name) const {
  for (const PluginRecord& r : records_)
    if (r.kind == kind && r.name == name) return &r;
  return nullptr;
}

const PluginRecord& Registry::get(graft_kind kind, const std::string& name) const {
  if (const PluginRecord* r = find(kind, name)) return *r;
  std::vector<std::string> known = names(kind);
  throw UserError("unknown " + kind_name(kind) + " '" + name + "'" + did_you_mean(name, known) +
                  "; known " + kind_plural(kind) + ": " + (known.empty() ? "none" : join(known)) +
                  " (graft plugins lists every plugin and where it was loaded from)");
}

std::vector<std::string> Registry::names(graft_kind kind) const {
  std::vector<std::string> out;
  for (const PluginRecord& r : records_)
    if (r.kind == kind) out.push_back(r.name);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace graft::runtime
