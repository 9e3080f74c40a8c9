// The plugin drivers and the finite-difference gradient checker of framework/check, with the
// plugin's options given as TOML text, as the plugin tests write them.
#pragma once

#include <random>
#include <string>
#include <vector>

#include "check/gradient_check.hpp"
#include "test_support.hpp"

namespace graft::test {

using checker::class_targets;
using checker::compare_gradient;
using checker::float_targets;
using checker::GradientReport;
using checker::GradientSettings;
using checker::NumericGradient;

// The record's options bound from TOML text ("units = 4\nbias = false").
runtime::BoundOptions bind_text(const runtime::PluginRecord& record, const std::string& toml_text);

class LayerUnderTest : public checker::LayerUnderTest {
 public:
  LayerUnderTest(const runtime::PluginRecord& record, const std::string& options_toml,
                 const std::vector<int64_t>& input_shape, int64_t batch)
      : checker::LayerUnderTest(record, *bind_text(record, options_toml).get(), input_shape,
                                batch) {}
};

class ActivationUnderTest : public checker::ActivationUnderTest {
 public:
  ActivationUnderTest(const runtime::PluginRecord& record, const std::string& options_toml,
                      const std::vector<int64_t>& shape)
      : checker::ActivationUnderTest(record, *bind_text(record, options_toml).get(), shape) {}
};

class LossUnderTest : public checker::LossUnderTest {
 public:
  LossUnderTest(const runtime::PluginRecord& record, const std::string& options_toml,
                const std::vector<int64_t>& prediction_shape, const graft_target_info& target_info,
                int64_t batch)
      : checker::LossUnderTest(record, *bind_text(record, options_toml).get(), prediction_shape,
                               target_info, batch) {}
};

GradientReport check_layer(const runtime::PluginRecord& record, const std::string& options_toml,
                           const std::vector<int64_t>& input_shape,
                           const GradientSettings& settings = {});
GradientReport check_activation(const runtime::PluginRecord& record,
                                const std::string& options_toml, const std::vector<int64_t>& shape,
                                const GradientSettings& settings = {});
GradientReport check_loss(const runtime::PluginRecord& record, const std::string& options_toml,
                          const std::vector<int64_t>& prediction_shape,
                          const graft_target_info& target_info, const Tensor& target,
                          const GradientSettings& settings = {});

// A built-in layer plugin by name.
inline const runtime::PluginRecord& layer(const std::string& name) {
  return builtin_registry().get(GRAFT_KIND_LAYER, name);
}

// Every element of t uniform in [low, high).
inline void fill_uniform(Tensor& t, std::mt19937& rng, float low, float high) {
  std::uniform_real_distribution<float> uniform(low, high);
  for (int64_t i = 0; i < t.numel(); ++i) t.f()[i] = uniform(rng);
}

}  // namespace graft::test
