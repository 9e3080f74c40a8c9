// The run's configuration: the TOML file with its includes and --set overrides merged, the
// framework's own sections checked and read into structs, and the resolved TOML saved with a run.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "config/toml.hpp"

namespace graft::runtime {

// [optimizer.schedule]. warmup_steps (every type): the rate rises linearly from 0 to lr over
// that many steps first. constant: lr. step: lr * gamma^(steps / step_size). cosine: from lr down
// to min_lr over the run. linear_warmup_cosine: cosine that requires warmup_steps >= 1.
struct ScheduleConfig {
  std::string type = "constant";
  int64_t warmup_steps = 0;
  int64_t step_size = 0;  // "step" only, >= 1 there
  double gamma = 0.1;     // "step" only
  double min_lr = 0.0;    // "cosine" and "linear_warmup_cosine" only
};

// The schedule types, and the keys of [optimizer.schedule] each one uses besides `type`.
const std::vector<std::string>& schedule_types();
const std::vector<std::string>& schedule_keys(const std::string& type);

// [run.early_stopping]: present means on. Training stops when `metric` (of the test-split
// evaluations) has not improved by more than min_delta for `patience` evaluations in a row.
struct EarlyStoppingConfig {
  bool enabled = false;
  std::string metric = "loss";         // "loss" or a metric the loss reports ("accuracy")
  std::string mode;                    // "min" | "max"; default: min for loss, max for a metric
  int64_t patience = 3;                // evaluations without improvement
  double min_delta = 0.0;              // an improvement beats the best by more than this
  const toml::table* table = nullptr;  // for messages about the metric, checked by the session
};

struct RunConfig {
  std::string name = "run";  // the run's folder under output_dir
  uint64_t seed = 0;
  std::string device = "cpu";  // cpu | cuda
  bool tf32 = false;           // cuda: cuBLAS may round float32 inputs to TF32
  bool deterministic = false;  // cuda: fixed cuBLAS workspace, no atomics: the same bits each run
  int64_t epochs = 0;  // exactly one of epochs and steps is > 0 (epochs = 1 if neither given)
  int64_t steps = 0;
  std::string output_dir = "runs";
  int64_t log_every = 50;
  int64_t eval_every = 0;         // steps; 0: at the end of each epoch
  int threads = 0;                // 0: all cores
  double clip_grad_norm = 0.0;    // 0: off
  std::string progress = "auto";  // auto | bar | plain | none
  // Each optimizer step runs data.batch_size rows as this many micro-batches (one forward and
  // backward each, gradients summed), so activation memory is that of batch_size / N rows.
  int64_t gradient_accumulation = 1;
  EarlyStoppingConfig early_stopping;
};

struct DataConfig {
  std::string reader;
  int64_t batch_size = 64;
  int64_t eval_batch_size = 0;  // 0: batch_size
  bool shuffle = true;
  bool drop_last = false;
  const toml::table* reader_table = nullptr;  // [data]: the reader's keys (framework's reserved)
};

// A plugin chosen by `type` in its own table. section names the table in messages
// ("[loss]", "[[model.layers]] #2", where 2 is the index --set model.layers.2.key uses).
// A `residual` layer (the framework's, not a plugin) keeps its inner layers in `layers`, their
// sections reading "[[model.layers.layers]] #2.0" (model.layers.2.layers.0 for --set).
// A layer's `tie = { weight = "layers.0.weight" }`: its parameter `param` is the earlier
// parameter `target` (one tensor, trained by the sum of both layers' gradients, as torch's
// `lm_head.weight = wte.weight`). `where` is "file:line:col: [[model.layers]] #9 tie.weight".
struct TieConfig {
  std::string param, target, where;
};

struct NamedTable {
  std::string type;
  const toml::table* table = nullptr;
  std::string section;
  std::vector<NamedTable> layers;
  std::vector<TieConfig> ties;
};

struct OptimizerConfig {
  std::string type;
  double lr = 0.01;
  // false: parameters a layer marks as bias or norm scale get no weight decay (true decays
  // every parameter, as PyTorch does for a plain parameter list).
  bool decay_bias_and_norm = true;
  ScheduleConfig schedule;
  const toml::table* table = nullptr;  // [optimizer]
};

struct CheckpointConfig {
  int64_t every = 0;   // steps; 0: at the end of each epoch
  int64_t keep = 3;    // the newest `keep` checkpoints stay on disk
  std::string resume;  // "" | "latest" | a checkpoint path
  bool enabled = true;
};

// [parallel]. The device mesh keys (data, pipeline, tensor, zero, order) are the host's: it
// resolves them against the world size (parallel/mesh.hpp) and lends the mesh to the strategy.
struct ParallelConfig {
  std::string strategy = "single";  // "mesh" when a mesh key is given and strategy is not
  double timeout_s = 300;           // a collective waiting longer reports the missing ranks
  // By graft_axis (data, pipeline, tensor); 1 when not given, -1: the world divided by the
  // others. `degree_node` is the key's value when given (NULL otherwise), for messages.
  std::array<int64_t, 3> degree{1, 1, 1};
  std::array<const toml::node*, 3> degree_node{};
  int64_t zero = 0;  // 0 none, 1 optimizer state, 2 + gradients, 3 + parameters
  const toml::node* zero_node = nullptr;
  std::string order = "tensor,data,pipeline";  // fastest-varying axis first
  const toml::node* order_node = nullptr;
  std::string file;                    // the main file: where messages point without a node
  const toml::table* table = nullptr;  // [parallel], NULL when the file has none

