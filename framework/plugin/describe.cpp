// The description of loaded plugins behind `graft plugins [--json]`; every string it reads was
// checked by the loader (Registry::add), so none of them is NULL here.
#include "plugin/describe.hpp"

#include "config/options.hpp"
#include "config/section_reader.hpp"

namespace graft::runtime {

namespace {
std::string range_text(const graft_option_spec& s) {
  if (s.choices) return std::string("one of ") + s.choices;
  if (s.type == GRAFT_OPT_INT || s.type == GRAFT_OPT_FLOAT || s.type == GRAFT_OPT_INT_LIST ||
      s.type == GRAFT_OPT_FLOAT_LIST) {
    if (s.min <= -1e300 && s.max >= 1e300) return "";
    const bool integer = s.type == GRAFT_OPT_INT || s.type == GRAFT_OPT_INT_LIST;
    return "[" + format_number(s.min, integer) + ", " + format_number(s.max, integer) + "]";
  }
  return "";
}
}  // namespace

nlohmann::ordered_json describe_plugins(const Registry& registry) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const PluginRecord& r : registry.all()) {
    const graft_plugin_entry& e = *r.entry;
    nlohmann::ordered_json opts = nlohmann::ordered_json::array();
    for (size_t i = 0; i < e.n_options; ++i) {
      const graft_option_spec& s = e.options[i];
      opts.push_back(
          {{"name", s.name},
           {"type", option_type_name(s.type)},
           {"default", s.default_value ? nlohmann::json(s.default_value) : nlohmann::json()},
           {"required", s.default_value == nullptr},
           {"range", range_text(s)},
           {"doc", s.doc}});
    }
    out.push_back(
        {{"kind", kind_name(r.kind)},
         {"name", r.name},
         {"summary", e.summary},
         {"library", r.library.string()},
         {"library_name", r.info->library_name},
         {"version", r.info->library_version},
         {"abi", std::to_string(r.info->abi_major) + "." + std::to_string(r.info->abi_minor)},
         {"build", r.info->build_info},
         {"cuda", (e.flags & GRAFT_ENTRY_HAS_CUDA) != 0},
         {"options", opts}});
  }
  return out;
}

}  // namespace graft::runtime
