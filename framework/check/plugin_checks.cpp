// graft check-plugin's checks of one plugin: the library's ABI, the options schema (and the
// values the other checks create the plugin with), then the checks of the plugin's kind.
#include "check/plugin_checks.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>

#include "check/check_common.hpp"
#include "util/errors.hpp"

namespace graft::checker {

using detail::number;
using runtime::Failure;

const char* outcome_word(Outcome outcome) {
  switch (outcome) {
    case Outcome::pass: return "PASS";
    case Outcome::fail: return "FAIL";
    case Outcome::skip: return "SKIP";
  }
  return "?";
}

CheckResult check_abi(const runtime::PluginRecord& record) {
  const graft_plugin_info& info = *record.info;
  CheckResult r{record.library.filename().string(), "library", "abi", Outcome::pass, "", ""};
  const std::string abi = std::to_string(info.abi_major) + "." + std::to_string(info.abi_minor);
  r.value = "ABI " + abi + " (this graft: " + std::to_string(GRAFT_ABI_MAJOR) + "." +
            std::to_string(GRAFT_ABI_MINOR) + "); " +
            (info.library_name ? info.library_name : "?") + " " +
            (info.library_version ? info.library_version : "?") + "; built with " +
            (info.build_info ? info.build_info : "?");
  // The loader refuses these already; stated here so the report says what was compared.
  if (info.abi_major != GRAFT_ABI_MAJOR || info.abi_minor > GRAFT_ABI_MINOR) {
    r.outcome = Outcome::fail;
    r.message = "the library needs ABI " + abi;
  } else if (!info.library_name || !info.library_version || !info.build_info) {
    r.outcome = Outcome::fail;
    r.message = "library name, version and build info must all be set (GRAFT_PLUGIN_LIBRARY does)";
  }
  return r;
}

namespace {

bool is_key(const char* name) {
  if (!name || !*name) return false;
  for (const char* c = name; *c; ++c)
    if (!std::isalnum(static_cast<unsigned char>(*c)) && *c != '_' && *c != '-') return false;
  return true;
}

// The schema itself: names, types, ranges and docs a config and `graft plugins` rely on.
void check_schema(const graft_plugin_entry& entry) {
  std::set<std::string> seen;
  std::vector<std::string> problems;
  for (size_t i = 0; i < entry.n_options; ++i) {
    const graft_option_spec& s = entry.options[i];
    const std::string name = s.name ? s.name : "";
    const std::string label = "option " + std::to_string(i) + " ('" + name + "')";
    if (!is_key(s.name))
      problems.push_back(label + ": a name must be letters, digits, _ or -");
    else if (!seen.insert(name).second)
      problems.push_back(label + ": the name is used twice");
    if (s.type < GRAFT_OPT_BOOL || s.type > GRAFT_OPT_STRING_LIST)
      problems.push_back(label + ": unknown type " + std::to_string(int(s.type)));
    if (!s.doc || !*s.doc) problems.push_back(label + ": no doc line (graft plugins shows it)");
    if (std::isnan(s.min) || std::isnan(s.max) || s.min > s.max)
      problems.push_back(label + ": the range [" + number(s.min) + ", " + number(s.max) +
                         "] is empty");
    if (name == "type")
      problems.push_back(label + ": 'type' is the framework's key in a config table");
  }
  if (!problems.empty()) throw Failure(runtime::join(problems, "; "));
}

// A value for a required option the user did not give: the type's usual small value, moved
// into the option's range. Strings without choices (paths) cannot be guessed.
bool choose(const graft_option_spec& s, toml::table& into, std::string& text) {
  const auto number_in_range = [&](double preferred) {
    return std::clamp(preferred, s.min, s.max);
  };
  const std::string choices = s.choices ? s.choices : "";
  const std::string first_choice = choices.substr(0, choices.find('|'));
  switch (s.type) {
    case GRAFT_OPT_BOOL:
      into.insert_or_assign(s.name, false);
      text = "false";
      return true;
    case GRAFT_OPT_INT: {
      const int64_t v = static_cast<int64_t>(std::ceil(number_in_range(8.0)));
      into.insert_or_assign(s.name, v);
      text = std::to_string(v);
      return true;
    }
    case GRAFT_OPT_FLOAT: {
      const double v = number_in_range(0.5);
      into.insert_or_assign(s.name, v);
      text = number(v);
      return true;
    }
    case GRAFT_OPT_INT_LIST: {
      const int64_t v = static_cast<int64_t>(std::ceil(number_in_range(8.0)));
      into.insert_or_assign(s.name, toml::array{v});
      text = "[" + std::to_string(v) + "]";
      return true;
    }
    case GRAFT_OPT_FLOAT_LIST: {
      const double v = number_in_range(0.5);
      into.insert_or_assign(s.name, toml::array{v});
      text = "[" + number(v) + "]";
      return true;
    }
    case GRAFT_OPT_STRING:
      if (choices.empty()) return false;
      into.insert_or_assign(s.name, first_choice);
      text = "\"" + first_choice + "\"";
      return true;
    case GRAFT_OPT_STRING_LIST:
      if (choices.empty()) return false;
      into.insert_or_assign(s.name, toml::array{first_choice});
      text = "[\"" + first_choice + "\"]";
      return true;
  }
  return false;
}

// The options check. On success `options` holds what the plugin is created with: --options
// plus a chosen value for each required option not given.
CheckResult options_check(const runtime::PluginRecord& record, const toml::table* given,
                          toml::table& options, bool& usable) {
  return detail::run_check(record, "options", [&](CheckResult& r) {
    const graft_plugin_entry& entry = *record.entry;
    check_schema(entry);
    // `required` holds a value for each required option, so that binding it checks every
    // default; it takes the user's value only where the check cannot choose one (paths), so
    // that a bad --options value stays the user's error (exit 2), reported by the caller.
    toml::table required, chosen;
    std::vector<std::string> notes;
    for (size_t i = 0; i < entry.n_options; ++i) {
      const graft_option_spec& s = entry.options[i];
      if (s.default_value) continue;
      const bool is_given = given && given->contains(s.name);
      std::string text;
      if (choose(s, required, text)) {
        if (is_given) continue;
        choose(s, chosen, text);
        notes.push_back(std::string(s.name) + " = " + text + " (required; chosen by the check)");
      } else if (is_given) {
        required.insert_or_assign(s.name, *given->get(s.name));
      } else {
        throw Failure(std::string("required option '") + s.name + "' (" +
                      runtime::option_type_name(s.type) + ": " + s.doc +
                      ") has no value the check can choose; give one with --options '" + s.name +
                      " = ...'");
      }
    }
    detail::bind(record, required);
    options = given ? *given : toml::table{};
    for (const auto& [key, value] : chosen) options.insert_or_assign(key, value);
    r.value = entry.n_options == 0 ? "no options"
                                   : detail::count(int64_t(entry.n_options), "option") +
                                         "; names unique, defaults valid";
    r.message = runtime::join(notes, "; ");
    usable = true;
  });
}

}  // namespace

std::vector<CheckResult> check_plugin(const runtime::Registry& registry,
                                      const runtime::PluginRecord& record,
                                      const CheckSettings& settings) {
  std::vector<CheckResult> results;
  toml::table options;
  bool usable = false;
  results.push_back(options_check(record, settings.options, options, usable));
  if (!usable) return results;
  try {
    detail::bind(record, options);
  } catch (const runtime::UserError& e) {
    throw runtime::UserError(std::string("--options: ") + e.what() +
                             " (--options applies to every plugin checked; pick one with --name)");
  }
  try {
    std::vector<CheckResult> more;
    switch (record.kind) {
      case GRAFT_KIND_LAYER:
        more = detail::layer_checks(registry, record, options, settings);
        break;
      case GRAFT_KIND_ACTIVATION:
        more = detail::activation_checks(registry, record, options, settings);
        break;
      case GRAFT_KIND_LOSS: more = detail::loss_checks(registry, record, options, settings); break;
      case GRAFT_KIND_OPTIMIZER: more = detail::optimizer_checks(record, options, settings); break;
      case GRAFT_KIND_DATASET: more = detail::dataset_checks(record, options, settings); break;
      case GRAFT_KIND_STRATEGY:
        more.push_back(detail::strategy_learns(registry, record, options, settings));
        break;
    }
    results.insert(results.end(), more.begin(), more.end());
  } catch (const std::exception& e) {
    // A fault outside any one check (a plugin that refuses later what it accepted earlier).
    results.push_back(CheckResult{record.name, runtime::kind_name(record.kind), "checks",
                                  Outcome::fail, "", e.what()});
  }
  return results;
}

}  // namespace graft::checker
