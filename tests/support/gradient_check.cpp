// The TOML-text entry points of the gradient checker: bind the options, then call
// framework/check, where the drivers and the checker live (graft check-plugin uses them too).
#include "gradient_check.hpp"

namespace graft::test {

runtime::BoundOptions bind_text(const runtime::PluginRecord& record, const std::string& toml_text) {
  toml::table table = toml::parse(toml_text, std::string("test options"));
  return runtime::bind_options(*record.entry, &table, "[" + record.name + "]", {"type"});
}

GradientReport check_layer(const runtime::PluginRecord& record, const std::string& options_toml,
                           const std::vector<int64_t>& input_shape,
                           const GradientSettings& settings) {
  return checker::check_layer(record, *bind_text(record, options_toml).get(), input_shape,
                              settings);
}

GradientReport check_activation(const runtime::PluginRecord& record,
                                const std::string& options_toml, const std::vector<int64_t>& shape,
                                const GradientSettings& settings) {
  return checker::check_activation(record, *bind_text(record, options_toml).get(), shape, settings);
}

GradientReport check_loss(const runtime::PluginRecord& record, const std::string& options_toml,
                          const std::vector<int64_t>& prediction_shape,
                          const graft_target_info& target_info, const Tensor& target,
                          const GradientSettings& settings) {
  return checker::check_loss(record, *bind_text(record, options_toml).get(), prediction_shape,
                             target_info, target, settings);
}

}  // namespace graft::test
