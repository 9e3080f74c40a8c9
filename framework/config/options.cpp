// Schema checking of plugin tables. Messages follow one shape:
//   file:line:column: [section] key: what is wrong; how to fix it
#include "config/options.hpp"

#include <algorithm>
#include <cmath>

#include "config/section_reader.hpp"
#include "plugin/registry.hpp"
#include "util/errors.hpp"

namespace graft::runtime {

namespace {

std::vector<std::string> split_choices(const char* choices) {
  std::vector<std::string> out;
  if (!choices) return out;
  std::string s = choices;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find('|', start);
    if (end == std::string::npos) end = s.size();
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

struct Binder {
  const graft_plugin_entry& entry;
  const std::string& section;
  BoundOptions& out;

  [[noreturn]] void fail(const toml::node& n, const graft_option_spec& s, const std::string& why) {
    throw UserError(where(n) + ": " + section + " " + s.name + ": " + why + " (" +
                    kind_name(entry.kind) + " '" + entry.name + "': " + s.doc + ")");
  }

  double number(const toml::node& n, const graft_option_spec& s, bool integer) {
    double v;
    if (n.is_integer())
      v = static_cast<double>(*n.value<int64_t>());
    else if (n.is_floating_point() && !integer)
      v = *n.value<double>();
    else
      fail(n, s,
           "expected " + std::string(integer ? "an integer" : "a number") + ", got " +
               describe_value(n));
    if (std::isnan(v) || v < s.min || v > s.max)
      fail(n, s,
           format_number(v, integer) + " is out of range [" + format_number(s.min, integer) + ", " +
               format_number(s.max, integer) + "]");
    return v;
  }

  std::string string(const toml::node& n, const graft_option_spec& s) {
    if (!n.is_string()) fail(n, s, "expected a string, got " + describe_value(n));
    std::string v = *n.value<std::string>();
    std::vector<std::string> choices = split_choices(s.choices);
    if (!choices.empty() && std::find(choices.begin(), choices.end(), v) == choices.end())
      fail(n, s, "'" + v + "' is not one of " + join(choices) + did_you_mean(v, choices));
    return v;
  }

  graft_option_value bind(const graft_option_spec& s, const toml::node& n) {
    graft_option_value v{};
    out.strings_.push_back(s.name);
    v.name = out.strings_.back().c_str();
    v.type = s.type;
    const toml::array* list = n.as_array();
    bool is_list = s.type == GRAFT_OPT_INT_LIST || s.type == GRAFT_OPT_FLOAT_LIST ||
                   s.type == GRAFT_OPT_STRING_LIST;
    if (is_list && !list) fail(n, s, "expected a list, got " + describe_value(n));
    switch (s.type) {
      case GRAFT_OPT_BOOL:
        if (!n.is_boolean()) fail(n, s, "expected true or false, got " + describe_value(n));
        v.int_value = *n.value<bool>() ? 1 : 0;
        out.resolved_.insert_or_assign(s.name, *n.value<bool>());
        break;
      case GRAFT_OPT_INT:
        v.int_value = static_cast<int64_t>(number(n, s, true));
        out.resolved_.insert_or_assign(s.name, v.int_value);
        break;
      case GRAFT_OPT_FLOAT:
        v.float_value = number(n, s, false);
        out.resolved_.insert_or_assign(s.name, v.float_value);
        break;
      case GRAFT_OPT_STRING:
        out.strings_.push_back(string(n, s));
        v.string_value = out.strings_.back().c_str();
        out.resolved_.insert_or_assign(s.name, out.strings_.back());
        break;
      case GRAFT_OPT_INT_LIST: {
        // Nested lists are read in order: stages = [[0, 3], [4, 7]] is [0, 3, 4, 7], so a
        // list of pairs can be written as pairs. The resolved config keeps what was written.
        auto& ints = out.ints_.emplace_back();
        toml::array copy;
        for (const toml::node& e : *list) {
          if (const toml::array* inner = e.as_array()) {
            toml::array inner_copy;
            for (const toml::node& x : *inner) {
              if (x.is_array()) fail(x, s, "lists nest one level deep at most");
              ints.push_back(static_cast<int64_t>(number(x, s, true)));
              inner_copy.push_back(ints.back());
            }
            copy.push_back(std::move(inner_copy));
            continue;
          }
          ints.push_back(static_cast<int64_t>(number(e, s, true)));
          copy.push_back(ints.back());
        }
        v.count = ints.size();
        v.ints = ints.data();
        out.resolved_.insert_or_assign(s.name, std::move(copy));
        break;
      }
      case GRAFT_OPT_FLOAT_LIST: {
        auto& floats = out.floats_.emplace_back();
        toml::array copy;
        for (const toml::node& e : *list) {
          floats.push_back(number(e, s, false));
          copy.push_back(floats.back());
        }
        v.count = floats.size();
        v.floats = floats.data();
        out.resolved_.insert_or_assign(s.name, std::move(copy));
        break;
      }
      case GRAFT_OPT_STRING_LIST: {
        auto& ptrs = out.string_lists_.emplace_back();
        toml::array copy;
        for (const toml::node& e : *list) {
          out.strings_.push_back(string(e, s));
          ptrs.push_back(out.strings_.back().c_str());
          copy.push_back(out.strings_.back());
        }
        v.count = ptrs.size();
        v.strings = ptrs.data();
        out.resolved_.insert_or_assign(s.name, std::move(copy));
        break;
      }
      default:
        throw Failure(kind_name(entry.kind) + " '" + entry.name + "': option '" + s.name +
                      "' has an unknown type in its schema");
    }
    return v;
  }
};

}  // namespace

std::string option_type_name(graft_option_type type) {
  switch (type) {
    case GRAFT_OPT_BOOL: return "boolean";
    case GRAFT_OPT_INT: return "integer";
    case GRAFT_OPT_FLOAT: return "float";
    case GRAFT_OPT_STRING: return "string";
    case GRAFT_OPT_INT_LIST: return "list of integers";
    case GRAFT_OPT_FLOAT_LIST: return "list of floats";
    case GRAFT_OPT_STRING_LIST: return "list of strings";
  }
  return "unknown";
}

BoundOptions bind_options(const graft_plugin_entry& entry, const toml::table* table,
                          const std::string& section, const std::vector<std::string>& reserved) {
  BoundOptions out;
  Binder binder{entry, section, out};
  std::vector<std::string> known;
  for (size_t i = 0; i < entry.n_options; ++i) known.push_back(entry.options[i].name);

  if (table) {
    for (const auto& [key, node] : *table) {
      std::string k(key.str());
      if (std::find(reserved.begin(), reserved.end(), k) != reserved.end()) continue;
      if (std::find(known.begin(), known.end(), k) != known.end()) continue;
      std::vector<std::string> all = known;
      all.insert(all.end(), reserved.begin(), reserved.end());
      throw UserError(where(key.source()) + ": " + section + " unknown key '" + k + "' for " +
                      kind_name(entry.kind) + " '" + entry.name + "'" + did_you_mean(k, all) +
                      "; known keys: " + (all.empty() ? "none" : join(all)));
    }
  }

  for (size_t i = 0; i < entry.n_options; ++i) {
    const graft_option_spec& s = entry.options[i];
    const toml::node* given = table ? table->get(s.name) : nullptr;
    if (given) {
      out.values_.push_back(binder.bind(s, *given));
      continue;
    }
    if (!s.default_value) {
      std::string at = table ? where(*table) + ": " : "";
      throw UserError(at + section + " missing required key '" + s.name + "' (" +
                      option_type_name(s.type) + ") for " + kind_name(entry.kind) + " '" +
                      entry.name + "': " + s.doc);
    }
    toml::table parsed;
    try {
      parsed = toml::parse(std::string("value = ") + s.default_value,
                           std::string(entry.name) + " default of " + s.name);
    } catch (const toml::parse_error& e) {
      throw Failure(kind_name(entry.kind) + " '" + entry.name + "': the default of '" + s.name +
                    "' is not valid TOML: " + std::string(e.description()));
    }
    out.values_.push_back(binder.bind(s, *parsed.get("value")));
  }
  out.c_ = graft_options{sizeof(graft_options), out.values_.size(), out.values_.data()};
  return out;
}

}  // namespace graft::runtime
