// A session is a config turned into live objects: plugins loaded and bound to their tables,
// data sets opened, the model built and the strategy created. train, validate and eval share it.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "data/dataset_instance.hpp"
#include "model/model.hpp"
#include "plugin/registry.hpp"

namespace graft::runtime {

struct SessionOptions {
  std::vector<std::string> plugin_dirs;  // --plugin-dir
  bool open_test_split = true;
  int32_t rank = 0;
  int32_t world = 1;
};

class Session {
 public:
  Session(Config config, const SessionOptions& options);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  Config config;
  Registry registry;
  std::filesystem::path run_dir;  // <output_dir>/<run name>
  std::unique_ptr<DatasetInstance> train_set, test_set;
  std::unique_ptr<Model> model;
  const PluginRecord* strategy = nullptr;
  void* strategy_self = nullptr;
  int32_t rank = 0, world = 1;

  // The config with every default filled in, as saved beside the run.
  const std::string& resolved_config() const { return resolved_config_; }
  // An execution context for this session's device and seed, with the micro-batch count a
  // step of that kind runs (run.gradient_accumulation).
  graft_exec_ctx context(bool training) const;

 private:
  PluginChoice choose(graft_kind kind, const std::string& type, const toml::table* table,
                      const std::string& section, const std::vector<std::string>& reserved);
  // A [[model.layers]] entry (a residual block recursively); each plugin's resolved options
  // are appended to `resolved` under its TOML path ("model.layers.2.layers.0").
  PluginChoice choose_layer(const NamedTable& layer, const std::string& path,
                            std::vector<std::pair<std::string, toml::table>>& resolved);
  void check_early_stopping_metric() const;
  PluginChoice reader_;
  BoundOptions strategy_options_;
  std::string resolved_config_;
};

}  // namespace graft::runtime
