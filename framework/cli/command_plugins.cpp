// graft plugins [--json]: every loaded plugin with its kind, library, version, summary and
// options, so a user finds what a config may name without reading source.
#include <cstdio>
#include <iostream>

#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "device/host_api.hpp"
#include "plugin/describe.hpp"

namespace graft::cli {

int plugins(const Arguments& args) {
  return run_command("plugins", [&] {
    bool json = false;
    std::vector<std::string> dirs;
    po::options_description options("graft plugins options");
    options.add_options()("json", po::bool_switch(&json), "print JSON for machines")(
        "plugin-dir", po::value<std::vector<std::string>>(&dirs)->composing(),
        "also load graft_*.so plugins from this folder (repeatable)");
    if (!parse(args, "usage: graft plugins [--json] [--plugin-dir DIR ...]", options, {})) return 0;
    runtime::Registry registry(runtime::host_api());
    runtime::load_plugins(registry, runtime::plugin_folders(dirs));
    const nlohmann::ordered_json out = runtime::describe_plugins(registry);
    if (json) {
      std::cout << out.dump(2) << "\n";
      return 0;
    }
    for (const auto& p : out) {
      std::printf("%-10s %-16s %s\n", p["kind"].get<std::string>().c_str(),
                  p["name"].get<std::string>().c_str(), p["summary"].get<std::string>().c_str());
      std::printf("           from %s (%s %s)%s\n", p["library"].get<std::string>().c_str(),
                  p["library_name"].get<std::string>().c_str(),
                  p["version"].get<std::string>().c_str(),
                  p["cuda"].get<bool>() ? ", with CUDA kernels" : "");
      for (const auto& o : p["options"]) {
        std::string def =
            o["required"].get<bool>() ? "required" : "default " + o["default"].get<std::string>();
        std::string range = o["range"].get<std::string>();
        std::printf("             %-18s %-16s %s%s%s — %s\n", o["name"].get<std::string>().c_str(),
                    o["type"].get<std::string>().c_str(), def.c_str(), range.empty() ? "" : ", ",
                    range.c_str(), o["doc"].get<std::string>().c_str());
      }
    }
    if (out.empty())
      std::printf(
          "no plugins found; searched --plugin-dir, GRAFT_PLUGIN_PATH and the folders "
          "beside the graft executable\n");
    return 0;
  });
}

}  // namespace graft::cli