  bool degree_given() const { return degree_node[0] || degree_node[1] || degree_node[2]; }
  bool mesh_given() const { return degree_given() || zero_node || order_node; }
};

// The table pointers point into `root`, so a Config moves but never copies.
struct Config {
  Config() = default;
  Config(const Config&) = delete;
  Config& operator=(const Config&) = delete;
  Config(Config&&) = default;
  Config& operator=(Config&&) = default;

  std::filesystem::path file;       // the main file, as given
  std::filesystem::path directory;  // its folder (absolute): relative paths in plugin options
  toml::table root;                 // merged tree after includes and --set; nodes keep their source
  RunConfig run;
  DataConfig data;
  std::vector<NamedTable> layers;
  NamedTable loss;
  OptimizerConfig optimizer;
  ParallelConfig parallel;
  CheckpointConfig checkpoint;
  // Where each of plugin_paths was written ("run.toml:14:10: [plugins] paths"), for messages.
  std::vector<std::string> plugin_path_places;
  std::vector<std::string> plugin_paths;  // absolute; relative ones resolved against the folder
                                          // of the file that wrote them
};

// Reads `file`, merges its includes, applies each "key.path=value" override in order and checks
// the framework's sections. Plugin keys are left to bind_options with reserved_keys(). Every
// problem is a UserError naming file:line:column (or the --set flag), the key and the fix.
Config load_config(const std::filesystem::path& file, const std::vector<std::string>& overrides);

// One --set: "optimizer.lr=0.05", "model.layers.0.units=128" (an index into a list). The value
// is parsed as TOML, else taken as a bare string. Missing tables on the way are created; the
// new nodes' source is "--set <assignment>", so messages point at the flag.
void apply_override(toml::table& root, const std::string& assignment);

// Tables that mix the framework's keys with a plugin's keys, and the framework's keys in each:
// pass them as `reserved` to bind_options.
enum class Section { data, layer, loss, optimizer, parallel };
const std::vector<std::string>& reserved_keys(Section section);

// The merged tree as TOML text with every framework default filled in and, for each
// (path, table) given, the plugin's resolved options (BoundOptions::resolved()) merged into the
// table at `path` ("optimizer", "data", "parallel", "loss", "model.layers.2"). Loading the text
// again gives the same Config.
std::string resolved_toml(
    const Config& config,
    const std::vector<std::pair<std::string, const toml::table*>>& plugin_tables = {});

}  // namespace graft::runtime
