// Reading config files with their includes, and --set overrides, into one TOML tree whose nodes
// keep the place they were written (file:line:column, or the --set flag) for later messages.
#include "config/config_tree.hpp"

#include <memory>
#include <sstream>
#include <vector>

#include "config/config.hpp"
#include "util/errors.hpp"

namespace graft::runtime {

namespace fs = std::filesystem;

namespace {

// The files being read, outermost first: for cycle detection and for messages.
struct IncludeChain {
  std::vector<fs::path> identities;  // weakly canonical, to compare
  std::vector<std::string> shown;    // as the user would write them

  std::string text(const std::string& last = "") const {
    std::vector<std::string> all = shown;
    if (!last.empty()) all.push_back(last);
    return join(all, " -> ");
  }
};

toml::table parse_file(const std::string& shown) {
  try {
    return toml::parse_file(shown);
  } catch (const toml::parse_error& e) {
    throw UserError(where(e.source()) + ": TOML syntax error: " + std::string(e.description()));
  }
}

// The strings of `include`, which may be one string or a list of them.
std::vector<const toml::value<std::string>*> include_entries(const toml::node& include) {
  std::vector<const toml::value<std::string>*> entries;
  if (const auto* one = include.as_string()) {
    entries.push_back(one);
    return entries;
  }
  const toml::array* list = include.as_array();
  if (!list)
    throw UserError(where(include) + ": include: expected a list of file names, got " +
                    describe_value(include) + "; e.g. include = [\"base.toml\"]");
  for (const toml::node& element : *list) {
    if (!element.is_string())
      throw UserError(where(element) + ": include: expected a file name (a string), got " +
                      describe_value(element) + "; e.g. include = [\"base.toml\"]");
    entries.push_back(element.as_string());
  }
  return entries;
}

toml::table load_with_includes(const fs::path& file, IncludeChain& chain) {
  toml::table document = parse_file(file.string());
  const toml::node* include = document.get("include");
  if (!include) return document;

  toml::table merged;
  for (const toml::value<std::string>* entry : include_entries(*include)) {
    fs::path target = (file.parent_path() / entry->get()).lexically_normal();
    std::error_code error;
    if (!fs::is_regular_file(target, error))
      throw UserError(where(*entry) + ": include '" + entry->get() + "' not found (looked for '" +
                      target.string() + "'); include chain: " + chain.text());
    fs::path identity = fs::weakly_canonical(target, error);
    for (const fs::path& open : chain.identities)
      if (open == identity)
        throw UserError(where(*entry) + ": include cycle: " + chain.text(target.string()) +
                        "; remove one of these includes");
    chain.identities.push_back(identity);
    chain.shown.push_back(target.string());
    merge_into(merged, load_with_includes(target, chain));
    chain.identities.pop_back();
    chain.shown.pop_back();
  }
  document.erase("include");
  merge_into(merged, std::move(document));
  return merged;
}

// The value of an override: TOML if it parses as one value, else the text as a string. Either
// way it is parsed from a document named after the flag, so its source names the flag.
toml::table parse_override_value(const std::string& text, const std::string& origin) {
  try {
    toml::table document = toml::parse("value = " + text, std::string(origin));
    if (document.size() == 1 && document.get("value")) return document;
  } catch (const toml::parse_error&) {
    // Not a TOML value: a bare string, such as parallel.strategy=data_parallel.
  }
  std::ostringstream quoted;
  quoted << toml::table{{"value", text}};
  return toml::parse(quoted.str(), std::string(origin));
}

std::string trim(const std::string& s) {
  size_t begin = s.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  size_t end = s.find_last_not_of(" \t");
  return s.substr(begin, end - begin + 1);
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> segments;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    segments.push_back(trim(path.substr(start, dot == std::string::npos ? dot : dot - start)));
    if (dot == std::string::npos) return segments;
    start = dot + 1;
  }
}

// "model.layers[2].units" as "model.layers.2.units": the index form of Python and jq.
std::string dotted_indices(const std::string& key, const std::string& origin) {
  std::string out;
  for (size_t i = 0; i < key.size(); ++i) {
    if (key[i] == ']')
      throw UserError(origin + ": ']' without '[' in the key; index a list as layers[0]");
    if (key[i] != '[') {
      out += key[i];
      continue;
    }
    const size_t close = key.find(']', i);
    const std::string index = key.substr(i + 1, close == std::string::npos ? close : close - i - 1);
    if (close == std::string::npos || index.empty() ||
        index.find_first_not_of("0123456789") != std::string::npos)
      throw UserError(origin + ": '[" + index + (close == std::string::npos ? "" : "]") +
                      "' is not a list index; write one as layers[0] (or layers.0)");
    out += "." + index;
    i = close;
  }
  return out;
}

bool parse_index(const std::string& segment, size_t* index) {
  if (segment.empty() || segment.find_first_not_of("0123456789") != std::string::npos ||
      segment.size() > 9)
    return false;
  *index = std::stoul(segment);
  return true;
}

}  // namespace

