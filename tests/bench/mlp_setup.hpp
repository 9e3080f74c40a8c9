// What the MLP benchmarks share: reading numbers from the command line, and the benchmark MLP
// (linear+relu ..., linear; cross_entropy; sgd momentum 0.9, lr 0.01) built through the runtime
// as a session builds it, trained by the `single` strategy through its C vtable, on the CPU
// (graft_bench_mlp) or a GPU (graft_bench_mlp_gpu).
#pragma once

#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "bench_flags.hpp"
#include "bench_support.hpp"
#include "config/config.hpp"
#include "config/options.hpp"
#include "device/host_api.hpp"
#include "model/model.hpp"
#include "plugin/registry.hpp"
#include "util/errors.hpp"

namespace graft::bench {

namespace rt = graft::runtime;

inline void check(graft_status* status, const std::string& who) {
  rt::throw_if_failed(status, who);
}

// One plugin table from TOML text, bound as Session::choose binds a config section.
inline rt::PluginChoice choose(const rt::Registry& registry, graft_kind kind,
                               const std::string& text, const std::string& section,
                               rt::Section reserved) {
  const toml::table table = toml::parse(text, section);
  const std::string type = table["type"].value_or(std::string());
  const rt::PluginRecord& record = registry.get(kind, type);
  rt::BoundOptions options =
      rt::bind_options(*record.entry, &table, section, rt::reserved_keys(reserved));
  return rt::PluginChoice{&record, std::move(options), section};
}

// The model of widths D0, H0, ..., classes at batch B on `device`, and the `single` strategy
// that steps it. The CUDA device must be started before a model is placed on it.
class MlpTraining {
 public:
  MlpTraining(const std::vector<int64_t>& widths, int64_t batch, const std::string& plugin_dir,
              DLDevice device)
      : registry_(rt::host_api()) {
    registry_.load_directory(plugin_dir);
    if (!registry_.find(GRAFT_KIND_LAYER, "linear") ||
        !registry_.find(GRAFT_KIND_STRATEGY, "single"))
      throw rt::UserError("no 'linear' layer or 'single' strategy in " + plugin_dir +
                          "; build the plugins (cmake --build <build> --target graft) or pass "
                          "--plugin-dir");
    std::vector<rt::PluginChoice> layers;
    for (size_t l = 0; l + 1 < widths.size(); ++l) {
      std::string text = "type = \"linear\"\nunits = " + std::to_string(widths[l + 1]) + "\n";
      if (l + 2 < widths.size()) text += "activation = \"relu\"\n";
      layers.push_back(choose(registry_, GRAFT_KIND_LAYER, text,
                              "[[model.layers]] #" + std::to_string(l + 1), rt::Section::layer));
    }
    rt::PluginChoice loss =
        choose(registry_, GRAFT_KIND_LOSS, "type = \"cross_entropy\"", "[loss]", rt::Section::loss);
    rt::PluginChoice optimizer =
        choose(registry_, GRAFT_KIND_OPTIMIZER, "type = \"sgd\"\nlr = 0.01\nmomentum = 0.9",
               "[optimizer]", rt::Section::optimizer);
    rt::ModelSettings settings;
    settings.device = device;
    settings.max_batch = batch;
    settings.seed = 1;
    settings.schedule.lr = 0.01;
    graft_target_info target{sizeof(graft_target_info), graft_shape{0, {}},
                             DLDataType{kDLInt, 32, 1}, widths.back()};
    model_ = std::make_unique<rt::Model>(std::move(layers), std::move(loss), std::move(optimizer),
                                         graft_shape{1, {widths.front()}}, target, settings);

    const rt::PluginRecord& record = registry_.get(GRAFT_KIND_STRATEGY, "single");
    strategy_ = &record.vtable<graft_strategy_vtable>();
    strategy_options_ = rt::bind_options(*record.entry, nullptr, "[parallel]",
                                         rt::reserved_keys(rt::Section::parallel));
    graft_world world{sizeof(graft_world), 0, 1, nullptr, nullptr, 0.0};
    check(strategy_->create(rt::host_api(), strategy_options_.get(), &world, &strategy_self_),
          "strategy 'single'");

    ctx_.struct_size = sizeof ctx_;
    ctx_.host = rt::host_api();
    ctx_.device = device;
    ctx_.training = 1;
    ctx_.seed = 1;
    ctx_.layer_index = -1;
    ctx_.world = 1;
    ctx_.global_batch = batch;
  }
  ~MlpTraining() {
    if (strategy_self_) strategy_->destroy(strategy_self_);
  }
  MlpTraining(const MlpTraining&) = delete;
  MlpTraining& operator=(const MlpTraining&) = delete;

  // One training step on (x, y); returns its mean loss.
  double step(const DLTensor& x, const DLTensor& y) {
    ctx_.step = steps_;
    graft_step_result result{};
    result.struct_size = sizeof result;
    check(strategy_->train_step(strategy_self_, model_->api(), model_->handle(), &ctx_, &x, &y,
                                &result),
          "training step " + std::to_string(steps_));
    ++steps_;
    return result.loss_sum / double(result.rows);
  }

  rt::Model& model() { return *model_; }
  graft_exec_ctx& context() { return ctx_; }  // e.g. its CUDA stream
  int64_t steps() const { return steps_; }

 private:
  rt::Registry registry_;
  std::unique_ptr<rt::Model> model_;
  const graft_strategy_vtable* strategy_ = nullptr;
  rt::BoundOptions strategy_options_;
  void* strategy_self_ = nullptr;
  graft_exec_ctx ctx_{};
  int64_t steps_ = 0;
};

}  // namespace graft::bench
