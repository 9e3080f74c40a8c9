// graft check-plugin LIBRARY: loads the library as training would and runs every check of
// framework/check on each plugin in it, one PASS / FAIL / SKIP line per check (or --json).
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "check/plugin_checks.hpp"
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "device/host_api.hpp"
#include "plugin/registry.hpp"
#include "util/errors.hpp"

namespace fs = std::filesystem;

namespace graft::cli {

namespace {

const char* const kUsage =
    "usage: graft check-plugin LIBRARY [--name NAME] [--options TOML] [--json] [--plugin-dir DIR]\n"
    "\n"
    "Checks each plugin in LIBRARY (a graft_*.so): ABI and build info, the options schema,\n"
    "finite-difference gradients, determinism, a save/load round trip and a small learning task\n"
    "(for optimizers a quadratic bowl; for datasets repeated reads). One line per check; exit 1\n"
    "when any check fails. --options \"units = 16\" sets options (TOML) for every plugin checked;\n"
    "a required option left out gets a value chosen by the check, and the line says so.";

// A scratch folder for the checks' files, removed when the command ends.
class ScratchFolder {
 public:
  ScratchFolder() : path_(fs::temp_directory_path() / ("graft-check-" + std::to_string(getpid()))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchFolder() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  ScratchFolder(const ScratchFolder&) = delete;
  ScratchFolder& operator=(const ScratchFolder&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void print_line(const checker::CheckResult& r) {
  std::string line = std::string(checker::outcome_word(r.outcome)) + "  " + r.kind + " " +
                     r.plugin + "  " + r.check + "  " + r.value;
  if (!r.message.empty()) line += (r.value.empty() ? "" : " — ") + r.message;
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

nlohmann::ordered_json to_json(const std::vector<checker::CheckResult>& results) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const checker::CheckResult& r : results)
    out.push_back({{"plugin", r.plugin},
                   {"kind", r.kind},
                   {"check", r.check},
                   {"passed", r.outcome != checker::Outcome::fail},
                   {"skipped", r.outcome == checker::Outcome::skip},
                   {"value", r.value},
                   {"message", r.message}});
  return out;
}

}  // namespace

int check_plugin(const Arguments& args) {
  return run_command("check-plugin", [&] {
    std::string library, name, options_text;
    std::vector<std::string> dirs;
    bool json = false;
    po::options_description options("graft check-plugin options");
    options.add_options()("library", po::value<std::string>(&library)->required(),
                          "the plugin library (.so)")("name", po::value<std::string>(&name),
                                                      "check only the plugin of this name")(
        "options", po::value<std::string>(&options_text),
        "the plugins' options as TOML, e.g. \"units = 16\"")("json", po::bool_switch(&json),
                                                             "print JSON for machines")(
        "plugin-dir", po::value<std::vector<std::string>>(&dirs)->composing(),
        "also load graft_*.so plugins from this folder (repeatable)");
    po::positional_options_description positional;
    positional.add("library", 1);
    if (!parse(args, kUsage, options, positional)) return 0;

    if (!fs::exists(library))
      throw runtime::UserError("plugin library " + library + ": no such file");
    toml::table given;
    try {
      given = toml::parse(options_text, std::string("--options"));
    } catch (const toml::parse_error& e) {
      throw runtime::UserError("--options is not valid TOML: " + std::string(e.description()) +
                               " (write it as in a config table: \"units = 16\\nbias = false\")");
    }
    ScratchFolder scratch;
    checker::CheckSettings settings;
    settings.options = &given;
    settings.work_dir = scratch.path();

    std::vector<checker::CheckResult> results;
    auto report = [&](checker::CheckResult r) {
      if (!json) print_line(r);
      results.push_back(std::move(r));
    };
    const std::string file_name = fs::path(library).filename().string();
    runtime::Registry registry(runtime::host_api());
    bool loaded = true;
    try {
      registry.load_library(library);
    } catch (const runtime::UserError& e) {
      // The loader's refusal (ABI mismatch, no entry symbol, ...) is the finding.
      report({file_name, "library", "abi", checker::Outcome::fail, "", e.what()});
      loaded = false;
    }
    if (loaded) {
      // The built-in plugins, found as training finds them, for the model-level checks.
      try {
        runtime::load_plugins(registry, runtime::plugin_folders(dirs));
      } catch (const runtime::UserError& e) {
        report({file_name, "library", "names", checker::Outcome::fail, "", e.what()});
      }
      const fs::path path = registry.libraries().front();
      std::vector<const runtime::PluginRecord*> plugins;
      std::vector<std::string> names;
      for (const runtime::PluginRecord& r : registry.all())
        if (r.library == path) {
          names.push_back(r.name);
          if (name.empty() || r.name == name) plugins.push_back(&r);
        }
      if (plugins.empty())
        throw runtime::UserError(name.empty() ? file_name + " defines no plugins"
                                              : file_name + " has no plugin named '" + name + "'" +
                                                    runtime::did_you_mean(name, names) +
                                                    "; it has: " + runtime::join(names));
      report(checker::check_abi(*plugins.front()));
      for (const runtime::PluginRecord* plugin : plugins)
        for (checker::CheckResult& r : checker::check_plugin(registry, *plugin, settings))
          report(std::move(r));
    }
    int failed = 0, skipped = 0;
    for (const checker::CheckResult& r : results) {
      failed += r.outcome == checker::Outcome::fail;
      skipped += r.outcome == checker::Outcome::skip;
    }
    if (json)
      std::cout << to_json(results).dump(2) << "\n";
    else
      std::printf("%s: %d checks passed, %d failed, %d skipped\n", file_name.c_str(),
                  int(results.size()) - failed - skipped, failed, skipped);
    return failed > 0 ? 1 : 0;
  });
}

}  // namespace graft::cli
