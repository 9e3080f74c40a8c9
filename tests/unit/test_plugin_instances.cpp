// LossInstance and OptimizerInstance against raw C tables, as a plugin written without the C++
// SDK lends them: a description that counts more metric or state names than its fixed array
// holds is refused naming the plugin, before anything reads past the array, and the object the
// plugin created is destroyed; a count at the limit is accepted.
#include <string>

#include "plugin/loss_instance.hpp"
#include "plugin/optimizer_instance.hpp"
#include "test_support.hpp"

namespace {

size_t g_count = 0;   // what describe() reports
int g_destroyed = 0;  // destroy() calls
int g_object = 0;     // the plugin object's address

graft_status* loss_create(const graft_host_api*, const graft_options*, const graft_shape*,
                          const graft_target_info*, void** self) {
  *self = &g_object;
  return nullptr;
}
graft_status* optimizer_create(const graft_host_api*, const graft_options*, void** self) {
  *self = &g_object;
  return nullptr;
}
void destroy(void*) { ++g_destroyed; }
graft_status* loss_describe(void*, graft_loss_desc* out) {
  out->n_metrics = g_count;
  for (auto& name : out->metric_names) name = "m";
  return nullptr;
}
graft_status* optimizer_describe(void*, graft_optimizer_desc* out) {
  out->n_state = g_count;
  for (auto& name : out->state_names) name = "s";
  return nullptr;
}

struct RawPlugins {
  graft_loss_vtable loss{};
  graft_optimizer_vtable optimizer{};
  graft_plugin_entry loss_entry{}, optimizer_entry{};
  graft::runtime::PluginRecord loss_record{}, optimizer_record{};
  graft_options options{};

  RawPlugins() {
    loss.struct_size = sizeof loss;
    loss.create = loss_create;
    loss.destroy = destroy;
    loss.describe = loss_describe;
    optimizer.struct_size = sizeof optimizer;
    optimizer.create = optimizer_create;
    optimizer.destroy = destroy;
    optimizer.describe = optimizer_describe;
    loss_entry = {sizeof loss_entry, GRAFT_KIND_LOSS, "raw_loss", "", 0, nullptr, &loss, 0};
    optimizer_entry = {sizeof optimizer_entry,
                       GRAFT_KIND_OPTIMIZER,
                       "raw_optimizer",
                       "",
                       0,
                       nullptr,
                       &optimizer,
                       0};
    loss_record = {GRAFT_KIND_LOSS, "raw_loss", "graft_raw.so", nullptr, &loss_entry};
    optimizer_record = {GRAFT_KIND_OPTIMIZER, "raw_optimizer", "graft_raw.so", nullptr,
                        &optimizer_entry};
  }
};

}  // namespace

TEST_CASE("a loss that reports more metrics than GRAFT_MAX_METRICS is refused by name") {
  RawPlugins raw;
  graft_shape prediction{};
  graft_target_info target{};
  g_count = GRAFT_MAX_METRICS;
  {
    graft::runtime::LossInstance loss(raw.loss_record, raw.options, prediction, target);
    CHECK(loss.metric_names().size() == GRAFT_MAX_METRICS);
  }
  g_count = GRAFT_MAX_METRICS + 1;
  g_destroyed = 0;
  const std::string message = graft::test::user_error(
      [&] { graft::runtime::LossInstance loss(raw.loss_record, raw.options, prediction, target); });
  CHECK(graft::test::has(message, "loss 'raw_loss': describe() reports 5 metrics"));
  CHECK(graft::test::has(message, "at most 4 (GRAFT_MAX_METRICS"));
  CHECK(g_destroyed == 1);
}

TEST_CASE("an optimizer that reports more state tensors than its array holds is refused") {
  RawPlugins raw;
  g_count = GRAFT_MAX_OPTIMIZER_STATE;
  {
    graft::runtime::OptimizerInstance optimizer(raw.optimizer_record, raw.options);
    CHECK(optimizer.state_names().size() == GRAFT_MAX_OPTIMIZER_STATE);
  }
  g_count = GRAFT_MAX_OPTIMIZER_STATE + 1;
  g_destroyed = 0;
  const std::string message = graft::test::user_error(
      [&] { graft::runtime::OptimizerInstance optimizer(raw.optimizer_record, raw.options); });
  CHECK(graft::test::has(message, "optimizer 'raw_optimizer': describe() reports 5 state"));
  CHECK(graft::test::has(message, "at most 4 (GRAFT_MAX_OPTIMIZER_STATE"));
  CHECK(g_destroyed == 1);
}
