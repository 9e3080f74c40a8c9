// What the check files of graft check-plugin share: running one check so that any exception
// becomes a FAIL result, number and shape formatting, option binding, the pieces of the
// gradient and determinism checks, and the per-kind checks.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "check/gradient_check.hpp"
#include "check/plugin_checks.hpp"
#include "check/tensor.hpp"
#include "config/options.hpp"

namespace graft::checker::detail {

// Runs body on a result that starts as PASS; an exception from it (the plugin's status turned
// into UserError or Failure, or a check's own throw) makes the result a FAIL with its message.
CheckResult run_check(const runtime::PluginRecord& record, const std::string& check,
                      const std::function<void(CheckResult&)>& body);
CheckResult skipped(const runtime::PluginRecord& record, const std::string& check,
                    const std::string& why);

// Three significant digits: "2.1e-04", "0.031", "12.5".
std::string number(double value);
// "1 tensor", "3 tensors".
std::string count(int64_t n, const std::string& noun);
// "(8,)", "(3, 8, 8)".
std::string shape_text(const std::vector<int64_t>& shape);
std::string shapes_text(const std::vector<std::vector<int64_t>>& shapes);

// The record's options bound from a (resolved) table, as the trainer binds a config section.
runtime::BoundOptions bind(const runtime::PluginRecord& record, const toml::table& table);

// Counts elements that differ bit for bit and the largest difference, for messages.
std::string difference_text(const Tensor& a, const Tensor& b);
// Throws a Failure "what: <difference_text>" unless both hold the same bits.
void expect_same(const Tensor& first, const Tensor& second, const std::string& what);

// Appends a note to a result's message ("; "-separated); an empty note adds nothing.
void add_note(CheckResult& r, const std::string& note);

// The SKIP line of a plugin that ships CUDA kernels, which these checks do not run.
CheckResult cuda_line(const runtime::PluginRecord& record);

// A training context for a batch of `rows`, as the model would pass to its first layer.
graft_exec_ctx layer_context(bool training, int64_t rows);

// Folds one shape's report into the running totals of a gradient result.
struct GradientTotals {
  double worst = 0.0;
  int64_t checked = 0;
  std::vector<std::string> failures;
  void add(const std::string& shape, const GradientReport& report);
  void finish(CheckResult& r, const std::string& shapes, double tolerance) const;
};

// The input shapes a layer is tried on; the first it accepts is used for the model checks.
const std::vector<std::vector<int64_t>>& candidate_layer_shapes();

// layer_checks.cpp and loss_checks.cpp: gradients, determinism, save/load for layers,
// activations and losses.
std::vector<CheckResult> layer_checks(const runtime::Registry& registry,
                                      const runtime::PluginRecord& record,
                                      const toml::table& options, const CheckSettings& settings);
std::vector<CheckResult> activation_checks(const runtime::Registry& registry,
                                           const runtime::PluginRecord& record,
                                           const toml::table& options,
                                           const CheckSettings& settings);
std::vector<CheckResult> loss_checks(const runtime::Registry& registry,
                                     const runtime::PluginRecord& record,
                                     const toml::table& options, const CheckSettings& settings);

// learning_checks.cpp: the plugin inside a runtime Model on a small task.
// integer_ids: the layer takes ids (embedding), so it comes first and gets ids in [0, 8).
CheckResult layer_learns(const runtime::Registry& registry, const runtime::PluginRecord& record,
                         const toml::table& options, const std::vector<int64_t>& input_shape,
                         bool integer_ids, const CheckSettings& settings);
CheckResult activation_learns(const runtime::Registry& registry,
                              const runtime::PluginRecord& record, const toml::table& options,
                              const CheckSettings& settings);
// prediction: a 1-D shape the loss accepted with `target` (float of the same shape, or classes).
CheckResult loss_learns(const runtime::Registry& registry, const runtime::PluginRecord& record,
                        const toml::table& options, int64_t prediction_features,
                        const graft_target_info& target, const CheckSettings& settings);
CheckResult strategy_learns(const runtime::Registry& registry, const runtime::PluginRecord& record,
                            const toml::table& options, const CheckSettings& settings);

// optimizer_checks.cpp and dataset_checks.cpp.
std::vector<CheckResult> optimizer_checks(const runtime::PluginRecord& record,
                                          const toml::table& options,
                                          const CheckSettings& settings);
std::vector<CheckResult> dataset_checks(const runtime::PluginRecord& record,
                                        const toml::table& options, const CheckSettings& settings);

}  // namespace graft::checker::detail
