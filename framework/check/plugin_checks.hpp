// The checks `graft check-plugin` runs on each plugin of a library: options schema, gradients
// by finite differences, determinism, save/load, learning a small task, optimizer descent and
// dataset reads. Every fault of the plugin becomes a FAIL result; nothing here lets one escape.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "config/toml.hpp"
#include "plugin/registry.hpp"

namespace graft::checker {

enum class Outcome { pass, fail, skip };

// One line of the report: `PASS  layer swish  gradient  max relative error 2.1e-04 ...`.
struct CheckResult {
  std::string plugin;  // the plugin's name, or the library's file name for library checks
  std::string kind;    // "layer", "activation", ..., or "library"
  std::string check;   // "abi", "options", "gradient", "determinism", "save_load", "learns", ...
  Outcome outcome = Outcome::pass;
  std::string value;    // what was measured
  std::string message;  // why it failed or was skipped; notes such as chosen option values
};

struct CheckSettings {
  const toml::table* options = nullptr;  // --options: the same table for every plugin checked
  std::filesystem::path work_dir;        // scratch: safetensors files, dataset caches
  double learn_factor = 5.0;       // layers, activations, strategies: the loss falls this much
  double loss_learn_factor = 2.0;  // losses: a linear model trained with the loss reduces it
  double bowl_factor = 10.0;       // optimizers: distance to a quadratic bowl's minimum shrinks
};

// "PASS", "FAIL", "SKIP".
const char* outcome_word(Outcome outcome);

// ABI version and build info of the library that holds `record`, against this graft's.
CheckResult check_abi(const runtime::PluginRecord& record);

// Every check of one plugin. `registry` also holds the built-in plugins the model-level checks
// put around it (linear, mse, adam). Throws runtime::UserError only when --options does not
// bind (the user's mistake, not the plugin's).
std::vector<CheckResult> check_plugin(const runtime::Registry& registry,
                                      const runtime::PluginRecord& record,
                                      const CheckSettings& settings);

}  // namespace graft::checker
