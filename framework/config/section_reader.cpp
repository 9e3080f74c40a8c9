// Typed, range-checked reads of the framework's config keys, each failure naming the place,
// the section, the key and what would be accepted.
#include "config/section_reader.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "util/errors.hpp"

namespace graft::runtime {

namespace {

// Values from --set that should have been strings parse as numbers or booleans first.
std::string quoting_hint(const toml::node& node) {
  const auto& path = node.source().path;
  if (!path || path->rfind("--set ", 0) != 0) return "";
  return " (quote it to pass a string: --set 'key=\"text\"')";
}

}  // namespace

std::string format_number(double value, bool integer) {
  if (integer && std::isfinite(value) && std::fabs(value) < 9e15 && value == std::floor(value))
    return std::to_string(static_cast<int64_t>(value));
  std::ostringstream os;
  os.precision(17);
  for (int digits = 1; digits <= 17; ++digits) {
    std::ostringstream attempt;
    attempt.precision(digits);
    attempt << value;
    // strtod, not stod: stod throws on a subnormal ("4.9e-324" underflows, errno ERANGE).
    if (std::strtod(attempt.str().c_str(), nullptr) == value) return attempt.str();
  }
  os << value;
  return os.str();
}

SectionReader::SectionReader(const toml::table* table, std::string section, std::string fallback)
    : table_(table), section_(std::move(section)), fallback_(std::move(fallback)) {}

void SectionReader::reject_unknown(const std::vector<std::string>& known) const {
  if (!table_) return;
  for (const auto& [key, node] : *table_) {
    std::string name(key.str());
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    std::string at = key.source().path ? where(key.source()) : location();
    throw UserError(at + ": " + section_ + " unknown key '" + name + "'" +
                    did_you_mean(name, known) + "; known keys: " + join(known));
  }
}

const toml::node* SectionReader::find(const std::string& key) const {
  return table_ ? table_->get(key) : nullptr;
}

std::string SectionReader::location() const {
  if (table_ && table_->source().path) return where(*table_);
  return fallback_;
}

void SectionReader::fail(const std::string& key, const std::string& why) const {
  if (const toml::node* node = find(key)) fail_at(*node, key, why);
  throw UserError(location() + ": " + section_ + " " + key + ": " + why);
}

void SectionReader::fail_at(const toml::node& node, const std::string& key,
                            const std::string& why) const {
  std::string at = node.source().path ? where(node) : location();
  throw UserError(at + ": " + section_ + " " + key + ": " + why);
}

int64_t SectionReader::integer(const std::string& key, int64_t fallback, int64_t minimum,
                               int64_t maximum) const {
  const toml::node* node = find(key);
  if (!node) return fallback;
  if (!node->is_integer()) fail_at(*node, key, "expected an integer, got " + describe_value(*node));
  int64_t value = *node->value<int64_t>();
  if (value < minimum)
    fail_at(*node, key,
            "must be at least " + std::to_string(minimum) + ", got " + std::to_string(value));
  if (value > maximum)
    fail_at(*node, key,
            "must be at most " + std::to_string(maximum) + ", got " + std::to_string(value));
  return value;
}

double SectionReader::number(const std::string& key, double fallback, double minimum,
                             bool minimum_excluded) const {
  const toml::node* node = find(key);
  if (!node) return fallback;
  if (!node->is_integer() && !node->is_floating_point())
    fail_at(*node, key, "expected a number, got " + describe_value(*node));
  double value = *node->value<double>();
  if (!std::isfinite(value))
    fail_at(*node, key, "expected a finite number, got " + format_number(value));
  if (minimum_excluded ? value <= minimum : value < minimum)
    fail_at(*node, key,
            std::string(minimum_excluded ? "must be greater than " : "must be at least ") +
                format_number(minimum) + ", got " + format_number(value));
  return value;
}

bool SectionReader::boolean(const std::string& key, bool fallback) const {
  const toml::node* node = find(key);
  if (!node) return fallback;
  if (!node->is_boolean())
    fail_at(*node, key, "expected true or false, got " + describe_value(*node));
  return *node->value<bool>();
}

std::string SectionReader::string(const std::string& key, const std::string& fallback,
                                  const std::vector<std::string>& choices) const {
  const toml::node* node = find(key);
  if (!node) return fallback;
  if (!node->is_string())
    fail_at(*node, key, "expected a string, got " + describe_value(*node) + quoting_hint(*node));
  std::string value = *node->value<std::string>();
  if (!choices.empty() && std::find(choices.begin(), choices.end(), value) == choices.end())
    fail_at(*node, key,
            "'" + value + "' is not one of " + join(choices) + did_you_mean(value, choices));
  return value;
}

const toml::table* section_table(const toml::table& root, const std::string& key,
                                 const std::string& section) {
  const toml::node* node = root.get(key);
  if (!node) return nullptr;
  if (const toml::table* table = node->as_table()) return table;
  throw UserError(where(*node) + ": " + section + " must be a table, got " + describe_value(*node) +
                  "; write it as " + section + " with its keys below");
}

void missing(const std::string& at, const std::string& what, const std::string& example) {
  throw UserError(at + ": " + what + "; add it, e.g.\n" + example);
}

// The `type` of a plugin's table, which must be a non-empty string.
std::string plugin_type(const SectionReader& in, const std::string& example) {
  std::string type = in.string("type", "");
  if (!in.find("type")) missing(in.location(), in.section() + " has no 'type'", example);
  if (type.empty()) in.fail("type", "must name a plugin, e.g. type = \"...\"");
  return type;
}

}  // namespace graft::runtime
