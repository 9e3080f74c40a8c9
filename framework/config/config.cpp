// Checking the framework's sections of the merged config and reading them into Config; plugin
// keys in shared tables are left for bind_options. Each missing piece names the file and the fix.
#include "config/config.hpp"

#include <algorithm>
#include <limits>

#include "config/config_tree.hpp"
#include "config/section_reader.hpp"
#include "util/errors.hpp"

namespace graft::runtime {

namespace fs = std::filesystem;

namespace {

const std::vector<std::string>& top_level_keys() {
  static const std::vector<std::string> keys = {"run",       "data",     "model",      "loss",
                                                "optimizer", "parallel", "checkpoint", "plugins"};
  return keys;
}
const std::vector<std::string>& run_keys() {
  static const std::vector<std::string> keys = {
      "name",           "seed",           "device",       "epochs",
      "steps",          "output_dir",     "log_every",    "eval_every",
      "threads",        "clip_grad_norm", "progress",     "gradient_accumulation",
      "early_stopping", "tf32",           "deterministic"};
  return keys;
}
const std::vector<std::string>& early_stopping_keys() {
  static const std::vector<std::string> keys = {"metric", "mode", "patience", "min_delta"};
  return keys;
}
const std::vector<std::string>& checkpoint_keys() {
  static const std::vector<std::string> keys = {"every", "keep", "resume", "enabled"};
  return keys;
}
const std::vector<std::string>& all_schedule_keys() {
  static const std::vector<std::string> keys = {"type", "warmup_steps", "step_size", "gamma",
                                                "min_lr"};
  return keys;
}

void check_top_level(const toml::table& root) {
  for (const auto& [key, node] : root) {
    std::string name(key.str());
    const auto& known = top_level_keys();
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    std::string hint = did_you_mean(name, known);
    const auto& run = run_keys();
    if (hint.empty() && std::find(run.begin(), run.end(), name) != run.end())
      hint = " (it belongs in [run])";
    throw UserError(where(key.source()) + ": unknown top-level key '" + name + "'" + hint +
                    "; known: include, " + join(known));
  }
}

EarlyStoppingConfig read_early_stopping(const toml::table* run, const std::string& file) {
  EarlyStoppingConfig stopping;
  if (!run) return stopping;
  SectionReader in(section_table(*run, "early_stopping", "[run.early_stopping]"),
                   "[run.early_stopping]", file);
  if (!in.table()) return stopping;
  in.reject_unknown(early_stopping_keys());
  stopping.enabled = true;
  stopping.table = in.table();
  stopping.metric = in.string("metric", stopping.metric);
  if (stopping.metric.empty())
    in.fail("metric",
            "must name what to watch: \"loss\" or a metric the loss reports, e.g. "
            "metric = \"accuracy\"");
  stopping.mode = in.string("mode", stopping.metric == "loss" ? "min" : "max", {"min", "max"});
  stopping.patience = in.integer("patience", stopping.patience, 1);
  stopping.min_delta = in.number("min_delta", stopping.min_delta, 0.0);
  return stopping;
}

RunConfig read_run(const toml::table& root, const std::string& file) {
  SectionReader in(section_table(root, "run", "[run]"), "[run]", file);
  in.reject_unknown(run_keys());
  RunConfig run;
  run.name = in.string("name", run.name);
  if (run.name.empty() || run.name == "." || run.name == ".." ||
      run.name.find_first_of("/\\") != std::string::npos)
    in.fail("name", "'" + run.name + "' cannot be a folder name under output_dir; use letters, " +
                        "digits, '-' or '_', e.g. name = \"mnist_mlp\"");
  run.seed = static_cast<uint64_t>(in.integer("seed", 0, 0));
  run.device = in.string("device", run.device, {"cpu", "cuda"});
  run.tf32 = in.boolean("tf32", run.tf32);
  run.deterministic = in.boolean("deterministic", run.deterministic);
  run.steps = in.integer("steps", 0, 0);
  // Epochs is the default measure, unless the run is given in steps.
  run.epochs = in.integer("epochs", run.steps > 0 ? 0 : 1, 0);
  if (run.epochs > 0 && run.steps > 0)
    in.fail("steps", "give either epochs (" + std::to_string(run.epochs) + ") or steps (" +
                         std::to_string(run.steps) + "), not both; remove one or set it to 0 " +
                         "(e.g. --set run.epochs=0)");
  if (run.epochs == 0 && run.steps == 0)
    in.fail("epochs", "epochs and steps are both 0, so there is nothing to train; set one, " +
                          std::string("e.g. epochs = 1"));
  run.output_dir = in.string("output_dir", run.output_dir);
  if (run.output_dir.empty())
    in.fail("output_dir", "must not be empty, e.g. output_dir = \"runs\"");
  run.log_every = in.integer("log_every", run.log_every, 1);
  run.eval_every = in.integer("eval_every", run.eval_every, 0);
  run.threads = static_cast<int>(in.integer("threads", run.threads, 0, 65536));
  run.clip_grad_norm = in.number("clip_grad_norm", run.clip_grad_norm, 0.0);
  run.progress = in.string("progress", run.progress, {"auto", "bar", "plain", "none"});
  run.gradient_accumulation =
      in.integer("gradient_accumulation", run.gradient_accumulation, 1, 1 << 20);
  run.early_stopping = read_early_stopping(in.table(), file);
  return run;
}

DataConfig read_data(const toml::table& root, const std::string& file) {
  const toml::table* table = section_table(root, "data", "[data]");
  const char* example = "  [data]\n  reader = \"idx\"\n  batch_size = 64";
  if (!table) missing(file, "no [data] section naming the dataset plugin to read", example);
  SectionReader in(table, "[data]", file);
  DataConfig data;
  data.reader = in.string("reader", "");
  if (!in.find("reader"))
    missing(in.location(), "[data] has no 'reader' (the dataset plugin)", example);
  if (data.reader.empty()) in.fail("reader", "must name a dataset plugin, e.g. reader = \"idx\"");
  data.batch_size = in.integer("batch_size", data.batch_size, 1);
  data.eval_batch_size = in.integer("eval_batch_size", data.eval_batch_size, 0);
  data.shuffle = in.boolean("shuffle", data.shuffle);
  data.drop_last = in.boolean("drop_last", data.drop_last);
  data.reader_table = table;
  return data;
}

NamedTable read_loss(const toml::table& root, const std::string& file) {
  const toml::table* table = section_table(root, "loss", "[loss]");
  const char* example = "  [loss]\n  type = \"cross_entropy\"";
  if (!table) missing(file, "no [loss] section", example);
  SectionReader in(table, "[loss]", file);
  return {plugin_type(in, example), table, "[loss]"};
}

ScheduleConfig read_schedule(const toml::table& optimizer, double lr, const std::string& file) {
  SectionReader in(section_table(optimizer, "schedule", "[optimizer.schedule]"),
                   "[optimizer.schedule]", file);
  in.reject_unknown(all_schedule_keys());
  ScheduleConfig schedule;
  schedule.type = in.string("type", schedule.type, schedule_types());
  // Keys of other types are ignored (a --set of the type cannot remove them), not written back.
  schedule.warmup_steps = in.integer("warmup_steps", 0, 0);
  if (schedule.type == "step") {
    schedule.step_size = in.integer("step_size", 0, 0);
    if (schedule.step_size < 1)
      in.fail("step_size", "schedule 'step' needs step_size >= 1 (steps between decays), " +
                               std::string("e.g. step_size = 1000"));
    schedule.gamma = in.number("gamma", schedule.gamma, 0.0, true);
  }
  if (schedule.type == "cosine" || schedule.type == "linear_warmup_cosine") {
    schedule.min_lr = in.number("min_lr", schedule.min_lr, 0.0);
    if (schedule.min_lr > lr)
      in.fail("min_lr", "must not exceed [optimizer] lr (" + format_number(lr) + "), got " +
                            format_number(schedule.min_lr));
  }
  if (schedule.type == "linear_warmup_cosine" && schedule.warmup_steps < 1)
    in.fail("warmup_steps", "schedule 'linear_warmup_cosine' needs warmup_steps >= 1, " +
                                std::string("e.g. warmup_steps = 500"));
  return schedule;
}

OptimizerConfig read_optimizer(const toml::table& root, const std::string& file) {
  const toml::table* table = section_table(root, "optimizer", "[optimizer]");
  const char* example = "  [optimizer]\n  type = \"sgd\"\n  lr = 0.01";
  if (!table) missing(file, "no [optimizer] section", example);
  SectionReader in(table, "[optimizer]", file);
  OptimizerConfig optimizer;
  optimizer.type = plugin_type(in, example);
  optimizer.lr = in.number("lr", optimizer.lr, 0.0, true);
  optimizer.decay_bias_and_norm = in.boolean("decay_bias_and_norm", optimizer.decay_bias_and_norm);
  optimizer.schedule = read_schedule(*table, optimizer.lr, file);
  optimizer.table = table;
  return optimizer;
}

ParallelConfig read_parallel(const toml::table& root, const std::string& file) {
  const toml::table* table = section_table(root, "parallel", "[parallel]");
  SectionReader in(table, "[parallel]", file);
  ParallelConfig parallel;
  parallel.file = file;
  // Read as given; resolve_mesh checks them against the strategy and the world, in one place.
  const char* axes[3] = {"data", "pipeline", "tensor"};
  const int64_t int32_min = std::numeric_limits<int32_t>::min();
  const int64_t int32_max = std::numeric_limits<int32_t>::max();
  for (size_t a = 0; a < 3; ++a) {
    parallel.degree[a] = in.integer(axes[a], 1, int32_min, int32_max);
    parallel.degree_node[a] = in.find(axes[a]);
  }
  parallel.zero = in.integer("zero", parallel.zero, int32_min, int32_max);
  parallel.zero_node = in.find("zero");
  parallel.order = in.string("order", parallel.order);
  parallel.order_node = in.find("order");
  // Mesh keys without a strategy ask for the strategy that composes the axes.
  if (parallel.mesh_given()) parallel.strategy = "mesh";
  parallel.strategy = in.string("strategy", parallel.strategy);
  if (parallel.strategy.empty())
    in.fail("strategy", "must name a strategy plugin, e.g. strategy = \"single\"");
  parallel.timeout_s = in.number("timeout_s", parallel.timeout_s, 0.0, true);
  parallel.table = table;
  return parallel;
}

CheckpointConfig read_checkpoint(const toml::table& root, const std::string& file) {
  SectionReader in(section_table(root, "checkpoint", "[checkpoint]"), "[checkpoint]", file);
  in.reject_unknown(checkpoint_keys());
  CheckpointConfig checkpoint;
  checkpoint.every = in.integer("every", checkpoint.every, 0);
  checkpoint.keep = in.integer("keep", checkpoint.keep, 1);
  checkpoint.resume = in.string("resume", checkpoint.resume);
  checkpoint.enabled = in.boolean("enabled", checkpoint.enabled);
  return checkpoint;
}

// Relative folders are relative to the file that wrote them (cwd for --set), so an included
// file's [plugins] still works from wherever it is included.
// [plugins] paths into config.plugin_paths, with where each was written.
void read_plugin_paths(const toml::table& root, const std::string& file, Config& config) {
  SectionReader in(section_table(root, "plugins", "[plugins]"), "[plugins]", file);
  in.reject_unknown({"paths"});
  const toml::node* paths = in.find("paths");
  if (!paths) return;
  const toml::array* list = paths->as_array();
  if (!list)
    in.fail("paths", "expected a list of folders, got " + describe_value(*paths) +
                         "; e.g. paths = [\"build/plugins\"]");
  for (const toml::node& entry : *list) {
    if (!entry.is_string())
      in.fail_at(entry, "paths", "expected a folder (a string), got " + describe_value(entry));
    fs::path folder = entry.as_string()->get();
    const auto& source = entry.source().path;
    fs::path base =
        (source && source->rfind("--set ", 0) != 0) ? fs::path(*source).parent_path() : fs::path();
    config.plugin_paths.push_back(fs::absolute(base / folder).lexically_normal().string());
    config.plugin_path_places.push_back(where(entry) + ": [plugins] paths");
  }
}

}  // namespace

const std::vector<std::string>& schedule_types() {
  static const std::vector<std::string> types = {"constant", "step", "cosine",
                                                 "linear_warmup_cosine"};
  return types;
}

const std::vector<std::string>& schedule_keys(const std::string& type) {
  static const std::vector<std::string> constant = {"warmup_steps"};
  static const std::vector<std::string> step = {"warmup_steps", "step_size", "gamma"};
  static const std::vector<std::string> cosine = {"warmup_steps", "min_lr"};
  if (type == "step") return step;
  if (type == "cosine" || type == "linear_warmup_cosine") return cosine;
  return constant;
}

const std::vector<std::string>& reserved_keys(Section section) {
  static const std::vector<std::string> data = {"reader", "batch_size", "eval_batch_size",
                                                "shuffle", "drop_last"};
  static const std::vector<std::string> type = {"type"};
  static const std::vector<std::string> layer = {"type", "tie"};
  static const std::vector<std::string> optimizer = {"type", "lr", "schedule",
                                                     "decay_bias_and_norm"};
  static const std::vector<std::string> parallel = {"strategy", "timeout_s", "data", "pipeline",
                                                    "tensor",   "zero",      "order"};
  switch (section) {
    case Section::data: return data;
    case Section::layer: return layer;
    case Section::loss: return type;
    case Section::optimizer: return optimizer;
    case Section::parallel: return parallel;
  }
  return type;
}

Config load_config(const fs::path& file, const std::vector<std::string>& overrides) {
  Config config;
  config.file = file;
  config.directory = fs::absolute(file).parent_path().lexically_normal();
  config.root = load_tree(file);
  for (const std::string& assignment : overrides) apply_override(config.root, assignment);

  const std::string shown = file.string();
  check_top_level(config.root);
  config.run = read_run(config.root, shown);
  config.data = read_data(config.root, shown);
  if (config.run.gradient_accumulation > config.data.batch_size) {
    SectionReader run(section_table(config.root, "run", "[run]"), "[run]", shown);
    run.fail("gradient_accumulation", "must not exceed data.batch_size (" +
                                          std::to_string(config.data.batch_size) + "), got " +
                                          std::to_string(config.run.gradient_accumulation) +
                                          ": each micro-batch needs at least one row");
  }
  config.layers = read_layers(config.root, shown);
  config.loss = read_loss(config.root, shown);
  config.optimizer = read_optimizer(config.root, shown);
  config.parallel = read_parallel(config.root, shown);
  config.checkpoint = read_checkpoint(config.root, shown);
  read_plugin_paths(config.root, shown, config);
  return config;
}

}  // namespace graft::runtime
