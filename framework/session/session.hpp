// A session is a config turned into live objects: plugins loaded and bound to their tables,
// data sets opened, the model built and the strategy created. train, validate and eval share it.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/parameters_gather.hpp"
#include "comm/job.hpp"
#include "config/config.hpp"
#include "data/dataset_instance.hpp"
#include "model/model.hpp"
#include "model/model_survey.hpp"
#include "parallel/mesh.hpp"
#include "plugin/registry.hpp"
#include "plugin/strategy_instance.hpp"

namespace graft::runtime {

struct SessionOptions {
  std::vector<std::string> plugin_dirs;  // --plugin-dir
  bool open_test_split = true;
  bool write_outputs = true;  // false: no run folder files at all (`graft verify`)
  // The job this process belongs to (train, eval, verify): rank and world come from its
  // communicator, which the strategy gets, and its watchdog takes [parallel] timeout_s. NULL
  // when nothing communicates (validate): then rank and world below are used as given.
  Job* job = nullptr;
  int32_t rank = 0;
  int32_t world = 1;
  // false (validate): the model's step buffers are planned, never allocated, so a batch too
  // large for the machine is reported (memory_shortfall) rather than attempted. true: they are
  // allocated once the plan is known to fit, and a plan that does not is a UserError first.
  bool allocate_step_buffers = true;
};

// The plugin a config table names by `type`, bound to that table: an unknown type lists the
// known ones (an activation may stand as a layer), and every key is checked (bind_options).
PluginChoice choose_plugin(const Registry& registry, graft_kind kind, const std::string& type,
                           const toml::table* table, const std::string& section,
                           const std::vector<std::string>& reserved);

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
  int32_t rank = 0, world = 1;
  DLDevice device{kDLCPU, 0};       // [run] device: the model's buffers and the batches live there
  bool write_outputs = true;        // SessionOptions::write_outputs
  std::vector<LayerSurvey> survey;  // the top-level layers, before the model was built
  LayoutPlan layout;                // this rank's plan, which the model was built with

  // This rank's place on the device mesh ([parallel] data / pipeline / tensor), with one
  // communicator per axis split from the strategy's (none without a job).
  const Mesh& mesh() const { return *mesh_; }

  // The job's world communicator (checkpoint gathers, agreeing on results); NULL without a job.
  Communicator* comm() const { return job_ ? &job_->world() : nullptr; }
  // The mesh's groups that whole tensors are gathered over (checkpoints, `graft verify`).
  GatherGroups gather_groups() const;

  // The plan rank r of a world of `size` would get (`graft validate --world`); no comm needed.
  LayoutPlan plan_for(int32_t r, int32_t size) const;

  // Why the model's planned buffers cannot fit this machine's memory, naming the [data] key
  // that sized them, the bytes, the memory and the fix; "" when they fit (or the model's
  // buffers are not in this machine's memory: a GPU run).
  std::string memory_shortfall() const;

  // The config with every default filled in, as saved beside the run.
  const std::string& resolved_config() const { return resolved_config_; }
  // The config's model again, for `rows` samples of per-sample `input` on the CPU: one stage,
  // nothing sharded, its targets one label per position of input. Generation builds it with
  // input (1), one token per call, and copies the trained parameters into it.
  std::unique_ptr<Model> sequence_model(const graft_shape& input, int64_t rows);

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
  // The config's layers, loss and optimizer, each bound to its table.
  struct ModelChoices {
    std::vector<PluginChoice> layers;
    PluginChoice loss, optimizer;
  };
  ModelChoices choose_model(std::vector<std::pair<std::string, toml::table>>& resolved);
  void check_early_stopping_metric() const;
  // Whether [data] eval_batch_size, not the training micro-batch, sizes the model's buffers.
  bool eval_sized() const;
  // The key that sizes them, for messages: "run.toml:12:14: [data] batch_size = 64".
  std::string rows_origin() const;
  // The strategy for rank r of `size` on `mesh`; comm is NULL when only planning.
  std::unique_ptr<StrategyInstance> create_strategy(const PluginRecord& record, int32_t r,
                                                    int32_t size, Communicator* comm,
                                                    const Mesh& mesh) const;
  // On a GPU the strategy communicates device memory through NCCL (wrapping the job's world
  // for host memory); NULL when the job's world serves as it is.
  std::unique_ptr<Communicator> start_device_comm(Communicator& host_world,
                                                  const std::string& strategy_name) const;
  Job* job_ = nullptr;  // see SessionOptions::job
  std::unique_ptr<Communicator> device_comm_;
  void shard_over_data(ModelSettings& settings, const PluginChoice& optimizer) const;
  MeshShape mesh_shape_;        // resolved before anything is loaded
  std::unique_ptr<Mesh> mesh_;  // its groups are children of the strategy's communicator
  PluginChoice reader_;
  BoundOptions strategy_options_;
  std::string resolved_config_;

 public:
  // This rank's strategy, over the job's communicator. Declared last, so destroyed first (also
  // when the constructor throws): it may use that communicator and its options until it goes.
  std::unique_ptr<StrategyInstance> strategy;
};

}  // namespace graft::runtime
