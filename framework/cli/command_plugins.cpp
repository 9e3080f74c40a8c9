// graft plugins [--json]: every loaded plugin with its kind, library, version, summary and
// options, so a user finds what a config may name without reading source.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "config/options.hpp"
#include "device/host_api.hpp"
#include "plugin/registry.hpp"

namespace graft::cli {

namespace {
std::string range_text(const graft_option_spec& s) {
  if (s.choices) return std::string("one of ") + s.choices;
  if (s.type == GRAFT_OPT_INT || s.type == GRAFT_OPT_FLOAT || s.type == GRAFT_OPT_INT_LIST ||
      s.type == GRAFT_OPT_FLOAT_LIST) {
    if (s.min <= -1e300 && s.max >= 1e300) return "";
    char buf[64];
    std::snprintf(buf, sizeof buf, "[%g, %g]", s.min, s.max);
    return buf;
  }
  return "";
}
}  // namespace

int plugins(const Arguments& args) {
  return run_command("plugins", [&] {
    bool json = false;
    std::vector<std::string> dirs;
    po::options_description options("graft plugins options");
    options.add_options()("json", po::bool_switch(&json), "print JSON for machines")
        ("plugin-dir", po::value<std::vector<std::string>>(&dirs)->composing(),
         "also load graft_*.so plugins from this folder (repeatable)");
    if (!parse(args, "usage: graft plugins [--json] [--plugin-dir DIR ...]", options, {})) return 0;
    runtime::Registry registry(runtime::host_api());
    runtime::load_plugins(registry, dirs);
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const runtime::PluginRecord& r : registry.all()) {
      const graft_plugin_entry& e = *r.entry;
      nlohmann::ordered_json opts = nlohmann::ordered_json::array();
      for (size_t i = 0; i < e.n_options; ++i) {
        const graft_option_spec& s = e.options[i];
        opts.push_back({{"name", s.name},
                        {"type", runtime::option_type_name(s.type)},
                        {"default", s.default_value ? nlohmann::json(s.default_value) : nlohmann::json()},
                        {"required", s.default_value == nullptr},
                        {"range", range_text(s)},
                        {"doc", s.doc ? s.doc : ""}});
      }
      out.push_back({{"kind", runtime::kind_name(r.kind)},
                     {"name", r.name},
                     {"summary", e.summary ? e.summary : ""},
                     {"library", r.library.string()},
                     {"library_name", r.info->library_name},
                     {"version", r.info->library_version},
                     {"abi", std::to_string(r.info->abi_major) + "." + std::to_string(r.info->abi_minor)},
                     {"build", r.info->build_info},
                     {"cuda", (e.flags & GRAFT_ENTRY_HAS_CUDA) != 0},
                     {"options", opts}});
    }
    if (json) {
      std::cout << out.dump(2) << "\n";
      return 0;
    }
    for (const auto& p : out) {
      std::printf("%-10s %-16s %s\n", p["kind"].get<std::string>().c_str(),
                  p["name"].get<std::string>().c_str(), p["summary"].get<std::string>().c_str());
      std::printf("           from %s (%s %s)%s\n", p["library"].get<std::string>().c_str(),
                  p["library_name"].get<std::string>().c_str(), p["version"].get<std::string>().c_str(),
                  p["cuda"].get<bool>() ? ", with CUDA kernels" : "");
      for (const auto& o : p["options"]) {
        std::string def = o["required"].get<bool>() ? "required" : "default " + o["default"].get<std::string>();
        std::string range = o["range"].get<std::string>();
        std::printf("             %-18s %-16s %s%s%s — %s\n", o["name"].get<std::string>().c_str(),
                    o["type"].get<std::string>().c_str(), def.c_str(), range.empty() ? "" : ", ",
                    range.c_str(), o["doc"].get<std::string>().c_str());
      }
    }
    if (out.empty())
      std::printf("no plugins found; searched --plugin-dir, GRAFT_PLUGIN_PATH and the folders "
                  "beside the graft executable\n");
    return 0;
  });
}

}  // namespace graft::cli
