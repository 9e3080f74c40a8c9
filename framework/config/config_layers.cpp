// The model's layer list: [[model.layers]] tables, the inner lists of residual blocks, and
// each layer's `tie` of its parameters to earlier ones.
#include <optional>

#include "config/config.hpp"
#include "config/section_reader.hpp"
#include "util/errors.hpp"

namespace graft::runtime {

namespace {

// `tie = { weight = "layers.0.weight" }`: each key a parameter of this layer, each value the
// name of an earlier one (graft validate lists the names). The model checks the names.
std::vector<TieConfig> read_ties(const toml::node& node, const SectionReader& layer) {
  const char* example = "tie = { weight = \"layers.0.weight\" }";
  const toml::table* table = node.as_table();
  if (!table)
    layer.fail("tie",
               "expected a table of this layer's parameter = the parameter it shares, e.g. " +
                   std::string(example) + ", got " + describe_value(node));
  if (table->empty()) layer.fail("tie", std::string("the table is empty; e.g. ") + example);
  std::vector<TieConfig> ties;
  for (const auto& [key, value] : *table) {
    const std::optional<std::string> target = value.value<std::string>();
    if (!target || target->empty())
      layer.fail_at(value, "tie." + std::string(key.str()),
                    "expected the name of an earlier layer's parameter, e.g. " +
                        std::string(example) + ", got " + describe_value(value));
    ties.push_back(
        TieConfig{std::string(key.str()), *target,
                  where(value) + ": " + layer.section() + " tie." + std::string(key.str())});
  }
  return ties;
}

// The entries of a list of layer tables: `array_name` is its TOML path ("model.layers",
// "model.layers.layers" inside a residual block) and `index_prefix` the indices of the blocks
// it is in ("2." for block 2), so each section reads like "[[model.layers.layers]] #2.0".
std::vector<NamedTable> read_layer_list(const toml::array& layers, const SectionReader& in,
                                        const std::string& array_name,
                                        const std::string& index_prefix) {
  std::vector<NamedTable> out;
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string index = index_prefix + std::to_string(i);
    std::string section = "[[" + array_name + "]] #" + index;
    const toml::node& node = *layers.get(i);
    const toml::table* table = node.as_table();
    if (!table)
      in.fail_at(node, "layers",
                 "entry " + index + " must be a table with a type, got " + describe_value(node));
    SectionReader layer(table, section, in.location());
    NamedTable named{plugin_type(layer, "  type = \"linear\""), table, section, {}};
    if (named.type == "residual") {
      // y = x + f(x), f being the inner layers in order: the model's structure, not a plugin.
      layer.reject_unknown({"type", "layers"});
      const std::string inner_name = array_name + ".layers";
      const std::string example = "  [[" + inner_name + "]]\n  type = \"linear\"\n  units = 64";
      const toml::node* inner = layer.find("layers");
      if (!inner)
        missing(layer.location(),
                section +
                    " is a residual block without inner layers; follow it "
                    "with [[" +
                    inner_name + "]] tables",
                example);
      const toml::array* list = inner->as_array();
      if (!list)
        layer.fail("layers", "expected a list of tables ([[" + inner_name + "]]), got " +
                                 describe_value(*inner));
      if (list->empty())
        layer.fail("layers", "the list is empty; add at least one, e.g.\n" + example);
      named.layers = read_layer_list(*list, layer, inner_name, index + ".");
    } else if (const toml::node* tie = layer.find("tie")) {
      named.ties = read_ties(*tie, layer);
    }
    out.push_back(std::move(named));
  }
  return out;
}

}  // namespace

std::vector<NamedTable> read_layers(const toml::table& root, const std::string& file) {
  const toml::table* model = section_table(root, "model", "[model]");
  SectionReader in(model, "[model]", file);
  in.reject_unknown({"layers"});
  const char* example = "  [[model.layers]]\n  type = \"linear\"";
  const toml::node* layers_node = in.find("layers");
  if (!layers_node) missing(in.location(), "[model] has no layers", example);
  const toml::array* layers = layers_node->as_array();
  if (!layers)
    in.fail("layers",
            "expected a list of tables ([[model.layers]]), got " + describe_value(*layers_node));
  if (layers->empty())
    in.fail("layers", "the list is empty; add at least one, e.g.\n" + std::string(example));
  return read_layer_list(*layers, in, "model.layers", "");
}

}  // namespace graft::runtime