toml::table load_tree(const fs::path& file) {
  std::error_code error;
  if (!fs::exists(file, error)) throw UserError("config file '" + file.string() + "' not found");
  if (!fs::is_regular_file(file, error))
    throw UserError("config file '" + file.string() + "' is not a file");
  IncludeChain chain;
  chain.identities.push_back(fs::weakly_canonical(file, error));
  chain.shown.push_back(file.string());
  return load_with_includes(file, chain);
}

void merge_into(toml::table& base, toml::table&& top) {
  for (auto&& [key, node] : top) {
    toml::node* existing = base.get(key.str());
    if (existing && existing->is_table() && node.is_table()) {
      merge_into(*existing->as_table(), std::move(*node.as_table()));
      continue;
    }
    // Erase first so the key, too, takes the source of the file that wins.
    base.erase(key.str());
    base.insert_or_assign(key, std::move(node));
  }
}

void apply_override(toml::table& root, const std::string& assignment) {
  const std::string origin = "--set " + assignment;
  size_t equals = assignment.find('=');
  std::vector<std::string> segments = split_path(
      equals == std::string::npos ? "" : dotted_indices(assignment.substr(0, equals), origin));
  for (const std::string& segment : segments)
    if (segment.empty())
      throw UserError(origin + ": expected key.path=value, e.g. --set optimizer.lr=0.05");

  if (segments.front() == "include")
    throw UserError(origin + ": includes are read before --set is applied; add the file to " +
                    "include = [...] in the config instead");

  toml::table parsed = parse_override_value(trim(assignment.substr(equals + 1)), origin);
  toml::node& value = *parsed.get("value");
  toml::source_region flag{{}, {}, std::make_shared<const std::string>(origin)};

  toml::node* current = &root;
  std::string walked;  // "model.layers", for messages
  for (size_t i = 0; i < segments.size(); ++i) {
    const std::string& segment = segments[i];
    bool last = i + 1 == segments.size();
    if (toml::table* table = current->as_table()) {
      if (last) {
        // An existing key keeps its own source; a new one points at the flag.
        table->insert_or_assign(toml::key(segment, flag), std::move(value));
        return;
      }
      toml::node* child = table->get(segment);
      if (!child)
        child = &table->insert_or_assign(toml::key(segment, flag), toml::table{}).first->second;
      current = child;
    } else if (toml::array* list = current->as_array()) {
      size_t index = 0;
      std::string range =
          list->empty() ? "it is empty" : "indices 0 to " + std::to_string(list->size() - 1);
      if (!parse_index(segment, &index))
        throw UserError(origin + ": '" + walked + "' is a list, so the next part of the key " +
                        "must be an index (" + range + "), not '" + segment + "'");
      if (index >= list->size())
        throw UserError(origin + ": index " + segment + " is out of range: '" + walked + "' has " +
                        std::to_string(list->size()) + " entries (" + range + ")");
      if (last) {
        list->replace(list->cbegin() + static_cast<std::ptrdiff_t>(index), std::move(value));
        return;
      }
      current = list->get(index);
    } else {
      throw UserError(origin + ": '" + walked + "' is " + describe_value(*current) +
                      ", not a table, so it has no key '" + segment + "'");
    }
    walked += (walked.empty() ? "" : ".") + segment;
  }
}

}  // namespace graft::runtime
